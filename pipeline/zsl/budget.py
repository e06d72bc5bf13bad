"""The optimisation budget of a stage-two run, stated once: how many Adam steps, at what learning rate.

A published recipe is ``epochs`` passes at ``lr`` in batches of ``B``. Its *paper budget* is the number of
optimiser steps it took on the data set it was set for (``reference_rows`` training rows; NTU-60 55/5 for
SMIE: 36,713 rows, so 100 x ceil(36,713 / 128) = 28,700 steps). Counted in epochs, the same recipe on a small
data set is a tiny fraction of that optimisation (MSR Action3D: ~300 rows, 3 steps an epoch, 300 steps, about
1 % of the paper's); measured on MSR (bench/smie_budget.py, docs/smie-study.md), SMIE's critic does not learn
in 300 steps at 1e-5, and does reach the paper budget's training MI with ten times the rate over a tenth of the
steps.

The rule (:func:`plan_budget`, mode ``paper-steps``), for ``N`` training rows:

- ``steps_code = epochs x ceil(N / B)`` (the recipe as the code counts it) and
  ``steps_ref = epochs x ceil(reference_rows / B)`` (as it ran in the paper);
- when ``steps_code >= steps_ref`` the recipe is kept as it is (``lr``, ``steps_code``): on NTU-size data the
  default *is* the paper's;
- else the run takes ``steps = max(steps_code, ceil(steps_ref / max_compression))`` steps at
  ``lr x steps_ref / steps``: the same product of rate and steps (the distance a constant-gradient walk
  travels), compressed at most ``max_compression`` times (a method declares how far it was shown to compress
  without losing convergence; 1 = the paper's step count itself).

Mode ``code-epochs`` is the recipe as the official code counts it (``epochs`` passes at ``lr``), the faithful
variant. In both modes warm-up and cosine decay run per step over the budget
(:class:`~smie.pipeline.zsl.fit.FitOptions` with ``steps``), so the learning-rate trajectory, as a function of
the fraction of the run, is the same at any data size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from smie.features.store import SmieError
from smie.pipeline.zsl.fit import FitOptions
from smie.pipeline.zsl.spec import MethodSpec

BUDGETS = ("paper-steps", "code-epochs")
NTU60_55_5_ROWS = 36_713
"""Training rows of NTU-60's 55/5 split (seen-class samples of the cross-subject training set), for SMIE's
recipe: 100 epochs of batch 128 there are 287 x 100 = 28,700 Adam steps."""


@dataclass(frozen=True)
class Budget:
    """A run's budget: ``steps`` optimiser steps at base rate ``lr``; ``mode``; the recipe's ``steps_code``
    (epochs as the code counts them on this data) and ``steps_ref`` (on the reference data); ``compression``:
    ``steps_ref / steps`` (1 when the paper's step count is run)."""

    mode: str
    steps: int
    lr: float
    steps_code: int
    steps_ref: int
    compression: float

    def record(self) -> dict:
        """The JSON-able record ``metrics.json``/``config.json`` keep (``budget``)."""
        return dict(mode=self.mode, steps=self.steps, lr=self.lr, steps_code=self.steps_code,
                    steps_ref=self.steps_ref, compression=round(self.compression, 4))


def plan_budget(lr: float, epochs: int, n_train: int, batch_size: int, mode: str = "paper-steps",
                reference_rows: int = NTU60_55_5_ROWS, max_compression: float = 1.0) -> Budget:
    """The budget of a recipe (``lr``, ``epochs`` of ``batch_size``, set on ``reference_rows`` training rows) for a
    training set of ``n_train`` rows, by the rule of this module's docstring."""
    if mode not in BUDGETS:
        raise SmieError(f"budget must be one of {', '.join(BUDGETS)}, got {mode!r}")
    if lr <= 0 or epochs < 0 or n_train < 1 or batch_size < 1 or reference_rows < 1 or max_compression < 1:
        raise SmieError(f"budget out of range: lr={lr}, epochs={epochs}, n_train={n_train}, "
                        f"batch_size={batch_size}, reference_rows={reference_rows}, max_compression={max_compression}")
    steps_code = epochs * math.ceil(n_train / batch_size)
    steps_ref = epochs * math.ceil(reference_rows / batch_size)
    if mode == "code-epochs" or steps_code >= steps_ref or epochs == 0:
        return Budget(mode, steps_code, lr, steps_code, steps_ref, steps_ref / max(1, steps_code))
    steps = max(steps_code, math.ceil(steps_ref / max_compression))
    return Budget(mode, steps, lr * steps_ref / steps, steps_code, steps_ref, steps_ref / steps)


def fit_options(spec: MethodSpec, n_train: int, batch_size: int, lr: float, epochs: int, budget: str,
                **common) -> tuple[FitOptions, dict]:
    """The :class:`~smie.pipeline.zsl.fit.FitOptions` of an :class:`Epochs` run of ``epochs`` passes at ``lr`` for
    ``n_train`` training rows, and the ``budget`` record. ``paper-steps`` on a spec with ``reference_rows``: the
    step budget of :func:`~smie.pipeline.zsl.budget.plan_budget`, warm-up over ``spec.warmup / epochs`` of the
    steps, ``spec.points`` evaluation points; otherwise (``code-epochs``, or no reference) ``epochs`` passes,
    warm-up ``spec.warmup`` epochs, each epoch evaluated (``spec.eval_every``). ``common``: seed, device, ..."""
    if budget not in BUDGETS:
        raise SmieError(f"budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    if spec.reference_rows is None or budget == "code-epochs" or epochs == 0:
        b = plan_budget(lr, epochs, max(1, n_train), batch_size, "code-epochs",
                        spec.reference_rows or max(1, n_train))
        fit = FitOptions(epochs=epochs, batch_size=batch_size, lr=lr, warmup=spec.warmup,
                         eval_every=spec.eval_every, selectable=spec.selectable, **common)
        return fit, dict(b.record(), mode="code-epochs", points=epochs)
    b = plan_budget(lr, epochs, max(1, n_train), batch_size, budget, spec.reference_rows, spec.max_compression)
    fit = FitOptions(epochs=spec.points, batch_size=batch_size, lr=b.lr, warmup=0, steps=b.steps,
                     warmup_share=min(spec.warmup / epochs, 0.99), selectable=spec.selectable, **common)
    return fit, dict(b.record(), points=spec.points, reference_rows=spec.reference_rows,
                     max_compression=spec.max_compression, lr_recipe=lr)
