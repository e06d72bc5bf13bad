"""``smie prepare``: read raw skeleton data in any supported format, preprocess, write the skeleton cache.

Streaming: raw items (files, segments, array rows) are read and preprocessed
(:mod:`smie.pipeline.data.preprocess`) ``chunk_size`` at a time, by ``workers`` processes when more than one
(parsing text dominates); results come back in item order, so the cache does not depend on the worker count.
Each finished chunk is appended to the resumable partial beside the target
(:mod:`smie.pipeline.data.prepare_partial`); when every item is done the cache is written from the partial one
chunk at a time into a temporary file and renamed onto the target. Peak memory is a few chunks of
(chunk_size, C, T, V, M) float32 plus the per-sample ids, never the whole data set.

A killed run resumes after its last finished chunk and writes the same bytes as an uninterrupted one (the
provenance holds no timing; its ``created`` stamp honours ``SOURCE_DATE_EPOCH``). A partial made from other input
bytes or settings is refused (``resume=False`` starts over). A sample that cannot be read or has no valid frame
raises :class:`SmieError` naming its file (the partial is then deleted: the input has to change), or with
``skip_bad`` is skipped and listed in the result and the cache's provenance. A failed write (disk full) keeps the
partial, so a rerun continues.
"""
from __future__ import annotations

import hashlib
import multiprocessing
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from smie.features.skeletons import SkeletonSet, write_skeleton_stream
from smie.features.store import SmieError, file_sha256, provenance, text_sha256, to_json
from smie.pipeline.data.layouts import layout_of
from smie.pipeline.data.prepare_partial import Partial
from smie.pipeline.data.preprocess import preprocess_sample
from smie.pipeline.data.readers import open_raw

TASK_ITEMS = 16  # raw items per worker task
RUN_ONLY = ("workers", "chunk_size", "resume")  # settings that do not change the cache


@dataclass(frozen=True)
class PrepareConfig:
    """What to read (``format``, ``input``, ``labels``: PKU-MMD's label files or a BVH label table,
    ``label_pattern``: BVH labels from file names) and how to preprocess it into ``out``; ``workers`` reader
    processes, ``chunk_size`` raw items per resumable chunk."""

    format: str
    input: Path
    out: Path
    num_frames: int = 50
    max_bodies: int = 2
    dataset: str | None = None
    labels: Path | None = None
    label_pattern: str | None = None
    skip_bad: bool = False
    center: str = "first"
    workers: int = 1
    chunk_size: int = 1024
    resume: bool = True


@dataclass(frozen=True)
class PrepareResult:
    path: Path
    num_samples: int
    num_classes: int
    skipped: list[tuple[str, str]] = field(default_factory=list)


def input_digest(*paths: Path | None) -> str:
    """SHA-256 over the names, sizes and byte hashes of the input files (a directory's files, not recursive)."""
    h = hashlib.sha256()
    for root in paths:
        if root is None:
            continue
        root = Path(root)
        files = sorted(p for p in root.iterdir() if p.is_file()) if root.is_dir() else [root]
        for f in files:
            h.update(f"{f.name}\t{f.stat().st_size}\t{file_sha256(f)}\n".encode())
    return h.hexdigest()


def cache_settings(cfg: PrepareConfig) -> dict:
    """The config fields the cache depends on (recorded in its provenance and in the resume key)."""
    return {k: v for k, v in vars(cfg).items() if k not in RUN_ONLY}


_WORKER: dict = {}


def _open(cfg: PrepareConfig):
    return open_raw(cfg.format, cfg.input, max_bodies=cfg.max_bodies, dataset=cfg.dataset, labels=cfg.labels,
                    label_pattern=cfg.label_pattern)


def _init_worker(cfg: PrepareConfig) -> None:
    source = _open(cfg)
    _WORKER.update(cfg=cfg, items=source.items, layout=layout_of(source, str(cfg.input)))


def _load_items(span: tuple[int, int]) -> list[tuple[str, bool, object]]:
    """Items ``start:stop`` -> per item ``(name, True, rows)`` or ``(name, False, message)``; rows are
    ``(sample_id, label, valid length, x (C, num_frames, V, M) float32, meta)``."""
    cfg, layout = _WORKER["cfg"], _WORKER["layout"]
    out = []
    for name, load in _WORKER["items"][span[0] : span[1]]:
        try:
            rows = []
            for s in load():
                x, length = preprocess_sample(s.data, layout, cfg.num_frames, cfg.center, where=s.source or s.sample_id)
                rows.append((s.sample_id, int(s.label), int(length), x, dict(s.meta)))
            out.append((name, True, rows))
        except SmieError as exc:
            out.append((name, False, str(exc)))
    return out


def _tasks(start: int, stop: int) -> list[tuple[int, int]]:
    return [(a, min(a + TASK_ITEMS, stop)) for a in range(start, stop, TASK_ITEMS)]


def _chunks(cfg: PrepareConfig, source, start: int) -> Iterator[tuple[int, list]]:
    """``(items_end, per-item results)`` of consecutive chunks from item ``start``, in item order; with workers,
    the next chunk is parsed while the caller writes this one (two chunks in flight at most)."""
    n_items = len(source.items)
    spans = [(a, min(a + cfg.chunk_size, n_items)) for a in range(start, n_items, cfg.chunk_size)]
    if cfg.workers <= 1:
        _WORKER.update(cfg=cfg, items=source.items, layout=layout_of(source, str(cfg.input)))
        for a, b in spans:
            yield b, _load_items((a, b))
        return
    with multiprocessing.get_context("spawn").Pool(cfg.workers, _init_worker, (cfg,)) as pool:
        jobs = deque()
        for a, b in spans:
            jobs.append((b, pool.map_async(_load_items, _tasks(a, b), chunksize=1)))
            if len(jobs) == 2:
                end, job = jobs.popleft()
                yield end, [r for part in job.get() for r in part]
        while jobs:
            end, job = jobs.popleft()
            yield end, [r for part in job.get() for r in part]


def prepare(cfg: PrepareConfig) -> PrepareResult:
    """Read ``cfg.input`` as ``cfg.format``, preprocess every sample, write ``cfg.out`` (an smie.skeletons cache)."""
    if cfg.max_bodies < 1 or cfg.workers < 1 or cfg.chunk_size < 1:
        raise SmieError(f"max_bodies, workers and chunk_size must be at least 1, got {cfg.max_bodies}, "
                        f"{cfg.workers}, {cfg.chunk_size}")
    source = _open(cfg)
    if not source.class_names:
        raise SmieError(f"{cfg.input}: these {cfg.format} files carry no action labels; pass --labels (a table of "
                        "file stem -> class name) or --label-pattern (e.g. 'dataset-1_{label}_{style}_{id}')")
    layout = layout_of(source, str(cfg.input))
    settings = cache_settings(cfg)
    digest = input_digest(cfg.input, cfg.labels)
    key = text_sha256(to_json([settings, digest]))
    part = Partial(cfg.out, key, resume=cfg.resume)
    seen = set(part.sample_ids())
    bar = tqdm(total=len(source.items), initial=part.items_done, desc=f"prepare {cfg.format}", unit="item",
               disable=None)
    try:
        for end, results in _chunks(cfg, source, part.items_done):
            rows, skipped = [], []
            for name, ok, payload in results:
                if not ok and not cfg.skip_bad:
                    raise SmieError(payload)
                (rows.extend if ok else skipped.append)(payload if ok else (name, payload))
            dupes = sorted({r[0] for r in rows if r[0] in seen} | _repeats([r[0] for r in rows]))[:5]
            if dupes:
                raise SmieError(f"{cfg.input}: sample ids repeat ({', '.join(dupes)}); inputs overlap")
            seen.update(r[0] for r in rows)
            _write(part.path, lambda: part.append(rows, end, skipped))
            bar.update(end - bar.n)
    except WriteFailed:
        raise
    except SmieError:
        part.remove()  # the input has to change before this can succeed; nothing to resume
        raise
    finally:
        bar.close()
    skipped = list(source.skipped) + part.skipped
    if not part.rows:
        part.remove()
        raise SmieError(f"{cfg.input}: no usable samples ({len(skipped)} skipped)")
    columns = list(dict.fromkeys(list(source.meta_columns) + part.columns))
    header = SkeletonSet(
        data=np.zeros((0, 3, cfg.num_frames, layout.num_joints, cfg.max_bodies), np.float32),
        labels=np.zeros(0, np.int64), lengths=np.zeros(0, np.int32), sample_ids=(),
        class_names=tuple(source.class_names), layout=layout.name, dataset=source.dataset,
        meta={c: np.zeros(0, np.int32) for c in columns}, layout_spec=layout.spec(),
    )
    prov = provenance(
        settings,
        input={"path": str(cfg.input), "labels": None if cfg.labels is None else str(cfg.labels), "sha256": digest},
        skipped=[list(s) for s in skipped],
        **({"source": source.info} if source.info else {}),
    )
    _write(cfg.out, lambda: write_skeleton_stream(cfg.out, header, part.rows, part.iter_sets(header), prov))
    n = part.rows
    part.remove()
    return PrepareResult(Path(cfg.out), n, len(source.class_names), skipped)


def _repeats(ids: list[str]) -> set[str]:
    seen: set[str] = set()
    return {i for i in ids if i in seen or seen.add(i)}


class WriteFailed(SmieError):
    """Writing the partial or the cache failed (disk full, ...); the partial is kept for a rerun."""


def _write(path: Path, write) -> None:
    """Run ``write``; an OS error (disk full, no permission) becomes a :class:`SmieError` naming ``path``."""
    try:
        write()
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise WriteFailed(f"{path}: write failed ({why}); nothing was written under the final name, and a rerun "
                        "resumes after the last finished chunk") from None
