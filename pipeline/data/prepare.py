"""``smie prepare``: read raw skeleton data in any supported format, preprocess, write the skeleton cache.

Reading is lazy (one file or sample at a time) and each sequence is preprocessed as soon as it is read
(:mod:`smie.pipeline.data.preprocess`), so only the fixed-length (N, C, T, V, M) result is held in memory. A sample
that cannot be read or has no valid frame raises :class:`SmieError` naming its file, or with ``skip_bad`` is
skipped and listed in the result and in the cache's provenance.
"""
from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from smie.features.skeletons import SkeletonSet, write_skeletons
from smie.features.store import SmieError, file_sha256, provenance
from smie.pipeline.data.layouts import get_layout
from smie.pipeline.data.preprocess import preprocess_sample
from smie.pipeline.data.readers import open_raw


@dataclass(frozen=True)
class PrepareConfig:
    """What to read (``format``, ``input``, PKU-MMD ``labels``) and how to preprocess it into ``out``."""

    format: str
    input: Path
    out: Path
    num_frames: int = 50
    max_bodies: int = 2
    dataset: str | None = None
    labels: Path | None = None
    skip_bad: bool = False
    center: str = "first"


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


def prepare(cfg: PrepareConfig) -> PrepareResult:
    """Read ``cfg.input`` as ``cfg.format``, preprocess every sample, write ``cfg.out`` (an smie.skeletons cache)."""
    if cfg.max_bodies < 1:
        raise SmieError(f"max_bodies must be at least 1, got {cfg.max_bodies}")
    started = time.time()
    source = open_raw(cfg.format, cfg.input, max_bodies=cfg.max_bodies, dataset=cfg.dataset, labels=cfg.labels)
    layout = get_layout(source.layout)
    skipped = list(source.skipped)
    data, labels, lengths, ids, metas = [], [], [], [], []
    for name, load in tqdm(source.items, desc=f"prepare {cfg.format}", unit="item", disable=None):
        try:
            done = []
            for s in load():
                x, length = preprocess_sample(s.data, layout, cfg.num_frames, cfg.center, where=s.source or s.sample_id)
                done.append((s, x, length))
        except SmieError as exc:
            if not cfg.skip_bad:
                raise
            skipped.append((name, str(exc)))
            continue
        for s, x, length in done:
            data.append(x)
            labels.append(s.label)
            lengths.append(length)
            ids.append(s.sample_id)
            metas.append(s.meta)
    if not data:
        raise SmieError(f"{cfg.input}: no usable samples ({len(skipped)} skipped)")
    if len(set(ids)) != len(ids):
        dupes = sorted(i for i, n in Counter(ids).items() if n > 1)[:5]
        raise SmieError(f"{cfg.input}: sample ids repeat ({', '.join(dupes)}); inputs overlap")
    columns = list(dict.fromkeys(list(source.meta_columns) + [k for m in metas for k in m]))
    meta = {c: np.array([m.get(c, -1) for m in metas], dtype=np.int32) for c in columns}
    sset = SkeletonSet(
        data=np.stack(data).astype(np.float32),
        labels=np.asarray(labels, dtype=np.int64),
        lengths=np.asarray(lengths, dtype=np.int32),
        sample_ids=tuple(ids),
        class_names=tuple(source.class_names),
        layout=layout.name,
        dataset=source.dataset,
        meta=meta,
    )
    prov = provenance(
        cfg,
        input={"path": str(cfg.input), "labels": None if cfg.labels is None else str(cfg.labels),
               "sha256": input_digest(cfg.input, cfg.labels)},
        skipped=[list(s) for s in skipped],
        seconds=round(time.time() - started, 2),
    )
    write_skeletons(cfg.out, sset, prov)
    return PrepareResult(Path(cfg.out), sset.num_samples, len(sset.class_names), skipped)
