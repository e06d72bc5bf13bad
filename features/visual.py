"""The visual cache (``smie.visual``, schema-versions 1 and 2): everything stage two needs from the backbone.

Datasets: ``features`` (N, D) float32 from whole sequences, ``masked`` (N, W, D) float32 from W keyframe-masked
views (W = 0 for imported features, which have none), ``labels`` (N,) int64, ``sample_ids`` (N,) str,
``partition`` (N,) int8 (codes of ``smie.pipeline.data.splits.PARTITIONS``), ``class_names`` (K,) str. Root
attributes (JSON where structured): ``split``, ``masking``, ``partition-settings``, ``backbone-sha256``,
``backbone-arch``, ``backbone-config``, ``skeleton-sha256``, optional ``shard``, ``imported`` and
``provenance``. Spec: docs/cache-visual.md.

Writing is chunked and resumable: rows go to ``.<name>.partial`` beside the target, typed
``smie.visual.partial`` with a ``rows-done`` count, and the file is renamed onto the target only when every
row is written. A partial file is never readable as a cache, and a rerun with the same inputs resumes it.
A header with a ``validation`` view gets its rows written beside the main ones (one pass, one rename).

Optional groups (:mod:`smie.features.visual_groups`): ``validation`` (the same rows embedded by the split's
validation backbone, which stage two selects on), ``head`` (the backbone's classifier), and, in schema-version
2, ``logits`` (the backbone's published class scores of some rows) and ``validation_set`` (the validation
backbone's features of rows of its own, as SynSE's folders ship them). A file is written as version 1 unless it
holds a version-2 part, so that older readers keep reading what they can.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from smie.features.store import (
    CacheError,
    atomic_path,
    check_header,
    open_hdf5,
    partial_path,
    read_provenance,
    read_strings,
    require,
    text_sha256,
    to_json,
    write_header,
    write_strings,
)
from smie.features.visual_groups import (  # noqa: F401  (re-exported: the cache's public types)
    BackboneHead,
    StoredLogits,
    ValidationSet,
    ValidationView,
    check_logits,
    check_validation_set,
    read_head,
    read_logits,
    read_validation,
    read_validation_set,
    write_backbone_attrs,
    write_head,
    write_logits,
    write_validation_set,
)

ENCODING_TYPE = "smie.visual"
PARTIAL_TYPE = "smie.visual.partial"
SCHEMA_VERSION = 2
NUM_PARTITIONS = 5
_JSON_ATTRS = {"split": "split", "masking": "masking", "partition_settings": "partition-settings",
               "backbone_config": "backbone-config"}
_STR_ATTRS = {"backbone_sha256": "backbone-sha256", "backbone_arch": "backbone-arch",
              "skeleton_sha256": "skeleton-sha256"}


@dataclass(frozen=True)
class VisualCache:
    """A visual cache in memory. ``features`` (N, D) float32, ``masked`` (N, W, D) float32, ``labels`` (N,)
    int64 into ``class_names`` (K,), ``partition`` (N,) int8; ``split`` is the Split as a dict (id, num_classes,
    seen, unseen, val_unseen); ``masking`` is {variant, k, drop, views, seed}; ``shard`` is {rank, world, start,
    stop, total} for one rank's slice, else None; ``imported`` says where imported features came from (format,
    folders, label convention), else None. A *header* has 0 rows in ``features``/``masked`` only (and in the
    ``validation`` view's and ``validation_set``'s ``features``)."""

    features: np.ndarray
    masked: np.ndarray
    labels: np.ndarray
    sample_ids: tuple[str, ...]
    partition: np.ndarray
    class_names: tuple[str, ...]
    split: dict
    masking: dict
    partition_settings: dict
    backbone_sha256: str
    backbone_arch: str
    backbone_config: dict
    skeleton_sha256: str
    shard: dict | None = None
    provenance: dict = field(default_factory=dict, compare=False)
    validation: ValidationView | None = field(default=None, compare=False)
    head: BackboneHead | None = field(default=None, compare=False)
    logits: StoredLogits | None = field(default=None, compare=False)
    validation_set: ValidationSet | None = field(default=None, compare=False)
    imported: dict | None = None

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    @property
    def feature_dim(self) -> int:
        return int(self.features.shape[1])

    @property
    def views(self) -> int:
        return int(self.masked.shape[1])

    def attrs(self) -> dict:
        """Everything but the per-row arrays, as it is compared between shards and on resume."""
        out = {k: getattr(self, k) for k in (*_JSON_ATTRS, *_STR_ATTRS, "shard", "class_names", "imported")}
        out.update(num_samples=self.num_samples, feature_dim=self.feature_dim, views=self.views)
        v = self.validation
        out["validation"] = None if v is None else [v.backbone_sha256, v.backbone_arch, list(v.trained_classes)]
        return out

    @property
    def schema_version(self) -> int:
        """The lowest schema-version that describes this cache: 2 with a version-2 part, else 1."""
        v2 = (self.logits is not None or self.validation_set is not None or self.imported is not None
              or self.views == 0)
        return 2 if v2 else 1


def _open(path: Path) -> h5py.File:
    """The cache opened through the shared checked door (:func:`~smie.features.store.open_hdf5`): any version
    from 1 to :data:`SCHEMA_VERSION` (the reader fills in what a version-1 file lacks); an unfinished
    ``.NAME.partial`` of extract-visual is named as such."""
    f = open_hdf5(path, expected="an smie.visual cache (from smie extract-visual)")
    if str(f.attrs.get("encoding-type", "")) == PARTIAL_TYPE:
        done = int(f.attrs.get("rows-done", 0))
        f.close()
        raise CacheError(path, f"is an unfinished visual cache ({done} rows written); rerun extract-visual to resume")
    try:
        check_header(f, path, ENCODING_TYPE, SCHEMA_VERSION)
    except CacheError:
        f.close()
        raise
    return f


def _read(path: str | os.PathLike, with_data: bool) -> VisualCache:
    path = Path(path)
    with _open(path) as f:
        feats = require(f, path, "features", ndim=2)
        masked = require(f, path, "masked", ndim=3)
        labels = require(f, path, "labels", ndim=1)[()]
        partition = require(f, path, "partition", ndim=1)[()]
        sample_ids = read_strings(require(f, path, "sample_ids", ndim=1))
        class_names = read_strings(require(f, path, "class_names", ndim=1))
        N, D = feats.shape
        K = len(class_names)
        if masked.shape[0] != N or masked.shape[2] != D:
            raise CacheError(path, f"'masked' has shape {masked.shape}, expected ({N}, views, {D})")
        for name, n in (("labels", len(labels)), ("partition", len(partition)), ("sample_ids", len(sample_ids))):
            if n != N:
                raise CacheError(path, f"'{name}' has {n} rows but 'features' has {N}")
        if N and (labels.min() < 0 or labels.max() >= K):
            raise CacheError(path, f"labels outside the {K}-class table")
        if N and (partition.min() < 0 or partition.max() >= NUM_PARTITIONS):
            raise CacheError(path, "partition codes outside 0..4")
        try:
            extra = {k: json.loads(f.attrs[a]) for k, a in _JSON_ATTRS.items()}
            extra.update({k: str(f.attrs[a]) for k, a in _STR_ATTRS.items()})
        except KeyError as exc:
            raise CacheError(path, f"missing attribute {exc}") from None
        if with_data:
            features, masked_arr = feats[()], masked[()]
            if not (np.isfinite(features).all() and np.isfinite(masked_arr).all()):
                raise CacheError(path, "features contain NaN or infinite values")
        else:
            features = np.zeros((0, D), np.float32)
            masked_arr = np.zeros((0, masked.shape[1], D), np.float32)
        if "validation" in f and "validation_set" in f:
            raise CacheError(path, "holds both a 'validation' view and a 'validation_set'; at most one is allowed")
        validation = read_validation(f, path, N, D, masked.shape[1], K, with_data) if "validation" in f else None
        vset = read_validation_set(f, path, D, K, extra["split"], with_data) if "validation_set" in f else None
        return VisualCache(
            validation=validation,
            validation_set=vset,
            head=read_head(f, path, D, K),
            logits=read_logits(f, path, N, K),
            features=features.astype(np.float32, copy=False),
            masked=masked_arr.astype(np.float32, copy=False),
            labels=labels.astype(np.int64),
            sample_ids=sample_ids,
            partition=partition.astype(np.int8),
            class_names=class_names,
            shard=json.loads(f.attrs["shard"]) if "shard" in f.attrs else None,
            imported=json.loads(f.attrs["imported"]) if "imported" in f.attrs else None,
            provenance=read_provenance(f),
            **extra,
        )


def _check_view(path: Path, main: "VisualCache", view: "VisualCache", trained_classes) -> None:
    """Refuse a validation view whose rows, labels, partition, class table, split or masking differ from the
    cache's, whose backbone learnt an unseen or val_unseen class, or whose head covers other classes."""
    for name in ("sample_ids", "class_names", "split", "masking", "partition_settings", "skeleton_sha256"):
        if getattr(main, name) != getattr(view, name):
            raise CacheError(path, f"the validation view differs from the cache in {name}")
    if not (np.array_equal(main.labels, view.labels) and np.array_equal(main.partition, view.partition)):
        raise CacheError(path, "the validation view's labels or partition differ from the cache's")
    trained = {int(c) for c in trained_classes}
    leaked = sorted(trained & (set(main.split["unseen"]) | set(main.split["val_unseen"])))
    if leaked:
        raise CacheError(path, f"the validation backbone was trained on classes {leaked} that are unseen or "
                               "val_unseen in this split")
    if view.head is not None and set(view.head.classes) != trained:
        raise CacheError(path, "the validation view's classifier head covers other classes than its backbone learnt")


_STAGING = ".validation-partial"  # where attach_validation writes the group before one rename makes it live


def attach_validation(path: str | os.PathLike, view: "VisualCache", trained_classes, provenance: dict) -> Path:
    """Write ``view`` (a complete visual cache of the same rows, from the validation backbone) into the finished
    cache ``path`` as its ``validation`` group, in place: the group is written under a staging name inside the
    file and made live by one HDF5 link rename, so a reader never sees a half-written view and the cache is
    never copied. A staging group left by an interrupted call is removed by the next one. (Replacing an existing
    view leaves its old bytes as free space in the file; ``h5repack`` reclaims them.)

    Refuses a view whose rows, labels, partition, class table, split or masking differ from the cache's.
    """
    path = Path(path)
    main = read_visual_header(path)
    if main.validation_set is not None:
        raise CacheError(path, "holds a 'validation_set' (imported validation features of other rows); "
                               "a same-rows validation view cannot be added beside it")
    _check_view(path, main, view, trained_classes)
    with h5py.File(path, "r+") as f:
        if _STAGING in f:
            del f[_STAGING]
        g = f.create_group(_STAGING)
        g.create_dataset("features", data=np.asarray(view.features, dtype=np.float32))
        g.create_dataset("masked", data=np.asarray(view.masked, dtype=np.float32))
        write_backbone_attrs(g, view.backbone_sha256, view.backbone_arch, trained_classes, provenance)
        if view.head is not None:
            write_head(g, view.head)
        f.flush()
        if "validation" in f:
            del f["validation"]
        f.move(_STAGING, "validation")
    return path


def read_visual(path: str | os.PathLike) -> VisualCache:
    """Load a finished visual cache; refuse a partial, foreign, inconsistent or non-finite one (CacheError)."""
    return _read(path, with_data=True)


def read_visual_header(path: str | os.PathLike) -> VisualCache:
    """Everything but the feature rows (``features`` (0, D), ``masked`` (0, W, D))."""
    return _read(path, with_data=False)


def _create(f: h5py.File, header: VisualCache, encoding_type: str, provenance: dict) -> None:
    """Every attribute and per-sample dataset of ``header``; ``features``/``masked`` (and a ``validation`` view's)
    are created empty for the rows to be written; ``logits`` and ``validation_set`` are written whole."""
    N, (W, D) = header.num_samples, header.masked.shape[1:]
    if header.validation is not None and header.validation_set is not None:
        raise CacheError(f.filename, "a cache holds a 'validation' view or a 'validation_set', not both")
    write_header(f, encoding_type, header.schema_version, provenance)
    for k, a in _JSON_ATTRS.items():
        f.attrs[a] = to_json(getattr(header, k))
    for k, a in _STR_ATTRS.items():
        f.attrs[a] = getattr(header, k)
    if header.shard is not None:
        f.attrs["shard"] = to_json(header.shard)
    if header.imported is not None:
        f.attrs["imported"] = to_json(header.imported)
    f.create_dataset("features", shape=(N, D), dtype=np.float32)
    f.create_dataset("masked", shape=(N, W, D), dtype=np.float32)
    f.create_dataset("labels", data=np.asarray(header.labels, dtype=np.int64))
    f.create_dataset("partition", data=np.asarray(header.partition, dtype=np.int8))
    write_strings(f, "sample_ids", header.sample_ids)
    write_strings(f, "class_names", header.class_names)
    if header.head is not None:
        write_head(f, header.head)
    if header.logits is not None:
        check_logits(f.filename, header.logits, N, len(header.class_names))
        write_logits(f, header.logits)
    if header.validation_set is not None:
        check_validation_set(f.filename, header.validation_set, D, len(header.class_names), header.split)
        write_validation_set(f, header.validation_set)
    v = header.validation
    if v is not None:
        g = f.create_group("validation")
        g.create_dataset("features", shape=(N, D), dtype=np.float32)
        g.create_dataset("masked", shape=(N, W, D), dtype=np.float32)
        write_backbone_attrs(g, v.backbone_sha256, v.backbone_arch, v.trained_classes, v.provenance)
        if v.head is not None:
            write_head(g, v.head)


class VisualWriter:
    """Chunked, resumable writer of one visual cache; rows must be written in order.

    ``header`` is a :class:`VisualCache` with 0 feature rows that fixes N, D, W and every attribute; with a
    ``validation`` view in the header, every :meth:`write` also takes that view's rows, so the view lands in the
    same file and the same final rename (no second file, no copy). With ``resume`` a partial file of the same
    header is continued from ``rows_done``; any other partial file is discarded. ``finalize`` renames the
    complete file onto ``path``.
    """

    def __init__(self, path: str | os.PathLike, header: VisualCache, provenance: dict, resume: bool = True):
        self.path = Path(path)
        self.tmp = partial_path(self.path)
        self.header = header
        self.fingerprint = text_sha256(to_json(header.attrs()) + to_json(list(header.sample_ids)))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = self._reopen() if resume and self.tmp.exists() else None
        if self.file is None:
            self.tmp.unlink(missing_ok=True)
            self.file = h5py.File(self.tmp, "w")
            _create(self.file, header, PARTIAL_TYPE, provenance)
            self.file.attrs["fingerprint"] = self.fingerprint
            self.file.attrs["rows-done"] = 0
            self.file.attrs["inputs-verified"] = False
            self.file.flush()
        self.rows_done = int(self.file.attrs["rows-done"])
        self.verified = bool(self.file.attrs["inputs-verified"])

    def _reopen(self) -> h5py.File | None:
        try:
            f = h5py.File(self.tmp, "r+")
        except OSError:
            return None
        same = str(f.attrs.get("encoding-type", "")) == PARTIAL_TYPE and f.attrs.get("fingerprint") == self.fingerprint
        if same and (f.attrs.get("inputs-verified") or int(f.attrs.get("rows-done", 0)) == 0):
            return f
        f.close()
        return None

    def write(self, start: int, features: np.ndarray, masked: np.ndarray,
              validation: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Write rows ``start:start+n`` (``features`` (n, D), ``masked`` (n, W, D), and ``validation`` = the
        validation view's (features, masked) of the same rows when the header has one); record them as done."""
        if start != self.rows_done:
            raise ValueError(f"rows must be written in order: expected row {self.rows_done}, got {start}")
        if (validation is None) != (self.header.validation is None):
            raise ValueError("the validation view's rows must be written exactly when the header has the view")
        n = len(features)
        self.file["features"][start : start + n] = features
        self.file["masked"][start : start + n] = masked
        if validation is not None:
            self.file["validation/features"][start : start + n] = validation[0]
            self.file["validation/masked"][start : start + n] = validation[1]
        self.file.flush()
        self.rows_done = start + n
        self.file.attrs["rows-done"] = self.rows_done
        self.file.flush()

    def mark_verified(self) -> None:
        """Record that the inputs the header names were checked; from now on the partial file may be resumed."""
        self.file.attrs["inputs-verified"] = True
        self.file.flush()
        self.verified = True

    def discard(self) -> None:
        """Close and delete the partial file (its rows must not be resumed)."""
        self.close()
        self.tmp.unlink(missing_ok=True)

    def finalize(self, provenance: dict | None = None) -> Path:
        """Mark the file complete and rename it onto the target; refuses while rows are missing or unverified."""
        N = self.header.num_samples
        if self.rows_done != N or not self.verified:
            raise CacheError(self.tmp, f"{self.rows_done} of {N} rows written, inputs verified: {self.verified}; "
                             "cannot finalise")
        if provenance is not None:
            self.file.attrs["provenance"] = to_json(provenance)
        for a in ("rows-done", "fingerprint", "inputs-verified"):
            del self.file.attrs[a]
        self.file.attrs["encoding-type"] = ENCODING_TYPE
        self.close()
        os.replace(self.tmp, self.path)
        return self.path

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

    def __enter__(self) -> "VisualWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_visual(path: str | os.PathLike, cache: VisualCache, provenance: dict) -> Path:
    """Write a whole in-memory :class:`VisualCache` (fresh, not resumed); on any error nothing is left behind."""
    v = cache.validation
    with VisualWriter(path, cache, provenance, resume=False) as w:
        try:
            w.write(0, cache.features, cache.masked, None if v is None else (v.features, v.masked))
            w.mark_verified()
            return w.finalize()
        except BaseException:
            w.discard()
            raise


def join_shards(shard_paths: list[str | os.PathLike], out: str | os.PathLike, chunk: int = 4096) -> Path:
    """Concatenate per-rank shards into one cache at ``out``, in original sample order, copying in chunks.

    Every shard must share the same attributes, and their ``shard`` ranges must tile ``0..total`` exactly
    (no sample lost or duplicated); otherwise :class:`CacheError` names the offending file.
    """
    heads = sorted(((Path(p), read_visual_header(p)) for p in shard_paths),
                   key=lambda ph: (ph[1].shard or {}).get("start", -1))
    if not heads:
        raise CacheError(out, "no shards to join")
    first_path, first = heads[0]
    same = {k: v for k, v in first.attrs().items() if k not in ("shard", "num_samples")}
    expect, total = 0, None
    for p, h in heads:
        if h.shard is None:
            raise CacheError(p, "is not a shard (no 'shard' attribute)")
        total = h.shard["total"] if total is None else total
        if h.shard["total"] != total:
            raise CacheError(p, f"belongs to a different sharding ({h.shard}) than {first_path} ({first.shard})")
        if h.shard["world"] != len(heads):
            raise CacheError(p, f"is one of {h.shard['world']} shards but {len(heads)} were given to join")
        if h.shard["start"] != expect or h.shard["stop"] - h.shard["start"] != h.num_samples:
            raise CacheError(p, f"covers rows {h.shard['start']}..{h.shard['stop']}, expected to start at {expect}")
        diff = [k for k, v in h.attrs().items() if k in same and v != same[k]]
        if diff:
            raise CacheError(p, f"differs from {first_path} in {', '.join(diff)}")
        expect = h.shard["stop"]
    if expect != total:
        raise CacheError(heads[-1][0], f"shards end at row {expect} of {total}: samples are missing")
    ids = tuple(s for _, h in heads for s in h.sample_ids)
    if len(set(ids)) != len(ids):
        raise CacheError(out, "joined shards contain duplicate sample ids")
    cat = lambda name: np.concatenate([getattr(h, name) for _, h in heads])  # noqa: E731
    joined = dataclasses.replace(first, labels=cat("labels"), partition=cat("partition"), sample_ids=ids, shard=None)
    prov = dict(first.provenance, shards=[str(p) for p, _ in heads])
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        _create(f, joined, ENCODING_TYPE, prov)
        for p, h in heads:
            with h5py.File(p, "r") as src:
                for i in range(0, h.num_samples, chunk):
                    j, dst = min(i + chunk, h.num_samples), h.shard["start"] + i
                    for name in ("features", "masked") + (("validation/features", "validation/masked")
                                                          if first.validation is not None else ()):
                        f[name][dst : dst + j - i] = src[name][i:j]
    return Path(out)
