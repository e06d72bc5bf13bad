"""The canonical skeleton cache (``smie.skeletons``): preprocessed sequences of one data set, checked on read.

Layout (see docs/cache-format.md): ``skeletons`` (N, C, T, V, M) float32 chunked one sample per chunk,
``labels`` (N,) int64, ``lengths`` (N,) int32, ``sample_ids`` (N,) str, ``class_names`` (K,) str,
group ``meta`` of per-sample int32 columns; root attributes ``layout``, ``dataset``, ``num_frames``.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from smie.features.store import (
    CacheError,
    atomic_path,
    open_checked,
    read_provenance,
    read_strings,
    require,
    write_header,
    write_strings,
)

ENCODING_TYPE = "smie.skeletons"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class SkeletonSet:
    """A whole preprocessed data set in memory.

    ``data`` is (N, C, T, V, M) float32; ``labels`` (N,) int64 indexes ``class_names`` (the data set's whole
    class table, K entries); ``lengths`` (N,) int32 is the valid frame count before resampling;
    ``meta`` holds per-sample int32 columns (subject, setup, camera, replication; -1 where unknown).
    """

    data: np.ndarray
    labels: np.ndarray
    lengths: np.ndarray
    sample_ids: tuple[str, ...]
    class_names: tuple[str, ...]
    layout: str
    dataset: str
    meta: dict[str, np.ndarray] = field(default_factory=dict)
    provenance: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.data.ndim != 5:
            raise ValueError(f"skeleton data must be (N, C, T, V, M), got shape {self.data.shape}")
        n = self.data.shape[0]
        for name, arr in (("labels", self.labels), ("lengths", self.lengths)):
            if len(arr) != n and not (n == 0 and name in ("labels", "lengths")):
                raise ValueError(f"{name} has {len(arr)} entries for {n} samples")

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> "SkeletonSet":
        """Rows ``index`` of every per-sample field."""
        idx = np.asarray(index)
        return dataclasses.replace(
            self,
            data=self.data[idx],
            labels=self.labels[idx],
            lengths=self.lengths[idx],
            sample_ids=tuple(self.sample_ids[i] for i in idx),
            meta={k: v[idx] for k, v in self.meta.items()},
        )


def write_skeletons(path: str | os.PathLike, sset: SkeletonSet, provenance: dict) -> None:
    """Write ``sset`` atomically to ``path`` (temporary file, then rename)."""
    N, C, T, V, M = sset.data.shape
    with atomic_path(path) as tmp:
        import h5py

        with h5py.File(tmp, "w") as f:
            write_header(f, ENCODING_TYPE, SCHEMA_VERSION, provenance)
            f.attrs["layout"] = sset.layout
            f.attrs["dataset"] = sset.dataset
            f.attrs["num_frames"] = T
            f.create_dataset(
                "skeletons",
                data=sset.data.astype(np.float32, copy=False),
                chunks=(1, C, T, V, M) if N else None,
                compression="gzip" if N else None,
                compression_opts=1 if N else None,
            )
            f.create_dataset("labels", data=np.asarray(sset.labels, dtype=np.int64))
            f.create_dataset("lengths", data=np.asarray(sset.lengths, dtype=np.int32))
            write_strings(f, "sample_ids", sset.sample_ids)
            write_strings(f, "class_names", sset.class_names)
            g = f.create_group("meta")
            for name, col in sset.meta.items():
                g.create_dataset(name, data=np.asarray(col, dtype=np.int32))


def _read(path: str | os.PathLike, with_data: bool) -> SkeletonSet:
    with open_checked(path, ENCODING_TYPE, SCHEMA_VERSION) as f:
        ds = require(f, path, "skeletons", ndim=5)
        labels = require(f, path, "labels", ndim=1)[()]
        N, C, T, V, M = ds.shape
        if len(labels) != N:
            raise CacheError(path, f"'labels' has {len(labels)} rows but 'skeletons' has {N}")
        class_names = read_strings(require(f, path, "class_names", ndim=1))
        if N and (labels.min() < 0 or labels.max() >= len(class_names)):
            raise CacheError(path, f"labels outside the {len(class_names)}-class table")
        data = ds[()] if with_data else np.zeros((0, C, T, V, M), np.float32)
        meta = {k: v[()] for k, v in f["meta"].items()} if "meta" in f else {}
        return SkeletonSet(
            data=data,
            labels=labels.astype(np.int64),
            lengths=require(f, path, "lengths", ndim=1)[()].astype(np.int32),
            sample_ids=read_strings(require(f, path, "sample_ids", ndim=1)),
            class_names=class_names,
            layout=str(f.attrs["layout"]),
            dataset=str(f.attrs.get("dataset", "")),
            meta=meta,
            provenance=read_provenance(f),
        )


def read_skeletons(path: str | os.PathLike) -> SkeletonSet:
    """Load the whole cache, data included."""
    return _read(path, with_data=True)


def read_skeleton_header(path: str | os.PathLike) -> SkeletonSet:
    """Everything but the sequences (``data`` has shape (0, C, T, V, M)): labels, ids, classes, layout, meta."""
    return _read(path, with_data=False)


def iter_skeleton_chunks(
    path: str | os.PathLike, start: int = 0, stop: int | None = None, chunk: int = 256
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(offset, data[offset:offset+chunk])`` with data (n, C, T, V, M) float32, bounded memory."""
    with open_checked(path, ENCODING_TYPE, SCHEMA_VERSION) as f:
        ds = require(f, path, "skeletons", ndim=5)
        end = ds.shape[0] if stop is None else min(stop, ds.shape[0])
        for i in range(start, end, chunk):
            yield i, ds[i : min(i + chunk, end)]
