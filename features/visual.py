"""The visual cache (``smie.visual``, schema-version 1): everything stage two needs from the backbone.

Datasets: ``features`` (N, D) float32 from whole sequences, ``masked`` (N, W, D) float32 from W keyframe-masked
views, ``labels`` (N,) int64, ``sample_ids`` (N,) str, ``partition`` (N,) int8 (codes of
``smie.pipeline.data.splits.PARTITIONS``), ``class_names`` (K,) str. Root attributes (JSON where structured):
``split``, ``masking``, ``partition-settings``, ``backbone-sha256``, ``backbone-arch``, ``backbone-config``,
``skeleton-sha256``, optional ``shard`` and ``provenance``. Spec: docs/cache-visual.md.

Writing is chunked and resumable: rows go to ``.<name>.partial`` beside the target, typed
``smie.visual.partial`` with a ``rows-done`` count, and the file is renamed onto the target only when every row
is written. A partial file is never readable as a cache, and a rerun with the same inputs resumes it.

Optional group ``validation`` (:class:`ValidationView`, written by :func:`attach_validation`): the same rows
embedded by the split's *validation backbone* (trained without the ``val_unseen`` classes), which stage two
selects on; it carries its own backbone hash, trained classes and provenance.

Optional group ``head`` (:class:`BackboneHead`; also inside ``validation``, for the validation backbone): the
backbone's pretraining classifier, datasets ``weight`` (Kh, D), ``bias`` (Kh,), ``classes`` (Kh,). Stage two
computes the backbone's own class logits from the cached features with it (MSF's seen-class expert) without
loading backbone code.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from smie.features.store import (
    CacheError,
    atomic_path,
    check_header,
    partial_path,
    read_provenance,
    read_strings,
    require,
    text_sha256,
    to_json,
    write_header,
    write_strings,
)

ENCODING_TYPE = "smie.visual"
PARTIAL_TYPE = "smie.visual.partial"
SCHEMA_VERSION = 1
NUM_PARTITIONS = 5
_JSON_ATTRS = {"split": "split", "masking": "masking", "partition_settings": "partition-settings",
               "backbone_config": "backbone-config"}
_STR_ATTRS = {"backbone_sha256": "backbone-sha256", "backbone_arch": "backbone-arch",
              "skeleton_sha256": "skeleton-sha256"}


@dataclass(frozen=True)
class BackboneHead:
    """The backbone's linear classifier over the classes it was trained on: logits (N, Kh) = features (N, D)
    @ ``weight.T`` (D, Kh) + ``bias`` (Kh,); ``classes`` (Kh,) are the columns' indices into ``class_names``."""

    weight: np.ndarray
    bias: np.ndarray
    classes: tuple[int, ...]

    def logits(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float64) @ self.weight.T.astype(np.float64) + self.bias


@dataclass(frozen=True)
class ValidationView:
    """Features of the same rows from the validation backbone: ``features`` (N, D) float32, ``masked``
    (N, W, D) float32; ``trained_classes`` the classes that backbone learnt (the split's seen minus
    ``val_unseen``)."""

    features: np.ndarray
    masked: np.ndarray
    backbone_sha256: str
    backbone_arch: str
    trained_classes: tuple[int, ...]
    provenance: dict = field(default_factory=dict, compare=False)
    head: BackboneHead | None = field(default=None, compare=False)


@dataclass(frozen=True)
class VisualCache:
    """A visual cache in memory. ``features`` (N, D) float32, ``masked`` (N, W, D) float32, ``labels`` (N,)
    int64 into ``class_names`` (K,), ``partition`` (N,) int8; ``split`` is the Split as a dict (id, num_classes,
    seen, unseen, val_unseen); ``masking`` is {variant, k, drop, views, seed}; ``shard`` is {rank, world, start,
    stop, total} for one rank's slice, else None. A *header* has 0 rows in ``features``/``masked`` only."""

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
        out = {k: getattr(self, k) for k in (*_JSON_ATTRS, *_STR_ATTRS, "shard", "class_names")}
        out.update(num_samples=self.num_samples, feature_dim=self.feature_dim, views=self.views)
        return out


def _open(path: Path) -> h5py.File:
    if not path.exists():
        raise CacheError(path, "no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise CacheError(path, f"cannot be read as HDF5 ({exc})") from None
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
        if masked.shape[0] != N or masked.shape[2] != D:
            raise CacheError(path, f"'masked' has shape {masked.shape}, expected ({N}, views, {D})")
        for name, n in (("labels", len(labels)), ("partition", len(partition)), ("sample_ids", len(sample_ids))):
            if n != N:
                raise CacheError(path, f"'{name}' has {n} rows but 'features' has {N}")
        if N and (labels.min() < 0 or labels.max() >= len(class_names)):
            raise CacheError(path, f"labels outside the {len(class_names)}-class table")
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
        validation = (_read_validation(f, path, N, D, masked.shape[1], len(class_names), with_data)
                      if "validation" in f else None)
        return VisualCache(
            validation=validation,
            head=_read_head(f, path, D, len(class_names)),
            features=features.astype(np.float32, copy=False),
            masked=masked_arr.astype(np.float32, copy=False),
            labels=labels.astype(np.int64),
            sample_ids=sample_ids,
            partition=partition.astype(np.int8),
            class_names=class_names,
            shard=json.loads(f.attrs["shard"]) if "shard" in f.attrs else None,
            provenance=read_provenance(f),
            **extra,
        )


def _read_validation(f: h5py.File, path: Path, N: int, D: int, W: int, K: int, with_data: bool) -> ValidationView:
    g = f["validation"]
    feats, masked = require(g, path, "features", ndim=2), require(g, path, "masked", ndim=3)
    if feats.shape != (N, D) or masked.shape != (N, W, D):
        raise CacheError(path, f"'validation' views have shapes {feats.shape}, {masked.shape}; expected ({N}, {D}) "
                               f"and ({N}, {W}, {D}) like the main features")
    try:
        sha, arch = str(g.attrs["backbone-sha256"]), str(g.attrs["backbone-arch"])
        trained = tuple(int(c) for c in json.loads(g.attrs["trained-classes"]))
    except KeyError as exc:
        raise CacheError(path, f"'validation' group misses attribute {exc}") from None
    if with_data:
        fv, mv = feats[()].astype(np.float32), masked[()].astype(np.float32)
        if not (np.isfinite(fv).all() and np.isfinite(mv).all()):
            raise CacheError(path, "validation features contain NaN or infinite values")
    else:
        fv, mv = np.zeros((0, D), np.float32), np.zeros((0, W, D), np.float32)
    prov = json.loads(g.attrs["provenance"]) if "provenance" in g.attrs else {}
    return ValidationView(fv, mv, sha, arch, trained, prov, _read_head(g, path, D, K))


def _read_head(g: h5py.Group, path: Path, D: int, K: int) -> BackboneHead | None:
    """The optional ``head`` group of ``g``; refuse one whose shapes or classes do not fit (D features, K classes)."""
    if "head" not in g:
        return None
    h = g["head"]
    weight, bias = require(h, path, "weight", ndim=2)[()], require(h, path, "bias", ndim=1)[()]
    classes = require(h, path, "classes", ndim=1)[()]
    Kh = len(classes)
    if weight.shape != (Kh, D) or bias.shape != (Kh,):
        raise CacheError(path, f"'{h.name}' has weight {weight.shape} and bias {bias.shape}; expected ({Kh}, {D}) "
                               f"and ({Kh},) for {Kh} classes and {D}-d features")
    if Kh == 0 or len(set(classes.tolist())) != Kh or classes.min() < 0 or classes.max() >= K:
        raise CacheError(path, f"'{h.name}/classes' must be distinct indices into the {K}-class table")
    if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
        raise CacheError(path, f"'{h.name}' holds NaN or infinite values")
    return BackboneHead(weight.astype(np.float32), bias.astype(np.float32), tuple(int(c) for c in classes))


def write_head(g: h5py.Group, head: BackboneHead) -> None:
    """Write ``head`` as the ``head`` group of ``g`` (the file root or the ``validation`` group)."""
    h = g.create_group("head")
    h.create_dataset("weight", data=np.asarray(head.weight, dtype=np.float32))
    h.create_dataset("bias", data=np.asarray(head.bias, dtype=np.float32))
    h.create_dataset("classes", data=np.asarray(head.classes, dtype=np.int64))


def attach_validation(path: str | os.PathLike, view: "VisualCache", trained_classes, provenance: dict) -> Path:
    """Write ``view`` (a complete visual cache of the same rows, from the validation backbone) into the finished
    cache ``path`` as its ``validation`` group; atomic (copy, add, rename), so ``path`` is never half-written.

    Refuses a view whose rows, labels, partition, class table, split or masking differ from the cache's.
    """
    path = Path(path)
    main = read_visual_header(path)
    for name in ("sample_ids", "class_names", "split", "masking", "partition_settings", "skeleton_sha256"):
        if getattr(main, name) != getattr(view, name):
            raise CacheError(path, f"the validation view differs from the cache in {name}")
    if not (np.array_equal(main.labels, view.labels) and np.array_equal(main.partition, view.partition)):
        raise CacheError(path, "the validation view's labels or partition differ from the cache's")
    leaked = sorted(set(int(c) for c in trained_classes) & set(main.split["unseen"]) | set(
        int(c) for c in trained_classes) & set(main.split["val_unseen"]))
    if leaked:
        raise CacheError(path, f"the validation backbone was trained on classes {leaked} that are unseen or "
                               "val_unseen in this split")
    if view.head is not None and set(view.head.classes) != {int(c) for c in trained_classes}:
        raise CacheError(path, "the validation view's classifier head covers other classes than its backbone learnt")
    with atomic_path(path) as tmp:
        shutil.copyfile(path, tmp)
        with h5py.File(tmp, "a") as f:
            if "validation" in f:
                del f["validation"]
            g = f.create_group("validation")
            g.create_dataset("features", data=view.features.astype(np.float32))
            g.create_dataset("masked", data=view.masked.astype(np.float32))
            g.attrs["backbone-sha256"] = view.backbone_sha256
            g.attrs["backbone-arch"] = view.backbone_arch
            g.attrs["trained-classes"] = json.dumps([int(c) for c in trained_classes])
            g.attrs["provenance"] = to_json(provenance)
            if view.head is not None:
                write_head(g, view.head)
    return path


def read_visual(path: str | os.PathLike) -> VisualCache:
    """Load a finished visual cache; refuse a partial, foreign, inconsistent or non-finite one (CacheError)."""
    return _read(path, with_data=True)


def read_visual_header(path: str | os.PathLike) -> VisualCache:
    """Everything but the feature rows (``features`` (0, D), ``masked`` (0, W, D))."""
    return _read(path, with_data=False)


def _create(f: h5py.File, header: VisualCache, encoding_type: str, provenance: dict) -> None:
    N, (W, D) = header.num_samples, header.masked.shape[1:]
    write_header(f, encoding_type, SCHEMA_VERSION, provenance)
    for k, a in _JSON_ATTRS.items():
        f.attrs[a] = to_json(getattr(header, k))
    for k, a in _STR_ATTRS.items():
        f.attrs[a] = getattr(header, k)
    if header.shard is not None:
        f.attrs["shard"] = to_json(header.shard)
    f.create_dataset("features", shape=(N, D), dtype=np.float32)
    f.create_dataset("masked", shape=(N, W, D), dtype=np.float32)
    f.create_dataset("labels", data=np.asarray(header.labels, dtype=np.int64))
    f.create_dataset("partition", data=np.asarray(header.partition, dtype=np.int8))
    write_strings(f, "sample_ids", header.sample_ids)
    write_strings(f, "class_names", header.class_names)
    if header.head is not None:
        write_head(f, header.head)


class VisualWriter:
    """Chunked, resumable writer of one visual cache; rows must be written in order.

    ``header`` is a :class:`VisualCache` with 0 feature rows that fixes N, D, W and every attribute. With
    ``resume`` a partial file of the same header is continued from ``rows_done``; any other partial file is
    discarded. ``finalize`` renames the complete file onto ``path``.
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

    def write(self, start: int, features: np.ndarray, masked: np.ndarray) -> None:
        """Write rows ``start:start+n`` (``features`` (n, D), ``masked`` (n, W, D)) and record them as done."""
        if start != self.rows_done:
            raise ValueError(f"rows must be written in order: expected row {self.rows_done}, got {start}")
        n = len(features)
        self.file["features"][start : start + n] = features
        self.file["masked"][start : start + n] = masked
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
    """Write a whole in-memory :class:`VisualCache` (fresh, not resumed)."""
    with VisualWriter(path, cache, provenance, resume=False) as w:
        w.write(0, cache.features, cache.masked)
        w.mark_verified()
        return w.finalize()


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
                    f["features"][dst : dst + j - i] = src["features"][i:j]
                    f["masked"][dst : dst + j - i] = src["masked"][i:j]
    return Path(out)
