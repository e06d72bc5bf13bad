"""Stage two's results, typed, and the one schema that turns them into numbers everywhere.

The protocol returns :class:`Validation`, :class:`TestResult` and :class:`ProtocolResult`; their field names are
``metrics.json``'s keys. :func:`metrics_record` writes ``metrics.json`` (its layout is documented in
docs/evaluation.md, and older run directories keep it); :data:`COLUMNS` names each headline number once, with
its path in ``metrics.json``: ``runs.csv`` of ``smie compare`` and ``smie benchmark``, ``smie report``'s table,
and the mean ± std of a multi-split run (``summary.json``) all use these names, read by :func:`metric`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only; this module imports no torch
    from smie.pipeline.zsl.method import Method

NAN = float("nan")


@dataclass(frozen=True)
class Column:
    """One headline number: its ``name`` in every table, its ``path`` in ``metrics.json``, what it is."""

    name: str
    path: tuple[str, ...]
    title: str


COLUMNS: tuple[Column, ...] = (
    Column("zsl", ("zsl", "selected", "acc"), "ZSL top-1 over the unseen classes at the validation-selected epoch"),
    Column("zsl_per_class", ("zsl", "selected", "per_class_acc"), "ZSL mean per-class accuracy, same epoch"),
    Column("zsl_last", ("zsl", "last", "acc"), "ZSL top-1 at the last epoch"),
    Column("zsl_oracle", ("zsl", "oracle", "acc"), "ZSL top-1 at the best test epoch (oracle: not a valid estimate)"),
    Column("seen", ("gzsl", "stacking", "seen"), "GZSL accuracy on seen-class samples, calibrated stacking"),
    Column("unseen", ("gzsl", "stacking", "unseen"), "GZSL accuracy on unseen-class samples, calibrated stacking"),
    Column("h", ("gzsl", "stacking", "h"), "GZSL harmonic mean H, calibrated stacking"),
    Column("h_gate", ("gzsl", "gate", "h"), "GZSL harmonic mean H, entropy gate"),
)


def metric(metrics: dict, path, default=NAN):
    """The value at ``path`` (a key sequence, e.g. ``("zsl", "selected", "acc")``) of a ``metrics.json`` dict,
    or ``default`` when a key is missing or the value is null (NaN is written as null)."""
    for key in path:
        if not isinstance(metrics, dict) or key not in metrics:
            return default
        metrics = metrics[key]
    return default if metrics is None else metrics


def row(metrics: dict) -> dict[str, float]:
    """Every :data:`COLUMNS` number of one ``metrics.json``, by name (NaN where the run has none)."""
    return {c.name: float(metric(metrics, c.path)) for c in COLUMNS}


def summary(runs: list[dict]) -> dict:
    """Mean ± std over runs (splits) of every :data:`COLUMNS` number that any run has."""
    out = {}
    for c in COLUMNS:
        vals = np.array([float(metric(m, c.path)) for m in runs])
        if np.isfinite(vals).any():
            out[c.name] = dict(mean=float(np.nanmean(vals)), std=float(np.nanstd(vals)), values=vals.tolist())
    return out


@dataclass(frozen=True)
class Validation:
    """The validation phase of one setting: the selected unit ``epoch`` with its validation ZSL top-1 ``val_acc``
    and mean per-class accuracy, the first unit selection could pick, the curves; with GZSL, ``gamma`` and
    ``gate_threshold`` chosen at that unit, ``val_gzsl`` (S/U/H of stacking, the entropy gate and each method
    gate) and ``gates``: the method gates' fitted states, by key."""

    setting: dict
    epoch: int
    val_acc: float
    val_per_class_acc: float
    first_eligible: int
    curve: list[float]
    losses: list[float]
    timing: dict[str, float]
    gamma: float | None = None
    gate_threshold: float | None = None
    val_gzsl: dict | None = None
    gates: dict[str, dict] = field(default_factory=dict)
    top_share: list[float] = field(default_factory=list)
    at_chance: bool = False
    chance_bound: float = NAN


@dataclass(frozen=True)
class TestResult:
    """The final phase: ZSL test numbers ``selected`` (at the validated unit), ``last`` and ``oracle`` (best test
    unit, labelled, not a valid estimate), each a dict of ``acc``, ``per_class_acc``, ``epoch`` (and, for
    ``selected``, ``top5`` and ``n``); the curves; the test ``rows``, their ``scores`` (N, U) over the unseen
    classes and ``targets`` (N,); ``gzsl`` (stacking, gate, uncalibrated and each method gate) and ``model``."""

    selected: dict
    last: dict
    oracle: dict
    curve: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)
    rows: np.ndarray | None = None
    scores: np.ndarray | None = None
    targets: np.ndarray | None = None
    gzsl: dict | None = None
    model: "Method | None" = None
    top_share: list[float] = field(default_factory=list)


NOT_TESTED = TestResult(selected=dict(acc=NAN), last=dict(acc=NAN), oracle=dict(acc=NAN))
"""The test columns of a setting that was validated but not retrained (``sweep_test=False``)."""


@dataclass(frozen=True)
class ProtocolResult:
    """Every setting validated, the ``chosen`` one's :class:`Validation` and :class:`TestResult`, one ``sweep`` row
    per setting, and ``timing``: seconds of the ``validation`` and ``final`` phases and, summed over both, of
    training ``steps``, ``finalize`` and per-unit scoring (``evaluate``)."""

    validation: Validation
    test: TestResult
    sweep: list[dict]
    chosen: int
    timing: dict[str, float]


def selection_rule(first_eligible: int, selectable: str, unit: str) -> str:
    """The selection rule in words, as ``metrics.json`` records it (``selection.rule``), with the chance rule."""
    if selectable == "any":
        which = f"every evaluated {unit}"
    elif first_eligible:
        which = f"the evaluated {unit}s after the warm-up ({unit} {first_eligible} on)"
    else:
        which = f"every evaluated {unit} (the run is not longer than its warm-up)"
    return (f"best val_unseen ZSL top-1 over {which}; setting by the same value; when that best is below chance + "
            f"2 binomial s.e. (selection.val_at_chance), the last evaluated {unit} instead")


def metrics_record(method: str, split_id: str, result: ProtocolResult, rule: str, counts: dict, selection: dict,
                   compute: dict, read_seconds: float, budget: dict | None = None) -> dict:
    """``metrics.json`` of one run (keys documented in docs/evaluation.md). ``selection``: which features the
    validation phase read (``validation_features``, ``optimistic``); ``compute``: the device and speed paths."""
    val, tst = result.validation, result.test
    chosen = dict(rule=rule, epoch=val.epoch, val_acc=val.val_acc, val_per_class_acc=val.val_per_class_acc,
                  first_eligible=val.first_eligible, val_at_chance=val.at_chance, chance_bound=val.chance_bound,
                  **selection)
    if val.val_gzsl is not None:
        chosen.update(gamma=val.gamma, gate_threshold=val.gate_threshold, val_gzsl=val.val_gzsl)
    out = dict(method=method, split=split_id, setting=val.setting, counts=counts, selection=chosen,
               zsl=dict(selected=tst.selected, last=tst.last, oracle=tst.oracle),
               curves=dict(val_acc=val.curve, test_acc=tst.curve, val_loss=val.losses, loss=tst.losses,
                           val_top_share=val.top_share, test_top_share=tst.top_share),
               sweep=result.sweep)
    if budget:
        out["budget"] = dict(budget)
    if tst.gzsl is not None:
        out["gzsl"] = tst.gzsl
    out["timing"] = {k: round(v, 4) for k, v in result.timing.items()}
    out["timing"]["read_caches"] = round(read_seconds, 4)
    out["compute"] = compute
    return out
