"""The canonical skeleton cache (``smie.skeletons``): preprocessed sequences of one data set, checked on read.

Layout (see docs/cache-format.md): ``skeletons`` (N, C, T, V, M) float32 chunked one sample per chunk,
``labels`` (N,) int64, ``lengths`` (N,) int32, ``sample_ids`` (N,) str, ``class_names`` (K,) str,
group ``meta`` of per-sample int32 columns; root attributes ``layout``, ``dataset``, ``num_frames``.
Schema-version 2 adds the group ``joint_layout`` (the layout as data: ``joint_names`` (V,) str, ``bones``
(V-1, 2) int32 (child, parent) pairs, attributes ``center``, ``graph_center``, ``up_axis``), written whenever the
set carries a ``layout_spec`` (``smie prepare`` always does; a custom layout needs it). Version 1 files have none:
their ``layout`` is a preset name. This module stores the spec as plain data; building and validating the
layout is :func:`smie.pipeline.data.layouts.layout_of`'s job (the data layer sits above this one).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from smie.features.store import (
    STR_DTYPE,
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
SCHEMA_VERSION = 2
WRITE_ROWS = 1024  # rows per HDF5 write; fixed, so equal inputs give equal bytes


@dataclass(frozen=True)
class SkeletonSet:
    """A whole preprocessed data set in memory.

    ``data`` is (N, C, T, V, M) float32; ``labels`` (N,) int64 indexes ``class_names`` (the data set's whole
    class table, K entries); ``lengths`` (N,) int32 is the valid frame count before resampling;
    ``meta`` holds per-sample int32 columns (subject, setup, camera, replication; -1 where unknown).
    ``layout`` names the joint layout; ``layout_spec`` is that layout as data (``Layout.spec()``: joint_names,
    bones, center, graph_center, up_axis) or None for a preset known by name (version-1 caches).
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
    layout_spec: dict | None = None

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
    write_skeleton_stream(path, sset, sset.num_samples, [sset], provenance)


def write_skeleton_stream(
    path: str | os.PathLike, header: SkeletonSet, num_samples: int, chunks: Iterable[SkeletonSet], provenance: dict
) -> None:
    """Write a cache of ``num_samples`` rows from consecutive ``chunks`` atomically, one chunk in memory at a time.

    ``header`` gives the class table, layout, data set, the per-sample shape (``header.data`` is (n, C, T, V, M),
    n may be 0) and the meta columns (``header.meta`` keys; a chunk lacking a column gets -1 there). Each chunk is a
    :class:`SkeletonSet` of n rows with data (n, C, T, V, M). The bytes depend only on the arguments: datasets are
    created in a fixed order without timestamps (``track_times=False``).
    """
    import h5py

    _, C, T, V, M = header.data.shape
    N = int(num_samples)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            write_header(f, ENCODING_TYPE, SCHEMA_VERSION, provenance)
            f.attrs["layout"] = header.layout
            f.attrs["dataset"] = header.dataset
            f.attrs["num_frames"] = T
            if header.layout_spec is not None:
                _write_layout(f, header.layout_spec, V)
            big = dict(chunks=(1, C, T, V, M), compression="gzip", compression_opts=1) if N else {}
            ds = f.create_dataset("skeletons", shape=(N, C, T, V, M), dtype=np.float32, track_times=False, **big)
            cols = {name: f.create_dataset(name, shape=(N,), dtype=dt, track_times=False)
                    for name, dt in (("labels", np.int64), ("lengths", np.int32), ("sample_ids", STR_DTYPE))}
            write_strings(f, "class_names", header.class_names)
            g = f.create_group("meta")
            meta = {name: g.create_dataset(name, shape=(N,), dtype=np.int32, track_times=False) for name in header.meta}
            at = 0
            for part in _reblock(chunks, WRITE_ROWS):
                n = part.num_samples
                if at + n > N or part.data.shape[1:] != (C, T, V, M):
                    raise ValueError(f"chunk of shape {part.data.shape} does not fit rows {at}.. of {N}")
                ds[at : at + n] = part.data.astype(np.float32, copy=False)
                cols["labels"][at : at + n] = np.asarray(part.labels, dtype=np.int64)
                cols["lengths"][at : at + n] = np.asarray(part.lengths, dtype=np.int32)
                cols["sample_ids"][at : at + n] = np.asarray(list(part.sample_ids), dtype=object)
                for name, col in meta.items():
                    col[at : at + n] = np.asarray(part.meta.get(name, np.full(n, -1)), dtype=np.int32)
                at += n
            if at != N:
                raise ValueError(f"chunks gave {at} rows, expected {N}")


def _write_layout(f, spec: dict, V: int) -> None:
    """Group ``joint_layout``: the layout as data (see the module docstring)."""
    names, bones = list(spec["joint_names"]), np.asarray(spec["bones"], dtype=np.int32).reshape(-1, 2)
    if len(names) != V or bones.shape != (V - 1, 2):
        raise ValueError(f"layout spec of {len(names)} joints and {len(bones)} bones does not fit V={V}")
    g = f.create_group("joint_layout")
    write_strings(g, "joint_names", names)
    g.create_dataset("bones", data=bones, track_times=False)
    g.attrs["center"] = int(spec["center"])
    g.attrs["graph_center"] = int(spec.get("graph_center", spec["center"]))
    g.attrs["up_axis"] = str(spec.get("up_axis", "y"))


def _read_layout(f, path, V: int) -> dict | None:
    """The ``joint_layout`` group as a spec dict (None when absent), its shapes checked against V."""
    if "joint_layout" not in f:
        return None
    g = f["joint_layout"]
    names = read_strings(require(g, path, "joint_names", ndim=1))
    bones = require(g, path, "bones", ndim=2)[()]
    if len(names) != V or bones.shape != (V - 1, 2):
        raise CacheError(path, f"'joint_layout' has {len(names)} joint names and {bones.shape[0]} bones, but the "
                               f"skeletons have V={V} joints (expected {V} names and {V - 1} bones)")
    try:
        return {"joint_names": list(names), "bones": bones.astype(int).tolist(), "center": int(g.attrs["center"]),
                "graph_center": int(g.attrs.get("graph_center", g.attrs["center"])),
                "up_axis": str(g.attrs.get("up_axis", "y"))}
    except KeyError:
        raise CacheError(path, "'joint_layout' lacks its 'center' attribute") from None


def _reblock(chunks: Iterable[SkeletonSet], rows: int) -> Iterator[SkeletonSet]:
    """The rows of ``chunks`` regrouped into blocks of exactly ``rows`` (the last one shorter): the file's bytes
    (string heap, chunk writes) then do not depend on how the caller happened to chunk its input."""
    buf: list[SkeletonSet] = []
    have = 0
    for part in chunks:
        if part.num_samples:
            buf.append(part)
            have += part.num_samples
        if have >= rows:
            whole, full = _concat(buf), have - have % rows
            for start in range(0, full, rows):
                yield whole.subset(np.arange(start, start + rows))
            buf = [whole.subset(np.arange(full, have))] if have > full else []
            have -= full
    if have:
        yield _concat(buf)


def _concat(parts: list[SkeletonSet]) -> SkeletonSet:
    if len(parts) == 1:
        return parts[0]
    cols = list(dict.fromkeys(k for p in parts for k in p.meta))
    return dataclasses.replace(
        parts[0],
        data=np.concatenate([p.data for p in parts]),
        labels=np.concatenate([p.labels for p in parts]),
        lengths=np.concatenate([p.lengths for p in parts]),
        sample_ids=tuple(i for p in parts for i in p.sample_ids),
        meta={c: np.concatenate([p.meta.get(c, np.full(p.num_samples, -1, np.int32)) for p in parts]) for c in cols},
    )


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
            layout_spec=_read_layout(f, path, V),
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
