"""The optional groups of the visual cache (docs/cache-visual.md), each a frozen dataclass with its checked
reader and its writer.

- ``head`` (:class:`BackboneHead`): the backbone's pretraining classifier, so stage two can compute the
  backbone's own class scores from the cached features (MSF's seen-class expert) without backbone code.
- ``logits`` (:class:`StoredLogits`, schema-version 2): the backbone's class scores as published beside imported
  features (SynSE's ``*_out.npy``), for some rows of the cache, when no classifier head is at hand.
- ``validation`` (:class:`ValidationView`): the *same rows* embedded by the split's validation backbone.
- ``validation_set`` (:class:`ValidationSet`, schema-version 2): the validation backbone's features of rows of
  its own (SynSE's ``shift_val_*`` folders embed other samples than the main folder), with their own labels
  and partition codes. Kept apart from ``validation`` so that a reader that aligns a view with the cache's
  rows can never take one for the other.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from smie.features.store import CacheError, SmieError, read_strings, require, to_json, write_strings

SEEN_TRAIN, SEEN_VAL = 0, 1  # the partition codes a validation set uses (smie.pipeline.data.partitions)


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
class StoredLogits:
    """The backbone's own class scores of some cache rows: ``values`` (R, C) float32 of rows ``rows`` (R,) int64
    (ascending, distinct, into the rows of the cache or validation set that holds them), columns ``classes`` (C,)
    (indices into ``class_names``). ``source`` names the files they came from (``file``, ``sha256``, ``rows``)."""

    rows: np.ndarray
    values: np.ndarray
    classes: tuple[int, ...]
    source: tuple[dict, ...] = field(default=(), compare=False)

    def has(self, rows) -> np.ndarray:
        """(n,) bool: which of ``rows`` have stored scores."""
        rows = np.asarray(rows, dtype=np.int64)
        pos = np.searchsorted(self.rows, rows)
        return (pos < len(self.rows)) & (self.rows[np.minimum(pos, len(self.rows) - 1)] == rows)

    def at(self, rows, classes=None) -> np.ndarray:
        """(n, C) float32 scores of ``rows`` (all stored columns, or ``classes``' columns in that order);
        :class:`SmieError` when a row has none or a class is not a stored column."""
        rows = np.asarray(rows, dtype=np.int64)
        missing = rows[~self.has(rows)]
        if missing.size:
            raise SmieError(f"no stored backbone logits for {missing.size} of {rows.size} rows "
                            f"(first: row {int(missing[0])})")
        out = self.values[np.searchsorted(self.rows, rows)]
        if classes is None:
            return out
        col = {c: i for i, c in enumerate(self.classes)}
        absent = [int(c) for c in classes if int(c) not in col]
        if absent:
            raise SmieError(f"stored backbone logits have no column for classes {absent[:10]}")
        return out[:, [col[int(c)] for c in classes]]


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
class ValidationSet:
    """The validation backbone's features of rows of its own: ``features`` (Nv, D) float32, ``labels`` (Nv,)
    int64 into ``class_names``, ``partition`` (Nv,) int8: 0 ``seen_train`` (rows it was trained on, of
    ``trained_classes``), 1 ``seen_val`` (held-out rows: the ``val_unseen`` classes' and held-out rows of the
    trained classes). No masked views. ``logits`` are its own scores of some of these rows (MSF's gate)."""

    features: np.ndarray
    labels: np.ndarray
    partition: np.ndarray
    sample_ids: tuple[str, ...]
    backbone_sha256: str
    backbone_arch: str
    trained_classes: tuple[int, ...]
    provenance: dict = field(default_factory=dict, compare=False)
    head: BackboneHead | None = field(default=None, compare=False)
    logits: StoredLogits | None = field(default=None, compare=False)

    @property
    def num_samples(self) -> int:
        return len(self.labels)


# --- head -------------------------------------------------------------------------------------------------------

def read_head(g: h5py.Group, path: Path, D: int, K: int) -> BackboneHead | None:
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


# --- stored logits ----------------------------------------------------------------------------------------------

def check_logits(where, logits: StoredLogits, N: int, K: int) -> None:
    """Rows distinct, ascending, in 0..N-1; values (R, C) finite; classes distinct in 0..K-1 (CacheError)."""
    rows, values, classes = np.asarray(logits.rows), np.asarray(logits.values), list(logits.classes)
    R, C = len(rows), len(classes)
    if rows.ndim != 1 or values.shape != (R, C):
        raise CacheError(where, f"logits of shape {values.shape} for {R} rows and {C} classes")
    if R and (np.any(np.diff(rows) <= 0) or rows[0] < 0 or rows[-1] >= N):
        raise CacheError(where, f"logits rows must be distinct, ascending and in 0..{N - 1}")
    if C == 0 or len(set(classes)) != C or min(classes) < 0 or max(classes) >= K:
        raise CacheError(where, f"logits classes must be distinct indices into the {K}-class table")
    if not np.isfinite(values).all():
        raise CacheError(where, "logits hold NaN or infinite values")


def read_logits(g: h5py.Group, path: Path, N: int, K: int) -> StoredLogits | None:
    if "logits" not in g:
        return None
    h = g["logits"]
    logits = StoredLogits(require(h, path, "rows", ndim=1)[()].astype(np.int64),
                          require(h, path, "values", ndim=2)[()].astype(np.float32),
                          tuple(int(c) for c in require(h, path, "classes", ndim=1)[()]),
                          tuple(json.loads(h.attrs.get("source", "[]"))))
    check_logits(f"{path} ('{h.name}')", logits, N, K)
    return logits


def write_logits(g: h5py.Group, logits: StoredLogits) -> None:
    h = g.create_group("logits")
    h.create_dataset("rows", data=np.asarray(logits.rows, dtype=np.int64))
    h.create_dataset("values", data=np.asarray(logits.values, dtype=np.float32))
    h.create_dataset("classes", data=np.asarray(logits.classes, dtype=np.int64))
    h.attrs["source"] = to_json(list(logits.source))


# --- validation view (same rows) --------------------------------------------------------------------------------

def _backbone_attrs(g: h5py.Group, path: Path) -> tuple[str, str, tuple[int, ...], dict]:
    try:
        sha, arch = str(g.attrs["backbone-sha256"]), str(g.attrs["backbone-arch"])
        trained = tuple(int(c) for c in json.loads(g.attrs["trained-classes"]))
    except KeyError as exc:
        raise CacheError(path, f"'{g.name}' group misses attribute {exc}") from None
    return sha, arch, trained, json.loads(g.attrs["provenance"]) if "provenance" in g.attrs else {}


def write_backbone_attrs(g: h5py.Group, sha: str, arch: str, trained_classes, provenance: dict) -> None:
    g.attrs["backbone-sha256"] = sha
    g.attrs["backbone-arch"] = arch
    g.attrs["trained-classes"] = json.dumps([int(c) for c in trained_classes])
    g.attrs["provenance"] = to_json(provenance)


def read_validation(f: h5py.File, path: Path, N: int, D: int, W: int, K: int, with_data: bool) -> ValidationView:
    g = f["validation"]
    feats, masked = require(g, path, "features", ndim=2), require(g, path, "masked", ndim=3)
    if feats.shape != (N, D) or masked.shape != (N, W, D):
        raise CacheError(path, f"'validation' views have shapes {feats.shape}, {masked.shape}; expected ({N}, {D}) "
                               f"and ({N}, {W}, {D}) like the main features")
    sha, arch, trained, prov = _backbone_attrs(g, path)
    if with_data:
        fv, mv = feats[()].astype(np.float32), masked[()].astype(np.float32)
        if not (np.isfinite(fv).all() and np.isfinite(mv).all()):
            raise CacheError(path, "validation features contain NaN or infinite values")
    else:
        fv, mv = np.zeros((0, D), np.float32), np.zeros((0, W, D), np.float32)
    return ValidationView(fv, mv, sha, arch, trained, prov, read_head(g, path, D, K))


# --- validation set (own rows) ----------------------------------------------------------------------------------

def check_validation_set(where, vs: ValidationSet, D: int, K: int, split: dict, header: bool = False) -> None:
    """Shapes, finite features, labels in the class table, codes 0/1, trained classes that leave out the split's
    unseen and val_unseen classes, and training rows only of trained classes (CacheError naming ``where``).
    ``header``: ``vs`` holds no feature rows (``features`` (0, D))."""
    Nv = len(vs.labels)
    if vs.features.shape != (0 if header else Nv, D) or len(vs.partition) != Nv or len(vs.sample_ids) != Nv:
        raise CacheError(where, f"'validation_set' has features {vs.features.shape}, {len(vs.partition)} partition "
                                f"codes and {len(vs.sample_ids)} sample ids for {Nv} labels; expected ({Nv}, {D})")
    if Nv and (vs.labels.min() < 0 or vs.labels.max() >= K):
        raise CacheError(where, f"'validation_set' labels outside the {K}-class table")
    if Nv and not np.isin(vs.partition, (SEEN_TRAIN, SEEN_VAL)).all():
        raise CacheError(where, "'validation_set' partition codes must be 0 (seen_train) or 1 (seen_val)")
    if vs.features.size and not np.isfinite(vs.features).all():
        raise CacheError(where, "validation set features contain NaN or infinite values")
    leaked = sorted(set(vs.trained_classes) & (set(split["unseen"]) | set(split["val_unseen"])))
    if leaked:
        raise CacheError(where, f"the validation backbone was trained on classes {leaked} that are unseen or "
                                "val_unseen in this split")
    strays = sorted(set(vs.labels[vs.partition == SEEN_TRAIN].tolist()) - set(vs.trained_classes))
    if strays:
        raise CacheError(where, f"'validation_set' training rows of classes {strays} its backbone did not learn")
    if vs.logits is not None:
        check_logits(where, vs.logits, Nv, K)


def read_validation_set(f: h5py.File, path: Path, D: int, K: int, split: dict, with_data: bool) -> ValidationSet:
    g = f["validation_set"]
    feats = require(g, path, "features", ndim=2)
    labels = require(g, path, "labels", ndim=1)[()].astype(np.int64)
    sha, arch, trained, prov = _backbone_attrs(g, path)
    if feats.shape != (len(labels), D):
        raise CacheError(path, f"'validation_set/features' has shape {feats.shape}, expected ({len(labels)}, {D})")
    vs = ValidationSet(feats[()].astype(np.float32) if with_data else np.zeros((0, D), np.float32),
                       labels, require(g, path, "partition", ndim=1)[()].astype(np.int8),
                       read_strings(require(g, path, "sample_ids", ndim=1)), sha, arch, trained, prov,
                       read_head(g, path, D, K), read_logits(g, path, len(labels), K))
    check_validation_set(path, vs, D, K, split, header=not with_data)
    return vs


def write_validation_set(f: h5py.File, vs: ValidationSet) -> None:
    g = f.create_group("validation_set")
    g.create_dataset("features", data=np.asarray(vs.features, dtype=np.float32))
    g.create_dataset("labels", data=np.asarray(vs.labels, dtype=np.int64))
    g.create_dataset("partition", data=np.asarray(vs.partition, dtype=np.int8))
    write_strings(g, "sample_ids", vs.sample_ids)
    write_backbone_attrs(g, vs.backbone_sha256, vs.backbone_arch, vs.trained_classes, vs.provenance)
    if vs.head is not None:
        write_head(g, vs.head)
    if vs.logits is not None:
        write_logits(g, vs.logits)
