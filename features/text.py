"""The text cache (``smie.text``): per class and per description kind, P encoded texts, checked on read.

Layout (docs/cache-text.md): root ``class_names`` (K,) str and ``class_ids`` (K,) int64; one group
``kinds/<kind>`` per kind (``label``, ``action``, ``motion``, ``parts`` or a user kind) with ``embeddings``
(K, P, E) float32, ``texts`` (K, P) str and ``count`` (K,) int32. Classes with fewer than P descriptions are
padded: rows ``count[k]:`` are zero vectors with empty texts, so use :meth:`TextCache.mask` or
:meth:`TextCache.pooled` rather than a plain mean over P. Root attributes ``encoder``, ``encoder_spec``,
``weights_sha256``, ``dim``, ``normalised``, ``sources``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from smie.features.store import (
    STR_DTYPE,
    CacheError,
    SmieError,
    atomic_path,
    open_checked,
    read_provenance,
    read_strings,
    require,
    write_header,
    write_strings,
)

ENCODING_TYPE = "smie.text"
SCHEMA_VERSION = 1
NORM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class TextKind:
    """One kind's texts: ``embeddings`` (K, P, E) float32, ``texts`` (K, P), ``count`` (K,) valid rows per class."""

    embeddings: np.ndarray
    texts: tuple[tuple[str, ...], ...]
    count: np.ndarray


@dataclass(frozen=True)
class TextCache:
    """Encoded class texts of K classes, per kind; ``class_ids`` (K,) index the data set's class table."""

    class_names: tuple[str, ...]
    class_ids: np.ndarray
    groups: dict[str, TextKind]
    encoder: str
    encoder_spec: str
    weights_sha256: str
    dim: int
    normalised: bool = True
    sources: tuple[dict, ...] = ()
    provenance: dict = field(default_factory=dict, compare=False)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self.groups)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _kind(self, kind: str) -> TextKind:
        if kind not in self.groups:
            raise SmieError(f"text cache has no kind {kind!r}; it holds: {', '.join(self.groups)}")
        return self.groups[kind]

    def embeddings(self, kind: str) -> np.ndarray:
        """(K, P, E) float32; rows at and beyond ``count(kind)[k]`` are zero padding."""
        return self._kind(kind).embeddings

    def texts(self, kind: str) -> tuple[tuple[str, ...], ...]:
        """(K, P) texts, padding entries ``""``."""
        return self._kind(kind).texts

    def count(self, kind: str) -> np.ndarray:
        """(K,) int32 number of real descriptions per class (1..P)."""
        return self._kind(kind).count

    def mask(self, kind: str) -> np.ndarray:
        """(K, P) bool, True where a real description is stored."""
        g = self._kind(kind)
        return np.arange(g.embeddings.shape[1])[None, :] < g.count[:, None]

    def pooled(self, kind: str) -> np.ndarray:
        """(K, E) float32: the mean of each class's real descriptions, L2-normalised."""
        emb, m = self.embeddings(kind), self.mask(kind)
        mean = (emb * m[..., None]).sum(axis=1) / m.sum(axis=1, keepdims=True)
        return (mean / np.linalg.norm(mean, axis=1, keepdims=True)).astype(np.float32)


def _check(problem_path, class_names, class_ids, groups, dim, normalised) -> None:
    """Shared consistency rules of writer and reader; raise CacheError naming ``problem_path``."""
    K = len(class_names)
    if len(class_ids) != K:
        raise CacheError(problem_path, f"'class_ids' has {len(class_ids)} entries for {K} class names")
    if not groups:
        raise CacheError(problem_path, "holds no kinds")
    for kind, g in groups.items():
        emb = g.embeddings
        if emb.ndim != 3 or emb.shape[0] != K or emb.shape[2] != dim:
            raise CacheError(problem_path, f"kind {kind!r}: embeddings {emb.shape}, expected ({K}, P, {dim})")
        P = emb.shape[1]
        if len(g.texts) != K or any(len(row) != P for row in g.texts):
            raise CacheError(problem_path, f"kind {kind!r}: texts are not ({K}, {P})")
        if g.count.shape != (K,) or P == 0 or g.count.min() < 1 or g.count.max() > P:
            raise CacheError(problem_path, f"kind {kind!r}: count must be (K,) with values in 1..{P}")
        valid = np.arange(P)[None, :] < g.count[:, None]
        if np.any(emb[~valid] != 0) or any(t for row, c in zip(g.texts, g.count) for t in row[c:]):
            raise CacheError(problem_path, f"kind {kind!r}: padding entries beyond 'count' are not empty")
        if not np.all(np.isfinite(emb)):
            raise CacheError(problem_path, f"kind {kind!r}: embeddings hold non-finite values")
        if normalised:
            norms = np.linalg.norm(emb[valid], axis=1)
            if norms.size and np.max(np.abs(norms - 1)) > NORM_TOLERANCE:
                raise CacheError(problem_path, f"kind {kind!r}: embeddings are flagged normalised but are not unit")


def write_text(path: str | os.PathLike, cache: TextCache, provenance: dict) -> None:
    """Write ``cache`` atomically to ``path`` after checking its shapes (CacheError names ``path``)."""
    _check(path, cache.class_names, cache.class_ids, cache.groups, cache.dim, cache.normalised)
    import h5py

    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            write_header(f, ENCODING_TYPE, SCHEMA_VERSION, provenance)
            f.attrs["encoder"] = cache.encoder
            f.attrs["encoder_spec"] = cache.encoder_spec
            f.attrs["weights_sha256"] = cache.weights_sha256
            f.attrs["dim"] = int(cache.dim)
            f.attrs["normalised"] = bool(cache.normalised)
            f.attrs["sources"] = json.dumps(list(cache.sources), sort_keys=True)
            write_strings(f, "class_names", cache.class_names)
            f.create_dataset("class_ids", data=np.asarray(cache.class_ids, dtype=np.int64))
            kinds = f.create_group("kinds", track_order=True)
            for kind, g in cache.groups.items():
                grp = kinds.create_group(kind)
                grp.create_dataset("embeddings", data=np.asarray(g.embeddings, dtype=np.float32))
                K, P = g.embeddings.shape[:2]
                texts = np.asarray([t for row in g.texts for t in row], dtype=object).reshape(K, P)
                grp.create_dataset("texts", data=texts, dtype=STR_DTYPE)
                grp.create_dataset("count", data=np.asarray(g.count, dtype=np.int32))


def read_text(path: str | os.PathLike) -> TextCache:
    """Load and check a text cache: type, version, shapes, K consistency, unit norms, padding."""
    with open_checked(path, ENCODING_TYPE, SCHEMA_VERSION) as f:
        for attr in ("encoder", "dim", "normalised"):
            if attr not in f.attrs:
                raise CacheError(path, f"missing root attribute '{attr}'")
        class_names = read_strings(require(f, path, "class_names", ndim=1))
        class_ids = require(f, path, "class_ids", ndim=1)[()].astype(np.int64)
        if "kinds" not in f:
            raise CacheError(path, "missing group 'kinds'")
        groups = {}
        for kind, grp in f["kinds"].items():
            emb = require(grp, path, "embeddings", ndim=3)[()]
            if emb.dtype != np.float32:
                raise CacheError(path, f"kind {kind!r}: embeddings are {emb.dtype}, expected float32")
            texts_ds = require(grp, path, "texts", ndim=2)
            texts = tuple(
                tuple(t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in row) for row in texts_ds[()]
            )
            count = require(grp, path, "count", ndim=1)[()].astype(np.int32)
            groups[kind] = TextKind(emb, texts, count)
        dim, normalised = int(f.attrs["dim"]), bool(f.attrs["normalised"])
        _check(path, class_names, class_ids, groups, dim, normalised)
        return TextCache(
            class_names=class_names,
            class_ids=class_ids,
            groups=groups,
            encoder=str(f.attrs["encoder"]),
            encoder_spec=str(f.attrs.get("encoder_spec", f.attrs["encoder"])),
            weights_sha256=str(f.attrs.get("weights_sha256", "")),
            dim=dim,
            normalised=normalised,
            sources=tuple(json.loads(f.attrs.get("sources", "[]"))),
            provenance=read_provenance(f),
        )
