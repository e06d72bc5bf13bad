"""``smie extract-visual``: run the frozen backbone once over every sequence and its keyframe-masked views.

The skeleton cache is streamed in chunks of ``chunk_size`` samples (bounded memory), read ahead by ``workers``
DataLoader processes on CUDA so that decompression overlaps the GPU; each finished chunk is recorded in the
visual cache's partial file, so an interrupted run resumes from the last complete chunk. On CUDA the backbone
runs under bf16 autocast (features are stored as float32).
Partitions are recomputed with ``assign_partitions`` from the split and partition settings stored in the
backbone checkpoint, so stage two sees exactly the samples the backbone was (and was not) trained on.

The skeleton cache's SHA-256 is computed in a background thread while extraction runs (hashing a large cache
costs a sizeable share of a GPU run); rows are resumable only once it matched the checkpoint's, and a mismatch
stops the run and discards its rows as soon as the hash is known.

With ``validation_backbone`` (the split's validation backbone, ``pretrain-backbone --validation``) every batch
of rows and masked views is embedded by both backbones in the same pass (each loaded once; the skeletons are
read and masked once) and the second one's features go to the cache's ``validation`` group, which stage two
selects on (docs/evaluation.md); the group is part of the same resumable partial file and the same final
rename. It must be the validation backbone of the same split, partition and skeleton cache as ``backbone``.

The backbone checkpoint's pretraining classifier (``head_state_dict`` over ``head_classes``), when it has one, is
stored as the cache's ``head`` group (the validation backbone's in ``validation/head``), so that stage two can
compute the backbone's own class probabilities from the cached features (MSF's seen-class expert).

Under torchrun (``WORLD_SIZE``/``RANK`` set) or with an explicit ``shard=(rank, world)``, each rank extracts a
contiguous slice to ``<stem>.rank<r>.h5`` beside ``out``; when torch.distributed is initialised rank 0 joins
the shards into ``out`` after a barrier (under torchrun the process group is initialised here if needed).
"""
from __future__ import annotations

import dataclasses
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from smie.features.skeletons import iter_skeleton_chunks, read_skeleton_header
from smie.features.store import SmieError, file_sha256, provenance
from smie.features.visual import BackboneHead, ValidationView, VisualCache, VisualWriter, join_shards
from smie.pipeline.data.layouts import layout_of
from smie.pipeline.visual.keyframes import VARIANTS, masked_views, num_views
from smie.pipeline.visual.backbones import embed
from smie.pipeline.device import resolve_device


@dataclass(frozen=True)
class ExtractConfig:
    """``views`` masked views per sample (``official`` only; ``paper`` is deterministic and stores one);
    ``keyframes`` = k highest-motion frames removed; ``random_drop`` extra random frames removed (``official``);
    ``shard`` = (rank, world) to extract one contiguous slice without torchrun; ``workers`` = processes reading
    and decompressing skeleton batches ahead of the backbone (None: 4 on CUDA, 0 on CPU)."""

    skeletons: Path
    backbone: Path
    out: Path
    views: int = 4
    masking: str = "official"
    keyframes: int = 15
    random_drop: int = 15
    batch_size: int = 256
    chunk_size: int = 2048
    device: str = "auto"
    seed: int = 0
    resume: bool = True
    shard: tuple[int, int] | None = None
    workers: int | None = None
    validation_backbone: Path | None = None


def shard_of(cfg: ExtractConfig) -> tuple[int, int]:
    """(rank, world): the explicit ``cfg.shard``, else torchrun's environment, else (0, 1)."""
    rank, world = cfg.shard or (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)))
    if world < 1 or not 0 <= rank < world:
        raise SmieError(f"invalid shard rank {rank} of world size {world}")
    return rank, world


def shard_path(out: Path, rank: int) -> Path:
    return out.with_name(f"{out.stem}.rank{rank}.h5")


def _check_config(cfg: ExtractConfig, T: int) -> None:
    if cfg.masking not in VARIANTS:
        raise SmieError(f"unknown masking {cfg.masking!r}; choose one of {', '.join(VARIANTS)}")
    left = T - cfg.keyframes - (cfg.random_drop if cfg.masking == "official" else 0)
    if cfg.keyframes < 0 or cfg.random_drop < 0 or left < 1:
        raise SmieError(f"{cfg.skeletons}: cannot mask {cfg.keyframes} keyframes and {cfg.random_drop} random "
                        f"frames out of {T} frames")
    for name in ("views", "batch_size", "chunk_size"):
        if getattr(cfg, name) < 1:
            raise SmieError(f"{name} must be at least 1, got {getattr(cfg, name)}")
    if cfg.workers is not None and cfg.workers < 0:
        raise SmieError(f"workers must be 0 or more, got {cfg.workers}")


def check_compatible(cfg: ExtractConfig, info, sset, skeleton_sha: str | None, partition: np.ndarray,
                     backbone: Path | None = None) -> None:
    """Refuse a backbone not trained on this very cache, or whose training saw classes this cache marks unseen.

    Beyond the checkpoint's class table, split and skeleton hash, the recomputed ``seen_train``/``seen_val``
    samples must be the ones the checkpoint records having trained and selected on. ``backbone`` names the
    checkpoint in messages (default ``cfg.backbone``).
    """
    from smie.pipeline.visual.backbones import check_backbone_compatible
    from smie.pipeline.visual.pretrain import ids_sha256

    where = f"{backbone or cfg.backbone} (for {cfg.skeletons})"
    try:
        check_backbone_compatible(info, info.split, skeleton_sha256=skeleton_sha, class_names=sset.class_names)
    except SmieError as exc:
        raise SmieError(f"{where}: {exc}") from None
    if not layout_of(info, where).same_skeleton(layout_of(sset, str(cfg.skeletons))) \
            or int(info.num_frames) != sset.data.shape[2]:
        raise SmieError(f"{where}: checkpoint is for layout {info.layout} with {info.num_frames} frames, the cache "
                        f"has {sset.layout} with {sset.data.shape[2]}" + (" (same name, other joints or bones)"
                                                                          if info.layout == sset.layout else ""))
    own = np.isin(sset.labels, info.trained_classes)
    for code, key in ((0, "train_ids_sha256"), (1, "val_ids_sha256")):
        recorded = info.provenance.get(key)
        ids = (sset.sample_ids[i] for i in np.flatnonzero((partition == code) & own))
        if recorded is not None and recorded != ids_sha256(ids):
            raise SmieError(f"{where}: the partitions recomputed from the checkpoint's split settings are not the "
                            f"samples it was trained on ({key} differs); re-pretrain with this smie version")


class _Batches(torch.utils.data.Dataset):
    """Batch ``i`` = skeleton rows ``items[i]`` as ``(offset, last_of_chunk, x (n, C, T, V, M) float32)``;
    read through ``iter_skeleton_chunks`` so that worker processes each open the file themselves."""

    def __init__(self, path: Path, items: list[tuple[int, int, bool]]):
        self.path, self.items = path, items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        a, b, last = self.items[i]
        offset, data = next(iter_skeleton_chunks(self.path, a, b, chunk=b - a))
        return offset, last, torch.from_numpy(data)


def _batches(cfg: ExtractConfig, first: int, stop: int, device: torch.device):
    """Loader over rows ``first..stop`` in batches that never straddle a chunk of ``chunk_size`` rows."""
    items = []
    for c in range(first, stop, cfg.chunk_size):
        end = min(c + cfg.chunk_size, stop)
        items += [(b, min(b + cfg.batch_size, end), b + cfg.batch_size >= end) for b in range(c, end, cfg.batch_size)]
    workers = cfg.workers if cfg.workers is not None else (4 if device.type == "cuda" else 0)
    return torch.utils.data.DataLoader(
        _Batches(Path(cfg.skeletons), items), batch_size=None, shuffle=False, num_workers=workers,
        pin_memory=device.type == "cuda", prefetch_factor=4 if workers else None, persistent_workers=False,
    )


class _HashCheck:
    """The skeleton cache's SHA-256, computed in a background thread; ``check(sha)`` raises on a mismatch.

    Started only after the reader processes are forked, so that no fork happens while the thread runs.
    """

    def __init__(self, path: Path, check):
        self.path, self.check, self.future = path, check, None
        self.pool = ThreadPoolExecutor(1)

    def start(self) -> None:
        if self.future is None:
            self.future = self.pool.submit(file_sha256, self.path)

    def __call__(self, wait: bool) -> bool:
        """Check the hash if it is known (or ``wait`` for it); return whether it was checked."""
        self.start()
        if not (wait or self.future.done()):
            return False
        self.check(self.future.result())
        return True

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def _extract_rows(cfg, modules, device, writer, start, stop, timer, verify: _HashCheck) -> None:
    """Embed rows ``start + writer.rows_done .. stop`` of the skeleton cache chunk by chunk into ``writer``.

    ``modules`` = (main backbone,) or (main, validation backbone): each batch and its masked views are embedded
    by every one of them. ``verify(wait)`` checks the skeleton hash (raising on a mismatch) and says whether it
    is known yet.
    ``timer`` accumulates seconds per phase: ``read`` (waiting for skeleton batches), ``mask``, ``forward``,
    ``write``.
    """
    variant, W = cfg.masking, writer.header.views
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    feats, masked = [[] for _ in modules], [[] for _ in modules]
    chunk_start = None
    batches = iter(_batches(cfg, start + writer.rows_done, stop, device))
    verify.start()
    while True:
        t0 = time.perf_counter()
        item = next(batches, None)
        timer["read"] += time.perf_counter() - t0
        if item is None:
            return
        offset, last, x = item
        chunk_start = offset if chunk_start is None else chunk_start
        t0 = time.perf_counter()
        x = x.to(device, non_blocking=True)
        N, C, T, V, M = x.shape
        views = masked_views(x, variant, cfg.keyframes, cfg.random_drop, W, cfg.seed, np.arange(offset, offset + N))
        sync()
        t1 = time.perf_counter()
        flat = views.reshape(N * W, C, views.shape[3], V, M)
        for module, f_out, m_out in zip(modules, feats, masked):
            f_out.append(embed(module, x, device).cpu().numpy())
            m_out.append(embed(module, flat, device).reshape(N, W, -1).cpu().numpy())
        sync()
        t2 = time.perf_counter()
        timer["mask"] += t1 - t0
        timer["forward"] += t2 - t1
        if last:
            t0 = time.perf_counter()
            if not writer.verified and verify(wait=False):
                writer.mark_verified()
            rows = [(np.concatenate(f), np.concatenate(m)) for f, m in zip(feats, masked)]
            extra = {"validation": rows[1]} if len(rows) > 1 else {}
            writer.write(chunk_start - start, *rows[0], **extra)
            feats, masked = [[] for _ in modules], [[] for _ in modules]
            chunk_start = None
            timer["write"] += time.perf_counter() - t0


def extract_visual(cfg: ExtractConfig, timer: dict | None = None) -> Path:
    """Write the visual cache for ``cfg`` and return its path (a shard's path when running one shard alone).

    ``timer``, when given, accumulates seconds per phase (``read``, ``mask``, ``forward``, ``write``) for bench/.
    """
    timer = timer if timer is not None else {}
    for phase in ("read", "mask", "forward", "write"):
        timer.setdefault(phase, 0.0)
    out = Path(cfg.out)
    rank, world = shard_of(cfg)
    dist = torch.distributed.is_available() and torch.distributed.is_initialized()
    own_group = world > 1 and cfg.shard is None and not dist
    if own_group:
        gpu = cfg.device != "cpu" and torch.cuda.is_available()
        torch.distributed.init_process_group("nccl" if gpu else "gloo")
        dist = True
    try:
        return _extract(cfg, timer, out, rank, world, dist)
    finally:
        if own_group:
            torch.distributed.destroy_process_group()


def check_validation_pair(main, val, where: str) -> None:
    """The validation backbone must belong to ``main``'s split, partition and skeleton cache, and have left out
    ``val_unseen`` (as well as the unseen classes)."""
    if val.role != "validation":
        raise SmieError(f"{where}: is a {val.role} backbone; pass one trained with pretrain-backbone --validation")
    for name in ("split", "partition", "skeleton_sha256", "class_names", "layout", "layout_spec", "num_frames"):
        if getattr(main, name) != getattr(val, name):
            raise SmieError(f"{where}: its {name.replace('_', ' ')} differs from the main backbone's; train both "
                            "backbones of a fold on the same skeleton cache, split and partition settings")
    leaked = sorted(set(val.trained_classes) & (set(val.split.unseen) | set(val.split.val_unseen)))
    if leaked:
        raise SmieError(f"{where}: was trained on classes {leaked} that are unseen or val_unseen")


def checkpoint_head(path: Path, info) -> BackboneHead | None:
    """The classifier head saved in the backbone checkpoint ``path`` (as ``load_backbone`` read it into
    ``info.head``; None when it has none, e.g. an imported backbone without one); refuses a head whose shape
    disagrees with the backbone's feature width or its class list."""
    state, classes = info.head.get("state_dict") or {}, [int(c) for c in info.head.get("classes") or ()]
    if "weight" not in state or not classes:
        return None
    weight = state["weight"].float().numpy()
    bias = state["bias"].float().numpy() if "bias" in state else np.zeros(len(weight), np.float32)
    if weight.shape != (len(classes), info.feature_dim) or bias.shape != (len(classes),):
        raise SmieError(f"{path}: classifier head of shape {tuple(weight.shape)} does not match its "
                        f"{len(classes)} head classes and {info.feature_dim}-d features")
    return BackboneHead(weight, bias, tuple(classes))


def _validation_header(cfg: ExtractConfig, vinfo, W: int, prov: dict) -> ValidationView:
    """The header (no rows) of the ``validation`` view that ``vinfo``'s backbone fills beside the main rows."""
    D = vinfo.feature_dim
    vprov = dict(prov, inputs=dict(prov["inputs"], backbone={"path": str(cfg.validation_backbone),
                                                              "sha256": vinfo.sha256}))
    return ValidationView(np.zeros((0, D), np.float32), np.zeros((0, W, D), np.float32), vinfo.sha256, vinfo.arch,
                          tuple(vinfo.trained_classes), vprov, checkpoint_head(Path(cfg.validation_backbone), vinfo))


def _header(cfg: ExtractConfig, sset, info, partition: np.ndarray, rank: int, world: int) -> VisualCache:
    """The visual cache's header (no feature rows) for this rank's contiguous slice of the samples."""
    N = sset.num_samples
    start, stop = N * rank // world, N * (rank + 1) // world
    W = num_views(cfg.masking, cfg.views)
    return VisualCache(
        features=np.zeros((0, info.feature_dim), np.float32),
        masked=np.zeros((0, W, info.feature_dim), np.float32),
        labels=sset.labels[start:stop],
        sample_ids=sset.sample_ids[start:stop],
        partition=np.asarray(partition[start:stop], dtype=np.int8),
        class_names=sset.class_names,
        split={k: getattr(info.split, k) for k in ("id", "num_classes", "seen", "unseen", "val_unseen")},
        masking={"variant": cfg.masking, "k": cfg.keyframes, "views": W, "seed": cfg.seed,
                 "drop": cfg.random_drop if cfg.masking == "official" else 0},
        partition_settings=dict(info.partition),
        backbone_sha256=info.sha256,
        backbone_arch=info.arch,
        backbone_config=dict(info.model_config),
        skeleton_sha256=info.skeleton_sha256,
        shard={"rank": rank, "world": world, "start": start, "stop": stop, "total": N} if world > 1 else None,
        head=checkpoint_head(Path(cfg.backbone), info),
    )


def _extract(cfg: ExtractConfig, timer: dict, out: Path, rank: int, world: int, dist: bool) -> Path:
    from smie.pipeline.visual.backbones import load_backbone
    from smie.pipeline.data.splits import assign_partitions

    device = resolve_device(cfg.device, int(os.environ.get("LOCAL_RANK", 0)) if world > 1 else 0)
    sset = read_skeleton_header(cfg.skeletons)
    N, C, T, V, M = sset.data.shape
    _check_config(cfg, T)
    module, info = load_backbone(cfg.backbone, device)
    backbones = [(cfg.backbone, module, info)]
    if cfg.validation_backbone is not None:
        vmodule, vinfo = load_backbone(cfg.validation_backbone, device)
        check_validation_pair(info, vinfo, str(cfg.validation_backbone))
        backbones.append((cfg.validation_backbone, vmodule, vinfo))
    partition = assign_partitions(sset.labels, sset.meta, info.split, **info.partition)

    def check(sha: str | None) -> None:
        for path, _, binfo in backbones:
            check_compatible(cfg, binfo, sset, sha, partition, path)

    check(None)
    verify = _HashCheck(Path(cfg.skeletons), check)
    header = _header(cfg, sset, info, partition, rank, world)
    start = header.shard["start"] if header.shard else 0
    target = shard_path(out, rank) if world > 1 else out
    prov = provenance(cfg, device=str(device))
    prov["inputs"] = {"skeletons": {"path": str(cfg.skeletons), "sha256": info.skeleton_sha256},
                      "backbone": {"path": str(cfg.backbone), "sha256": info.sha256}}
    if cfg.validation_backbone is not None:
        header = dataclasses.replace(header, validation=_validation_header(cfg, backbones[1][2], header.views, prov))
        prov["inputs"]["validation_backbone"] = {"path": str(cfg.validation_backbone), "sha256": backbones[1][2].sha256}
    t0 = time.perf_counter()
    with VisualWriter(target, header, prov, resume=cfg.resume) as writer:
        try:
            _extract_rows(cfg, [m for _, m, _ in backbones], device, writer, start, start + header.num_samples,
                          timer, verify)
            if not writer.verified:
                verify(wait=True)
                writer.mark_verified()
        except SmieError:
            writer.discard()
            raise
        finally:
            verify.close()
        writer.finalize(dict(prov, seconds=round(time.perf_counter() - t0, 3)))
    if world == 1 or not dist:
        return target
    torch.distributed.barrier()
    if rank == 0:
        join_shards([shard_path(out, r) for r in range(world)], out)
        for r in range(world):
            shard_path(out, r).unlink()
    torch.distributed.barrier()
    return out
