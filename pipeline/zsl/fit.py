"""Stage two: the training loop shared by SMIE and every baseline (``smie fit-estimator`` is in
:mod:`smie.pipeline.zsl.experiment`).

A stage-two method is an ``nn.Module`` with ``loss(batch) -> scalar``, ``finalize(train, class_sem)`` and
``scores(visual (N, D), class_sem (K, E)) -> (N, K)`` (docs/architecture.md). :func:`train_method` trains any such
module from cached tensors: no DataLoader, the whole cache sits on the device, one seeded generator draws the
batch order and the masked view of each sample, so a CPU run is bit-for-bit repeatable.

The learning-rate schedule (``FitOptions.schedule``) is set once per epoch. ``cosine`` (default) is the official
SMIE one (``procedure.py: adjust_learning_rate``): ``lr * e / warmup`` for ``e < warmup`` (so epoch 0 runs at
lr 0, as in the code), then ``lr * (1 + cos(pi * (e - warmup) / (epochs - warmup))) / 2``. ``constant`` keeps
the same warm-up, then the base lr: the generative baselines' codes (CADA-VAE, SynSE, MSF) use no scheduler.

An epoch is one pass over the training set in shuffled batches (the last one smaller), unless
``FitOptions.epoch_steps`` is set: then an epoch is exactly that many optimiser steps on full batches taken in
turn from fresh random permutations (a short tail is dropped). The cycle-scheduled baselines run one epoch per
cycle this way, so they stop after exactly ``cycles x cycle_length`` steps and are evaluated at cycle ends.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from smie.features.store import SmieError
from smie.pipeline.device import resolve_device
from smie.pipeline.zsl.heap import keep_freed_memory


@dataclass
class Batch:
    """One training step's input. visual (B, D); masked (B, D) one masked view per sample, or None;
    labels (B,) int64 rows of ``class_sem``; class_sem (Kt, E) semantics of the training classes."""

    visual: torch.Tensor
    masked: torch.Tensor | None
    labels: torch.Tensor
    class_sem: torch.Tensor


@dataclass
class TrainSet:
    """Training samples of one experiment. visual (N, D); masked (N, Vw, D) or None; labels (N,) int64 rows of
    ``class_sem`` (Kt, E); class_ids (Kt,) the classes' indices in the caches' class table."""

    visual: torch.Tensor
    masked: torch.Tensor | None
    labels: torch.Tensor
    class_sem: torch.Tensor
    class_ids: tuple[int, ...] = ()

    def to(self, device: torch.device) -> "TrainSet":
        m = None if self.masked is None else self.masked.to(device)
        return TrainSet(self.visual.to(device), m, self.labels.to(device), self.class_sem.to(device),
                        self.class_ids)


@dataclass(frozen=True)
class FitOptions:
    """Loop settings; defaults are the official SMIE config (Adam, lr 1e-5, 100 epochs, batch 128, 15 warm-up,
    cosine decay). ``schedule`` is ``cosine`` or ``constant``; ``epoch_steps`` None = an epoch is one pass over
    the data, else that many steps (module docstring)."""

    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-5
    warmup: int = 15
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "cpu"
    schedule: str = "cosine"
    epoch_steps: int | None = None


SCHEDULES = ("cosine", "constant")


def check_schedule(schedule: str) -> None:
    if schedule not in SCHEDULES:
        raise SmieError(f"learning-rate schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")


def lr_factor(epoch: int, epochs: int, warmup: int, schedule: str = "cosine") -> float:
    """Multiplier of the base learning rate at ``epoch``: the official warm-up, then cosine to 0 or constant 1."""
    check_schedule(schedule)
    if epoch < warmup:
        return epoch / warmup
    if schedule == "constant":
        return 1.0
    span = max(1, epochs - warmup)
    return (1 + math.cos(math.pi * (epoch - warmup) / span)) / 2


def adam(params, **kwargs) -> torch.optim.Adam:
    """``torch.optim.Adam`` with its fused kernel (the same update in one pass over each tensor instead of a
    dozen; a tenth of an SMIE step's time on CPU). Stage-two methods build their optimisers with it."""
    return torch.optim.Adam(params, fused=True, **kwargs)


def _optimizer(model: nn.Module, opts: FitOptions) -> torch.optim.Optimizer:
    if hasattr(model, "configure_optimizer"):
        return model.configure_optimizer(opts)
    return adam(model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)


def train_method(model: nn.Module, trainset: TrainSet, opts: FitOptions,
                 on_epoch: Callable[[int, nn.Module], None] | None = None,
                 evaluate_epoch: Callable[[int], bool] | None = None,
                 timing: dict[str, float] | None = None) -> list[float]:
    """Train ``model`` on ``trainset``; return the mean loss of each epoch.

    After an epoch the model's ``finalize`` runs, then ``on_epoch(epoch, model)`` with the model in eval
    mode under ``no_grad`` (for per-epoch evaluation); with ``evaluate_epoch`` given, only after the epochs it
    accepts (``finalize`` can cost more than the epoch, and is wasted on an epoch nobody scores). With
    ``epochs == 0`` only ``finalize`` runs. A method may define ``configure_optimizer(opts)``; the schedule
    scales each group's own initial lr. ``timing``, when given, accumulates seconds spent in ``steps``,
    ``finalize`` and ``evaluate`` (``on_epoch``). The process keeps the memory it frees from here on
    (:mod:`smie.pipeline.zsl.heap`).
    """
    device = resolve_device(opts.device)
    check_schedule(opts.schedule)
    keep_freed_memory()
    if opts.epoch_steps is not None and opts.epoch_steps < 1:
        raise SmieError(f"epoch_steps must be >= 1 or None, got {opts.epoch_steps}")
    model.to(device)
    data = trainset.to(device)
    N = data.visual.shape[0]
    if N == 0:
        raise SmieError("no training samples for stage two (check the split and the visual cache partition)")
    gen = torch.Generator(device="cpu").manual_seed(opts.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = _optimizer(model, opts) if params else None
    if opt is not None:
        for group in opt.param_groups:
            group.setdefault("initial_lr", group["lr"])
    losses: list[float] = []
    stream = _batch_stream(N, opts.batch_size, gen)
    views = 0 if data.masked is None else data.masked.shape[1]
    flat_masked = None if data.masked is None else data.masked.reshape(-1, data.masked.shape[-1])
    clock = timing if timing is not None else {}
    for key in ("steps", "finalize", "evaluate"):
        clock.setdefault(key, 0.0)
    for epoch in range(opts.epochs):
        started = time.perf_counter()
        model.train()
        if opt is not None:
            for group in opt.param_groups:
                group["lr"] = group["initial_lr"] * lr_factor(epoch, opts.epochs, opts.warmup, opts.schedule)
        if opts.epoch_steps is None:
            order = torch.randperm(N, generator=gen).to(device)
            batches = (order[start:start + opts.batch_size] for start in range(0, N, opts.batch_size))
        else:
            batches = (next(stream) for _ in range(opts.epoch_steps))
        total, steps = 0.0, 0
        for idx in batches:
            idx = idx.to(device)
            masked = None
            if data.masked is not None:
                view = torch.randint(views, (len(idx),), generator=gen).to(device)
                masked = flat_masked.index_select(0, idx * views + view)
            loss = model.loss(Batch(data.visual.index_select(0, idx), masked, data.labels.index_select(0, idx),
                                    data.class_sem))
            if opt is not None and loss.requires_grad:
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            total += float(loss.detach())
            steps += 1
        losses.append(total / max(1, steps))
        clock["steps"] += time.perf_counter() - started
        if evaluate_epoch is None or evaluate_epoch(epoch):
            _finish_epoch(model, data, epoch, on_epoch, clock)
    if opts.epochs == 0:
        _finish_epoch(model, data, -1, on_epoch, clock)
    return losses


def _batch_stream(N: int, batch_size: int, gen: torch.Generator):
    """Endless index batches (B,) for ``epoch_steps`` epochs: full batches of each fresh permutation in turn (all N
    rows when N < B)."""
    while True:
        order = torch.randperm(N, generator=gen)
        for start in range(0, max(1, N - batch_size + 1), batch_size):
            yield order[start:start + batch_size]


def _finish_epoch(model, data: TrainSet, epoch: int, on_epoch, clock: dict[str, float]) -> None:
    model.eval()
    with torch.no_grad():
        started = time.perf_counter()
        model.finalize(data, data.class_sem)
        finalized = time.perf_counter()
        clock["finalize"] += finalized - started
        if on_epoch is not None:
            on_epoch(epoch, model)
        clock["evaluate"] += time.perf_counter() - finalized


def semantic_matrix(text_cache, kinds: tuple[str, ...] | list[str] = ("label",), combine: str = "concat") -> np.ndarray:
    """Class semantics (K, E') from a text cache: each kind's real descriptions (``text_cache.mask(kind)``; the
    zero padding rows are skipped) averaged per class and L2-normalised, then concatenated (E' = sum of the
    kinds' widths) or averaged (``combine="mean"``, kinds must share a width)."""
    if combine not in ("concat", "mean"):
        raise SmieError(f"combine must be 'concat' or 'mean', got {combine!r}")
    available = tuple(text_cache.kinds)
    parts = []
    for kind in kinds:
        if kind not in available:
            raise SmieError(f"text cache has no kind {kind!r} (it has: {', '.join(available)})")
        emb = np.asarray(text_cache.embeddings(kind), dtype=np.float64)  # (K, P, E)
        valid = np.asarray(text_cache.mask(kind), dtype=bool)  # (K, P)
        if not valid.any(axis=1).all():
            missing = [text_cache.class_names[k] for k in np.flatnonzero(~valid.any(axis=1))]
            raise SmieError(f"text cache kind {kind!r} has no embedding for classes: {', '.join(missing[:5])}")
        mean = (emb * valid[..., None]).sum(axis=1) / valid.sum(axis=1, keepdims=True)
        mean /= np.linalg.norm(mean, axis=1, keepdims=True).clip(min=1e-12)
        parts.append(mean)
    if combine == "mean":
        if len({p.shape[1] for p in parts}) != 1:
            raise SmieError("combine='mean' needs kinds of one embedding width; use combine='concat'")
        return np.mean(parts, axis=0).astype(np.float32)
    return np.concatenate(parts, axis=1).astype(np.float32)
