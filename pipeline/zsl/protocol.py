"""The evaluation protocol shared by SMIE and every baseline: partitions, validation-only selection, test.

Per split (docs/evaluation.md):

1. *Validation phase*: train on ``seen_train`` samples of the seen classes minus ``split.val_unseen``; after
   every epoch score ZSL among the ``val_unseen`` classes on their (``seen_train``+``seen_val``) samples.
   The epoch (and, over a sweep, the setting) with the best validation top-1 is selected; the GZSL ``gamma``
   and gate threshold are chosen at that epoch on ``seen_val`` samples of the training classes plus the
   ``val_unseen`` samples, over all seen classes; so is a method's own GZSL gate, when its ``gzsl_gate()``
   gives one (MSF's, reported as ``gzsl.msf_gate``).
2. *Final phase*: retrain on ``seen_train`` samples of all seen classes with the selected setting, and report
   the test numbers at the selected epoch, at the last epoch, and the best test epoch (the "oracle", as
   published numbers were obtained). Selection is finished before the final phase reads any test sample.

The validation phase may run on other features than the final phase (``val_data``): those of the split's
validation backbone, which never learnt the ``val_unseen`` classes, so that validation ZSL is a zero-shot task
for the backbone too. With the main features instead the validation classes were training classes of the
backbone and the selection is *optimistic* (recorded as such).

Epochs here are the units of the method's budget (:class:`~smie.pipeline.zsl.fit.FitOptions`): passes over the
data, or cycles. The results are typed: :class:`Validation`, :class:`TestResult`, :class:`ProtocolResult`; their
field names are the keys of ``metrics.json`` (:mod:`smie.pipeline.zsl.metrics`, docs/evaluation.md).
"""
from __future__ import annotations

import copy
import dataclasses
import time
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from smie.features.store import SmieError
from smie.pipeline.data.partitions import SEEN_TEST, SEEN_TRAIN, SEEN_VAL, UNSEEN_TEST, UNUSED, stratified_split
from smie.pipeline.device import resolve_device
from smie.pipeline.zsl.evaluate import (choose_gamma, choose_gate, gate_metrics, gzsl_from_predictions, gzsl_metrics,
                                        select_epoch, zsl_metrics)
from smie.pipeline.zsl.fit import FitOptions, train_method
from smie.pipeline.zsl.method import GateRows, GzslGate, Method, TrainSet
from smie.pipeline.zsl.results import NOT_TESTED, ProtocolResult, TestResult, Validation

ORACLE_NOTE = "test-set selection (oracle, as published numbers were obtained); not a valid estimate"
NAN = float("nan")


@dataclass(frozen=True)
class StageData:
    """Everything stage two reads, in memory. features (N, D); masked (N, W, D) or None; labels (N,) into
    ``class_names``; partition (N,) codes for *this* split; class_sem (K, E)."""

    features: np.ndarray
    masked: np.ndarray | None
    labels: np.ndarray
    partition: np.ndarray
    class_sem: np.ndarray
    class_names: tuple[str, ...]
    sample_ids: tuple[str, ...]


def check_split(split, cache_split: dict, where: str) -> None:
    """The backbone saw the cache split's seen classes; none of them may be unseen in ``split``."""
    leaked = sorted(set(split.unseen) & set(cache_split["seen"]))
    if leaked:
        raise SmieError(f"{where}: split {split.id} treats classes {leaked[:10]} as unseen, but the backbone that "
                        f"made this visual cache was trained on them (cache split {cache_split['id']}); "
                        f"extract features with a backbone trained on {split.id}'s seen classes")


def repartition(partition: np.ndarray, labels: np.ndarray, cache_split: dict, split,
                settings: dict | None = None) -> np.ndarray:
    """Partition codes for ``split`` from the cache's codes (made for ``cache_split``), in one place.

    ``settings`` is the visual cache's ``partition_settings`` (``protocol``, ``val_fraction``,
    ``test_fraction``, ``seed``; missing keys take :func:`~smie.pipeline.data.partitions.assign_partitions`'s
    defaults). Classes keep their codes when their role is unchanged. A class that was unseen for the cache but
    is seen in ``split`` (the backbone never saw it, so it may train the estimator): with an official protocol,
    its official-train samples (``unused``) are cut per class into ``seen_train``/``seen_val`` and its
    official-test samples (``unseen_test``) become ``seen_test``; without one, all its samples are cut per
    class into ``seen_train``/``seen_val``/``seen_test`` with the cache's fractions and partition seed, as the
    cache's own seen classes were. Classes in neither list become ``unused``.
    """
    settings = dict(settings or {})
    protocol = settings.get("protocol")
    val_fraction = float(settings.get("val_fraction", 0.1))
    test_fraction = float(settings.get("test_fraction", 0.2))
    seed = int(settings.get("seed", 0))
    part = np.asarray(partition, dtype=np.int8).copy()
    labels = np.asarray(labels)
    moved = sorted(set(split.seen) - set(cache_split["seen"]))
    rows = np.isin(labels, moved)
    if protocol is not None:
        train, val = stratified_split(labels, np.flatnonzero(rows & (part == UNUSED)), (val_fraction,), seed)
        part[rows & (part == UNSEEN_TEST)] = SEEN_TEST
        test = np.array([], dtype=np.int64)
    else:
        train, val, test = stratified_split(labels, np.flatnonzero(rows), (val_fraction, test_fraction), seed)
    part[train], part[val], part[test] = SEEN_TRAIN, SEEN_VAL, SEEN_TEST
    part[~np.isin(labels, list(split.seen) + list(split.unseen))] = UNUSED
    return part


@dataclass(frozen=True)
class Tracked:
    """What one training run recorded: per unit the ZSL top-1 ``curve`` and mean per-class accuracy (NaN where
    not evaluated), the mean loss; the unit ``kept`` whose ``state`` (state_dict) was kept; seconds in ``timing``."""

    curve: list[float]
    per_class: list[float]
    losses: list[float]
    kept: int
    state: dict
    timing: dict[str, float]
    top_share: list[float] = dataclasses.field(default_factory=list)
    last_state: dict | None = None


def _trainset(data: StageData, rows: np.ndarray, classes: list[int]) -> TrainSet:
    col = {c: i for i, c in enumerate(classes)}
    masked = None if data.masked is None else torch.from_numpy(data.masked[rows])
    return TrainSet(torch.from_numpy(data.features[rows]), masked,
                    torch.tensor([col[int(c)] for c in data.labels[rows]], dtype=torch.int64),
                    torch.from_numpy(data.class_sem[classes]), tuple(classes))


def _scores(model, data: StageData, rows: np.ndarray, classes: list[int], device) -> np.ndarray:
    v = torch.from_numpy(data.features[rows]).to(device)
    s = torch.from_numpy(data.class_sem[classes]).to(device)
    with torch.no_grad():
        return model.scores(v, s).detach().cpu().numpy().astype(np.float64)


def _targets(data: StageData, rows: np.ndarray, classes: list[int]) -> np.ndarray:
    col = {c: i for i, c in enumerate(classes)}
    return np.array([col[int(c)] for c in data.labels[rows]], dtype=np.int64)


def _rows(data: StageData, classes, codes) -> np.ndarray:
    return np.flatnonzero(np.isin(data.labels, list(classes)) & np.isin(data.partition, list(codes)))


def _train_tracking(make_model, setting, data, train_classes, eval_rows, eval_classes, opts: FitOptions,
                    keep_epoch=None) -> tuple[Method, Tracked]:
    """Train a fresh model; record per-unit ZSL on (eval_rows, eval_classes) at the plan's evaluation points;
    keep the state of the best unit (``keep_epoch=None``, the rule of :func:`select_epoch` from
    ``opts.first_eligible()``) or of ``keep_epoch``."""
    device = resolve_device(opts.device)
    torch.manual_seed(opts.seed)
    model = make_model(**setting)
    train = _trainset(data, _rows(data, train_classes, [SEEN_TRAIN]), list(train_classes))
    if len(train.labels) == 0:
        raise SmieError(f"no seen_train samples of classes {list(train_classes)[:10]}... to train on")
    targets = _targets(data, eval_rows, eval_classes)
    curve, per_class, share, kept = [], [], [], {}
    start = opts.first_eligible()

    def on_evaluate(unit, m):
        unit = max(unit, 0)
        while len(curve) < unit:
            curve.append(NAN)
            per_class.append(NAN)
            share.append(NAN)
        scores = _scores(m, data, eval_rows, eval_classes, device)
        metrics = zsl_metrics(scores, targets)
        curve.append(metrics["acc"])
        per_class.append(metrics["per_class_acc"])
        share.append(top_class_share(scores))
        # select_epoch's rule on the curve so far: this unit is kept iff it is the selection now
        if (select_epoch(curve, start) if keep_epoch is None else keep_epoch) == unit:
            kept.update(epoch=unit, state=copy.deepcopy(m.state_dict()))

    timing: dict[str, float] = {}
    losses = train_method(model, train, opts.plan(len(train.labels), keep_epoch), on_evaluate, timing)
    return model, Tracked(curve, per_class, losses, kept["epoch"], kept["state"], timing, share,
                          copy.deepcopy(model.state_dict()))


def top_class_share(scores: np.ndarray) -> float:
    """Share of the rows of ``scores`` (N, K) whose arg-max is the most-predicted class: 1/K for a critic that
    spreads its predictions evenly, 1.0 for one that gives every sample one class (collapse)."""
    scores = np.asarray(scores)
    if len(scores) == 0:
        return NAN
    return float(np.bincount(scores.argmax(axis=1), minlength=scores.shape[1]).max() / len(scores))


def chance_bound(n_classes: int, n_samples: int) -> float:
    """Chance accuracy ``p = 1/K`` plus two binomial standard errors, ``p + 2 sqrt(p (1 - p) / n)``: a validation
    accuracy below it is not told apart from guessing on ``n`` samples."""
    p = 1.0 / max(1, n_classes)
    return p + 2.0 * float(np.sqrt(p * (1 - p) / max(1, n_samples)))


def validate(make_model: Callable[..., Method], setting: dict, data: StageData, split, opts: FitOptions,
             gzsl: bool, view: str = "main") -> Validation:
    """Validation phase for one setting: selected unit, its val ZSL accuracy, gamma and gate threshold; with a
    method gate (``gzsl_gate()``), that gate fitted too (``view``: whose features ``data`` holds, ``main`` or
    ``validation``, which a gate's seen expert may need)."""
    train_classes = [c for c in split.seen if c not in set(split.val_unseen)]
    val_classes = list(split.val_unseen)
    val_rows = _rows(data, val_classes, [SEEN_TRAIN, SEEN_VAL])
    if len(val_rows) == 0:
        raise SmieError(f"split {split.id}: no samples of the validation classes {val_classes}")
    model, track = _train_tracking(make_model, setting, data, train_classes, val_rows, val_classes, opts)
    epoch, bound = track.kept, chance_bound(len(val_classes), len(val_rows))
    at_chance = bool(track.curve[epoch] < bound)
    if at_chance:  # a flat, chance-level curve says nothing about which unit is best: keep the last one
        warnings.warn(f"split {split.id}: the best validation ZSL top-1 ({track.curve[epoch]:.3f}) is below chance "
                      f"+ 2 s.e. ({bound:.3f}, {len(val_classes)} classes, {len(val_rows)} samples); selecting the "
                      "last evaluated point (metrics selection.val_at_chance = true)", stacklevel=2)
        epoch = len(track.curve) - 1
        track = dataclasses.replace(track, kept=epoch, state=track.last_state)
    base = dict(setting=setting, epoch=epoch, val_acc=track.curve[epoch], val_per_class_acc=track.per_class[epoch],
                first_eligible=opts.first_eligible(), curve=track.curve, losses=track.losses, timing=track.timing,
                top_share=track.top_share, at_chance=at_chance, chance_bound=bound)
    if not gzsl:
        return Validation(**base)
    model.load_state_dict(track.state)
    rows = np.concatenate([_rows(data, train_classes, [SEEN_VAL]), val_rows])
    cols = list(split.seen)
    scores = _scores(model, data, rows, cols, resolve_device(opts.device))
    targets, seen_mask = _targets(data, rows, cols), np.isin(cols, train_classes)
    gamma, threshold = choose_gamma(scores, targets, seen_mask), choose_gate(scores, targets, seen_mask)
    val_gzsl = dict(stacking=gzsl_metrics(scores, targets, seen_mask, gamma),
                    gate=gate_metrics(scores, targets, seen_mask, threshold))
    gates = {}
    hook = model.gzsl_gate()
    if hook is not None:
        gates[hook.key], val_gzsl[hook.key] = _fit_gate(hook, model, data, split, train_classes, val_rows, view,
                                                        opts)
    return Validation(**base, gamma=gamma, gate_threshold=threshold, val_gzsl=val_gzsl, gates=gates)


def _gate_rows(model, data: StageData, rows: np.ndarray, seen, unseen, view: str, device) -> GateRows:
    """What a method gate sees of ``rows``: the method's scores over ``unseen`` and the rows' cached features."""
    return GateRows(_scores(model, data, rows, list(unseen), device), data.features[rows], tuple(seen),
                    tuple(unseen), view, rows=np.asarray(rows))


def _gate_predictions(hook: GzslGate, state: dict, parts: list[GateRows], cols: list[int]) -> np.ndarray:
    """The gate's predicted classes on ``parts``, as columns of ``cols``."""
    col = {c: i for i, c in enumerate(cols)}
    return np.array([col[int(c)] for part in parts for c in hook.predict(state, part)], dtype=np.int64)


def _fit_gate(hook: GzslGate, model, data: StageData, split, train_classes, val_rows, view: str,
              opts: FitOptions) -> tuple[dict, dict]:
    """A method gate fitted on the validation phase's GZSL rows only: unseen role = the ``val_unseen`` samples,
    seen role = the ``seen_val`` samples of the training classes. Returns its state and its S/U/H on those rows
    (with the state's fields)."""
    device = resolve_device(opts.device)
    val_classes, seen_rows = list(split.val_unseen), _rows(data, train_classes, [SEEN_VAL])
    if len(seen_rows) == 0:
        raise SmieError(f"split {split.id}: the {hook.key} GZSL gate needs seen_val samples of the training classes")
    parts = [_gate_rows(model, data, r, train_classes, val_classes, view, device) for r in (val_rows, seen_rows)]
    state = hook.fit(*parts, test_unseen=len(split.unseen), seed=opts.seed)
    cols = list(split.seen)
    pred = _gate_predictions(hook, state, parts, cols)
    targets = _targets(data, np.concatenate([val_rows, seen_rows]), cols)
    return state, dict(gzsl_from_predictions(pred, targets, np.isin(cols, train_classes)), **state)


SELECTIONS = ("validation", "test-oracle")
"""How the final phase picks the unit it reports: ``validation`` (the unit validation selected; the default) or
``test-oracle`` (the best unseen-test unit, as most official codes report; optimistic, labelled in metrics.json)."""


def final_test(make_model: Callable[..., Method], val: Validation, data: StageData, split, opts: FitOptions,
               gzsl: bool, selection: str = "validation") -> TestResult:
    """Final phase: retrain on all seen classes with the validated setting; report test numbers at the unit
    ``selection`` picks (:data:`SELECTIONS`; GZSL's gamma, threshold and gate are the validation phase's)."""
    if selection not in SELECTIONS:
        raise SmieError(f"selection must be one of {', '.join(SELECTIONS)}, got {selection!r}")
    unseen = list(split.unseen)
    rows = _rows(data, unseen, [UNSEEN_TEST])
    if len(rows) == 0:
        raise SmieError(f"split {split.id}: no unseen_test samples of the unseen classes")
    model, track = _train_tracking(make_model, val.setting, data, split.seen, rows, unseen, opts,
                                   keep_epoch=val.epoch if selection == "validation" else None)
    model.load_state_dict(track.state)
    device = resolve_device(opts.device)
    scores = _scores(model, data, rows, unseen, device)
    targets = _targets(data, rows, unseen)
    curve = track.curve
    best = select_epoch(curve, opts.first_eligible())
    out = dict(selected=dict(zsl_metrics(scores, targets), epoch=track.kept),
               last=dict(acc=curve[-1], per_class_acc=track.per_class[-1], epoch=len(curve) - 1),
               oracle=dict(acc=curve[best], per_class_acc=track.per_class[best], epoch=best, note=ORACLE_NOTE),
               curve=curve, losses=track.losses, rows=rows, scores=scores, targets=targets, timing=track.timing,
               model=model, top_share=track.top_share)
    if not gzsl:
        return TestResult(**out)
    seen_code = SEEN_TEST if len(_rows(data, split.seen, [SEEN_TEST])) else SEEN_VAL
    if seen_code == SEEN_VAL:
        warnings.warn(f"split {split.id}: the cache has no seen_test samples, so GZSL tests the seen classes on "
                      "their seen_val samples, which also chose gamma and the gate threshold; the GZSL numbers "
                      "are optimistic (metrics gzsl.optimistic = true)", stacklevel=2)
    g_rows = np.concatenate([_rows(data, split.seen, [seen_code]), rows])
    cols = sorted(set(split.seen) | set(unseen))
    g_scores = _scores(model, data, g_rows, cols, device)
    g_targets, seen_mask = _targets(data, g_rows, cols), np.isin(cols, list(split.seen))
    out["gzsl"] = dict(seen_samples="seen_test" if seen_code == SEEN_TEST else "seen_val",
                       optimistic=seen_code != SEEN_TEST,
                       uncalibrated=gzsl_metrics(g_scores, g_targets, seen_mask, 0.0),
                       stacking=gzsl_metrics(g_scores, g_targets, seen_mask, val.gamma),
                       gate=gate_metrics(g_scores, g_targets, seen_mask, val.gate_threshold))
    hook = model.gzsl_gate()
    for key, state in val.gates.items():
        if hook is None or hook.key != key:
            raise SmieError(f"the final model has no GZSL gate {key!r} to apply")
        pred = _gate_predictions(hook, state, [_gate_rows(model, data, g_rows, split.seen, unseen, "main", device)],
                                 cols)
        out["gzsl"][key] = dict(gzsl_from_predictions(pred, g_targets, seen_mask), **hook.report(state))
    return TestResult(**out)


def run_protocol(make_model: Callable[..., Method], settings: list[dict], data: StageData, split,
                 opts: FitOptions, gzsl: bool = False, val_data: StageData | None = None,
                 sweep_test: bool = True, selection: str = "validation") -> ProtocolResult:
    """Validate every setting (on ``val_data`` when given, else on ``data``), pick the best on validation, then
    run the final phase on ``data`` for every setting (for the sweep table; only the chosen one when
    ``sweep_test`` is False, the others' test columns NaN) and return the selected one's results with
    ``sweep`` rows for all. ``selection``: the final phase's reported unit (:data:`SELECTIONS`)."""
    view = "main" if val_data is None else "validation"
    started = time.perf_counter()
    vals = [validate(make_model, s, data if val_data is None else val_data, split, opts, gzsl, view)
            for s in settings]
    chosen = int(np.argmax([v.val_acc for v in vals]))
    validated = time.perf_counter()
    tests = [final_test(make_model, v, data, split, opts, gzsl, selection) if sweep_test or i == chosen
             else NOT_TESTED
             for i, v in enumerate(vals)]
    timing = dict(validation=validated - started, final=time.perf_counter() - validated)
    for phase in vals + tests:
        for key, seconds in phase.timing.items():
            timing[key] = timing.get(key, 0.0) + seconds
    sweep = [dict(**v.setting, val_acc=v.val_acc, val_epoch=v.epoch, test_acc=t.selected["acc"],
                  test_last=t.last["acc"], test_oracle=t.oracle["acc"], selected=i == chosen)
             for i, (v, t) in enumerate(zip(vals, tests))]
    return ProtocolResult(vals[chosen], tests[chosen], sweep, chosen, timing)
