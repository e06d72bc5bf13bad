"""Stage two: the training loop shared by SMIE and every baseline (``smie fit-estimator`` is in
:mod:`smie.pipeline.zsl.experiment`).

:func:`train_method` trains any :class:`~smie.pipeline.zsl.method.Method` from cached tensors: no DataLoader, the
whole cache sits on the device, one seeded generator draws the batch order and the masked view of each sample,
so a CPU run is bit-for-bit repeatable.

The loop counts optimiser steps. :class:`FitOptions` (from a method's spec) states the run; :meth:`FitOptions.plan`
resolves it, for a training set of N samples, into a :class:`StepPlan`: the number of steps, the steps of one
*unit* (an epoch: one pass over the data in shuffled batches, the last one smaller, ``ceil(N / B)`` steps; or,
with ``cycle_steps``, a cycle: that many steps on full batches taken in turn from fresh random permutations, a
short tail dropped), the learning-rate factor of every step, and the steps after which the model is evaluated.

With ``steps`` set (a step budget, :mod:`smie.pipeline.zsl.budget`) the run is ``steps`` optimiser steps on
shuffled passes, cut into ``epochs`` *evaluation points* of (nearly) equal length; warm-up and cosine decay then
run per step (:func:`step_factor`), the warm-up over ``warmup_share`` of the steps, so the trajectory of the rate
over the fraction of the run is the same at any data size.

The factor is the official SMIE schedule (``procedure.py: adjust_learning_rate``), counted in units and set when a
unit starts: ``lr * u / warmup`` for unit ``u < warmup`` (so unit 0 runs at lr 0, as in the code), then ``cosine``
``lr * (1 + cos(pi * (u - warmup) / (units - warmup))) / 2`` or ``constant`` (the generative baselines' codes use no
scheduler). Losses are reported per unit.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from smie.features.store import SmieError
from smie.pipeline.device import resolve_device
from smie.pipeline.zsl.method import Batch, Method, TrainSet
from smie.pipeline.zsl.spec import SCHEDULES, SELECTABLE


@dataclass(frozen=True, kw_only=True)
class FitOptions:
    """One training run, as the spec states it. Defaults are the official SMIE config (Adam, lr 1e-5, 100
    epochs, batch 128, 15 warm-up epochs, cosine decay).

    ``epochs``: units to run (passes over the data; cycles when ``cycle_steps`` is set); ``warmup``: units of
    rising rate; ``schedule``: ``cosine`` or ``constant``; ``eval_every``: the model is evaluated after every
    k-th unit, the last one and ``keep`` (:meth:`plan`); ``selectable``: the units selection may pick,
    ``after-warmup`` or ``any`` (:meth:`first_eligible`)."""

    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-5
    warmup: int = 15
    schedule: str = "cosine"
    cycle_steps: int | None = None
    eval_every: int = 1
    selectable: str = "after-warmup"
    seed: int = 0
    device: str = "cpu"
    steps: int | None = None
    warmup_share: float = 0.15

    def __post_init__(self):
        check_schedule(self.schedule)
        if self.selectable not in SELECTABLE:
            raise SmieError(f"selectable must be one of {', '.join(SELECTABLE)}, got {self.selectable!r}")
        if self.cycle_steps is not None and self.cycle_steps < 1:
            raise SmieError(f"cycle_steps must be >= 1 or None, got {self.cycle_steps}")
        if self.steps is not None and (self.steps < 0 or self.cycle_steps is not None):
            raise SmieError(f"a step budget needs steps >= 0 and no cycle_steps, got {self.steps}")
        if not 0 <= self.warmup_share < 1:
            raise SmieError(f"warmup_share must be in [0, 1), got {self.warmup_share}")
        if self.epochs < 0 or self.batch_size < 1 or self.warmup < 0 or self.eval_every < 1:
            raise SmieError(f"epochs, batch size, warm-up or evaluation cadence out of range: {self}")

    def first_eligible(self) -> int:
        """First unit selection may pick: 0 for ``any``; after ``after-warmup`` the unit after the warm-up (the
        official code keeps only epochs > 15 of its 15-epoch warm-up), or 0 when the run is not longer."""
        if self.selectable == "any":
            return 0
        if self.steps is not None:
            ends = unit_ends(self.steps, self.epochs)
            warm = warmup_steps(self.steps, self.warmup_share)
            first = next((u + 1 for u, end in enumerate(ends) if end >= warm), 0)
            return first if 0 < first < len(ends) else 0
        return self.warmup + 1 if self.warmup + 1 < self.epochs else 0

    def plan(self, n_train: int, keep: int | None = None) -> "StepPlan":
        """The run in optimiser steps for ``n_train`` training samples; the model is also evaluated after unit
        ``keep`` (the unit whose state the final phase keeps)."""
        every = self.eval_every
        if self.steps is not None:
            ends = unit_ends(self.steps, self.epochs)
            units = [u for u in range(len(ends)) if (u + 1) % every == 0 or u in (len(ends) - 1, keep)]
            return StepPlan(steps=self.steps, unit=ends[0] if ends else 1, passes=True,
                            evaluate=tuple(ends[u] for u in units), options=self, ends=tuple(ends))
        unit = self.cycle_steps if self.cycle_steps is not None else max(1, math.ceil(n_train / self.batch_size))
        units = [u for u in range(self.epochs) if (u + 1) % every == 0 or u in (self.epochs - 1, keep)]
        return StepPlan(steps=self.epochs * unit, unit=unit, passes=self.cycle_steps is None,
                        evaluate=tuple((u + 1) * unit for u in units), options=self,
                        ends=tuple((u + 1) * unit for u in range(self.epochs)))


@dataclass(frozen=True)
class StepPlan:
    """A training run resolved into optimiser steps: ``steps`` in all, ``unit`` steps per unit, ``passes`` (each
    unit one shuffled pass over the data) or not (full batches from successive permutations), and ``evaluate``:
    the step counts after which the model is evaluated (unit ``u`` ends after ``(u + 1) * unit`` steps)."""

    steps: int
    unit: int
    passes: bool
    evaluate: tuple[int, ...]
    options: FitOptions
    ends: tuple[int, ...] = ()

    def lr_factor(self, step: int) -> float:
        """Multiplier of the base learning rate at optimiser step ``step`` (0-based): per step over a step budget
        (:func:`step_factor`), else per unit (:func:`lr_factor`)."""
        o = self.options
        if o.steps is not None:
            return step_factor(step, self.steps, warmup_steps(self.steps, o.warmup_share), o.schedule)
        return lr_factor(step // self.unit, o.epochs, o.warmup, o.schedule)


def unit_ends(steps: int, points: int) -> list[int]:
    """The step counts ending each of ``points`` evaluation units spread evenly over ``steps`` steps (fewer units
    when there are fewer steps; none without steps)."""
    n = min(max(points, 1), steps)
    return sorted({math.ceil((u + 1) * steps / n) for u in range(n)}) if steps else []


def warmup_steps(steps: int, share: float) -> int:
    return int(round(steps * share))


def step_factor(step: int, steps: int, warmup: int, schedule: str = "cosine") -> float:
    """The official warm-up then cosine (or constant) schedule, per optimiser step: ``step / warmup`` while
    ``step < warmup`` (step 0 at rate 0, as the code's first epoch), then ``(1 + cos(pi t)) / 2`` with ``t`` the
    fraction of the post-warm-up steps done."""
    check_schedule(schedule)
    if step < warmup:
        return step / warmup
    if schedule == "constant":
        return 1.0
    return (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup))) / 2


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


def train_method(model: Method, trainset: TrainSet, opts: FitOptions | StepPlan,
                 on_evaluate: Callable[[int, Method], None] | None = None,
                 timing: dict[str, float] | None = None) -> list[float]:
    """Train ``model`` on ``trainset``; return the mean loss of each unit.

    ``opts`` is a :class:`StepPlan`, or :class:`FitOptions` planned for this training set. After each of the plan's
    ``evaluate`` steps the model's ``finalize`` runs, then ``on_evaluate(unit, model)`` with the model in eval mode
    under ``no_grad`` (``finalize`` can cost more than the unit, and is wasted on a unit nobody scores). With
    no steps only ``finalize`` runs (and ``on_evaluate(-1, model)``). ``timing``, when given, accumulates seconds
    spent in ``steps``, ``finalize`` and ``evaluate``. The speed paths are the active
    :class:`~smie.pipeline.zsl.compute.Compute`'s.
    """
    plan = opts if isinstance(opts, StepPlan) else opts.plan(len(trainset.labels))
    o = plan.options
    device = resolve_device(o.device)
    model.to(device)
    data = trainset.to(device)
    N = data.visual.shape[0]
    if N == 0:
        raise SmieError("no training samples for stage two (check the split and the visual cache partition)")
    gen = torch.Generator(device="cpu").manual_seed(o.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = model.optimizer(o.lr) if params else None
    if opt is not None:
        for group in opt.param_groups:
            group.setdefault("initial_lr", group["lr"])
    batches = _passes(N, o.batch_size, gen, device) if plan.passes else _stream(N, o.batch_size, gen)
    views = 0 if data.masked is None else data.masked.shape[1]
    flat_masked = None if data.masked is None else data.masked.reshape(-1, data.masked.shape[-1])
    clock = timing if timing is not None else {}
    for key in ("steps", "finalize", "evaluate"):
        clock.setdefault(key, 0.0)
    evaluate, losses, factor = set(plan.evaluate), [], None
    ends = set(plan.ends) if plan.ends else {(u + 1) * plan.unit for u in range(plan.steps // plan.unit)}
    total, started, begun = 0.0, time.perf_counter(), 0
    for step in range(plan.steps):
        if step == 0 or step in ends:
            model.train()
            total, started, begun = 0.0, time.perf_counter(), step
        if opt is not None:
            now = plan.lr_factor(step)  # once per step: a step budget changes it at every step
            if now != factor:
                factor = now
                for group in opt.param_groups:
                    group["lr"] = group["initial_lr"] * factor
        idx = next(batches).to(device)
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
        if step + 1 in ends:
            losses.append(total / (step + 1 - begun))
            clock["steps"] += time.perf_counter() - started
            if step + 1 in evaluate:
                _finish(model, data, len(losses) - 1, on_evaluate, clock)
    if plan.steps == 0:
        _finish(model, data, -1, on_evaluate, clock)
    return losses


def _passes(N: int, batch_size: int, gen: torch.Generator, device) -> Iterator[torch.Tensor]:
    """Endless index batches (B,): each pass a fresh permutation of the N rows in batches, the last one smaller."""
    while True:
        order = torch.randperm(N, generator=gen).to(device)
        for start in range(0, N, batch_size):
            yield order[start:start + batch_size]


def _stream(N: int, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless index batches (B,): full batches of each fresh permutation in turn (all N rows when N < B)."""
    while True:
        order = torch.randperm(N, generator=gen)
        for start in range(0, max(1, N - batch_size + 1), batch_size):
            yield order[start:start + batch_size]


def _finish(model, data: TrainSet, unit: int, on_evaluate, clock: dict[str, float]) -> None:
    model.eval()
    with torch.no_grad():
        started = time.perf_counter()
        model.finalize(data, data.class_sem)
        finalized = time.perf_counter()
        clock["finalize"] += finalized - started
        if on_evaluate is not None:
            on_evaluate(unit, model)
        clock["evaluate"] += time.perf_counter() - finalized


COMBINES = ("concat", "mean", "concat-raw")


def semantic_matrix(text_cache, kinds: tuple[str, ...] | list[str] = ("label",), combine: str = "concat") -> np.ndarray:
    """Class semantics (K, E') from a text cache: each kind's real descriptions (``text_cache.mask(kind)``; the
    zero padding rows are skipped) averaged per class, then

    - ``concat``: each kind L2-normalised, then concatenated (E' = sum of the kinds' widths);
    - ``mean``: each kind L2-normalised, then averaged (kinds must share a width);
    - ``concat-raw``: the kinds concatenated as they are, then one L2 norm of the concatenation, as the MSF code
      fuses its label, action and motion features (MSF-GZSSAR ``train.py:93-96``); a kind of larger norm weighs
      more."""
    if combine not in COMBINES:
        raise SmieError(f"combine must be one of {', '.join(COMBINES)}, got {combine!r}")
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
        if combine != "concat-raw":
            mean /= np.linalg.norm(mean, axis=1, keepdims=True).clip(min=1e-12)
        parts.append(mean)
    if combine == "mean":
        if len({p.shape[1] for p in parts}) != 1:
            raise SmieError("combine='mean' needs kinds of one embedding width; use combine='concat'")
        return np.mean(parts, axis=0).astype(np.float32)
    fused = np.concatenate(parts, axis=1)
    if combine == "concat-raw":
        fused /= np.linalg.norm(fused, axis=1, keepdims=True).clip(min=1e-12)
    return fused.astype(np.float32)
