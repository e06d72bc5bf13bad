"""The evaluation protocol shared by SMIE and every baseline: partitions, validation-only selection, test.

Per split (docs/evaluation.md):

1. *Validation phase*: train on ``seen_train`` samples of the seen classes minus ``split.val_unseen``; after
   every epoch score ZSL among the ``val_unseen`` classes on their (``seen_train``+``seen_val``) samples.
   The epoch (and, over a sweep, the setting) with the best validation top-1 is selected; the GZSL ``gamma``
   and gate threshold are chosen at that epoch on ``seen_val`` samples of the training classes plus the
   ``val_unseen`` samples, over all seen classes; so is MSF's gate, for a method whose ``gate`` is ``"msf"``
   (reported as ``gzsl.msf_gate``).
2. *Final phase*: retrain on ``seen_train`` samples of all seen classes with the selected setting, and report
   the test numbers at the selected epoch, at the last epoch, and the best test epoch (the "oracle", as
   published numbers were obtained). Selection is finished before the final phase reads any test sample.

The validation phase may run on other features than the final phase (``val_data``): those of the split's
validation backbone, which never learnt the ``val_unseen`` classes, so that validation ZSL is a zero-shot task
for the backbone too. With the main features instead the validation classes were training classes of the
backbone and the selection is *optimistic* (recorded as such).
"""
from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from smie.features.store import SmieError
from smie.pipeline.data.partitions import SEEN_TEST, SEEN_TRAIN, SEEN_VAL, UNSEEN_TEST, UNUSED, stratified_split
from smie.pipeline.zsl.evaluate import (choose_gamma, choose_gate, fit_msf_gate, gate_metrics, gzsl_from_predictions,
                                        gzsl_metrics, msf_gate_predict, select_epoch, softmax, zsl_metrics)
from smie.pipeline.device import resolve_device
from smie.pipeline.zsl.fit import FitOptions, TrainSet, train_method

ORACLE_NOTE = "test-set selection (oracle, as published numbers were obtained); not a valid estimate"


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


def _first_eligible(opts: FitOptions) -> int:
    """First epoch that may be selected: after the warm-up (the official code only keeps epochs > 15 of its
    15-epoch warm-up), or epoch 0 when the run is not longer than that. A step-scheduled run without warm-up
    (``epoch_steps``: the cycle methods, one epoch per cycle) may select any epoch, as their code keeps any cycle."""
    if opts.epoch_steps is not None and opts.warmup == 0:
        return 0
    return opts.warmup + 1 if opts.warmup + 1 < opts.epochs else 0


def _train_tracking(make_model, setting, data, train_classes, eval_rows, eval_classes, opts, keep_epoch=None):
    """Train a fresh model; record per-epoch ZSL on (eval_rows, eval_classes); snapshot the state at the
    best epoch (``keep_epoch=None``, selection rule of :func:`select_epoch`) or at ``keep_epoch``.

    A method whose scoring is costly (the generative baselines retrain a latent classifier to score) may set
    ``eval_every = k``: it is then evaluated every k-th epoch, at the last epoch and at ``keep_epoch``; the
    other epochs are NaN in the curve and never selected."""
    device = resolve_device(opts.device)
    torch.manual_seed(opts.seed)
    model = make_model(**setting)
    train = _trainset(data, _rows(data, train_classes, [SEEN_TRAIN]), list(train_classes))
    if len(train.labels) == 0:
        raise SmieError(f"no seen_train samples of classes {list(train_classes)[:10]}... to train on")
    targets = _targets(data, eval_rows, eval_classes)
    curve, per_class, kept = [], [], {}
    start = _first_eligible(opts)

    every = max(1, int(getattr(model, "eval_every", 1)))

    def evaluated(epoch: int) -> bool:
        return (epoch + 1) % every == 0 or epoch in (opts.epochs - 1, keep_epoch)

    def on_epoch(epoch, m):
        epoch = max(epoch, 0)
        while len(curve) < epoch:
            curve.append(float("nan"))
            per_class.append(float("nan"))
        metrics = zsl_metrics(_scores(m, data, eval_rows, eval_classes, device), targets)
        curve.append(metrics["acc"])
        per_class.append(metrics["per_class_acc"])
        # select_epoch's rule on the curve so far: this epoch is kept iff it is the selection now
        if (select_epoch(curve, start) if keep_epoch is None else keep_epoch) == epoch:
            kept.update(epoch=epoch, state=copy.deepcopy(m.state_dict()))

    timing: dict[str, float] = {}
    losses = train_method(model, train, opts, on_epoch=on_epoch, evaluate_epoch=evaluated, timing=timing)
    return model, dict(curve=curve, per_class=per_class, losses=losses, kept=kept, timing=timing)


def validate(make_model: Callable, setting: dict, data: StageData, split, opts: FitOptions, gzsl: bool,
             view: str = "main") -> dict:
    """Validation phase for one setting: selected epoch, its val ZSL accuracy, gamma and gate threshold; with a
    method whose ``gate`` is ``"msf"``, MSF's gate fitted here too (``view``: whose features ``data`` holds,
    ``main`` or ``validation``, which picks the backbone head of the seen expert)."""
    train_classes = [c for c in split.seen if c not in set(split.val_unseen)]
    val_classes = list(split.val_unseen)
    val_rows = _rows(data, val_classes, [SEEN_TRAIN, SEEN_VAL])
    if len(val_rows) == 0:
        raise SmieError(f"split {split.id}: no samples of the validation classes {val_classes}")
    model, track = _train_tracking(make_model, setting, data, train_classes, val_rows, val_classes, opts)
    epoch = track["kept"]["epoch"]
    out = dict(setting=setting, epoch=epoch, val_acc=track["curve"][epoch],
               val_per_class_acc=track["per_class"][epoch], curve=track["curve"], losses=track["losses"],
               first_eligible=_first_eligible(opts), timing=track["timing"])
    if gzsl:
        model.load_state_dict(track["kept"]["state"])
        rows = np.concatenate([_rows(data, train_classes, [SEEN_VAL]), val_rows])
        cols = list(split.seen)
        scores = _scores(model, data, rows, cols, resolve_device(opts.device))
        targets, seen_mask = _targets(data, rows, cols), np.isin(cols, train_classes)
        gamma, threshold = choose_gamma(scores, targets, seen_mask), choose_gate(scores, targets, seen_mask)
        out.update(gamma=gamma, gate_threshold=threshold,
                   val_gzsl=dict(stacking=gzsl_metrics(scores, targets, seen_mask, gamma),
                                 gate=gate_metrics(scores, targets, seen_mask, threshold)))
        if getattr(model, "gate", None) == "msf":
            out["msf_gate"], out["val_gzsl"]["msf_gate"] = _fit_msf_gate(model, data, split, train_classes, val_rows,
                                                                         view, opts)
    return out


def _experts(model, data: StageData, rows, seen, unseen, view: str, device) -> tuple[np.ndarray, np.ndarray]:
    """MSF's two experts on ``rows``: the method's softmax over the ``unseen`` classes only (N, Ku) and the
    backbone head's temperature-scaled softmax over the ``seen`` classes (N, Ks)."""
    return softmax(_scores(model, data, rows, list(unseen), device)), model.seen_expert(data.features[rows],
                                                                                       list(seen), view)


def _fit_msf_gate(model, data: StageData, split, train_classes, val_rows, view: str, opts) -> tuple[dict, dict]:
    """MSF's gate (:func:`~smie.pipeline.zsl.evaluate.fit_msf_gate`) from the validation phase's GZSL rows only:
    unseen = the ``val_unseen`` samples, seen = the ``seen_val`` samples of the training classes. k = the number
    of unseen classes (the code's ``ss``; the smaller count when the validation phase has fewer). Returns the
    gate and its S/U/H on those rows."""
    device = resolve_device(opts.device)
    val_classes, seen_rows = list(split.val_unseen), _rows(data, train_classes, [SEEN_VAL])
    if len(seen_rows) == 0:
        raise SmieError(f"split {split.id}: the MSF gate needs seen_val samples of the training classes")
    k = min(len(split.unseen), len(val_classes), len(train_classes))
    experts = [_experts(model, data, r, train_classes, val_classes, view, device) for r in (val_rows, seen_rows)]
    gate = fit_msf_gate(*experts, k=k, temperature=float(model.gate_temperature), seed=opts.seed)
    col = {c: i for i, c in enumerate(split.seen)}
    pred = np.concatenate([msf_gate_predict(pu, ps, [col[c] for c in val_classes], [col[c] for c in train_classes],
                                            gate) for pu, ps in experts])
    targets = _targets(data, np.concatenate([val_rows, seen_rows]), list(split.seen))
    metrics = gzsl_from_predictions(pred, targets, np.isin(list(split.seen), train_classes))
    return gate, dict(metrics, **gate)


def final_test(make_model: Callable, val: dict, data: StageData, split, opts: FitOptions, gzsl: bool) -> dict:
    """Final phase: retrain on all seen classes with the validated setting; report test numbers."""
    unseen = list(split.unseen)
    rows = _rows(data, unseen, [UNSEEN_TEST])
    if len(rows) == 0:
        raise SmieError(f"split {split.id}: no unseen_test samples of the unseen classes")
    model, track = _train_tracking(make_model, val["setting"], data, split.seen, rows, unseen, opts,
                                   keep_epoch=val["epoch"])
    model.load_state_dict(track["kept"]["state"])
    device = resolve_device(opts.device)
    scores = _scores(model, data, rows, unseen, device)
    targets = _targets(data, rows, unseen)
    curve = track["curve"]
    best = select_epoch(curve, _first_eligible(opts))
    out = dict(selected=dict(zsl_metrics(scores, targets), epoch=val["epoch"]),
               last=dict(acc=curve[-1], per_class_acc=track["per_class"][-1], epoch=len(curve) - 1),
               oracle=dict(acc=curve[best], per_class_acc=track["per_class"][best], epoch=best, note=ORACLE_NOTE),
               curve=curve, losses=track["losses"], test_rows=rows, test_scores=scores, test_targets=targets,
               timing=track["timing"])
    if gzsl:
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
                           stacking=gzsl_metrics(g_scores, g_targets, seen_mask, val["gamma"]),
                           gate=gate_metrics(g_scores, g_targets, seen_mask, val["gate_threshold"]))
        if "msf_gate" in val:
            gate = val["msf_gate"]
            pu, ps = _experts(model, data, g_rows, split.seen, unseen, "main", device)
            pred = msf_gate_predict(pu, ps, [cols.index(c) for c in unseen], [cols.index(c) for c in split.seen], gate)
            out["gzsl"]["msf_gate"] = dict(gzsl_from_predictions(pred, g_targets, seen_mask),
                                           **{key: gate[key] for key in ("k", "temperature", "threshold")})
    out["model"] = model
    return out


def run_protocol(make_model: Callable[..., torch.nn.Module], settings: list[dict], data: StageData, split,
                 opts: FitOptions, gzsl: bool = False, val_data: StageData | None = None,
                 sweep_test: bool = True) -> dict:
    """Validate every setting (on ``val_data`` when given, else on ``data``), pick the best on validation, then
    run the final phase on ``data`` for every setting (for the sweep table; only the chosen one when
    ``sweep_test`` is False, the others' test columns NaN) and return the selected one's results with
    ``sweep`` rows for all, and ``timing``: seconds of the ``validation`` and ``final`` phases and, summed over
    both, of training ``steps``, ``finalize`` and ``evaluate`` (per-epoch scoring)."""
    view = "main" if val_data is None else "validation"
    started = time.perf_counter()
    vals = [validate(make_model, s, data if val_data is None else val_data, split, opts, gzsl, view)
            for s in settings]
    chosen = int(np.argmax([v["val_acc"] for v in vals]))
    validated = time.perf_counter()
    nan = dict(selected=dict(acc=float("nan")), last=dict(acc=float("nan")), oracle=dict(acc=float("nan")))
    tests = [final_test(make_model, v, data, split, opts, gzsl) if sweep_test or i == chosen else nan
             for i, v in enumerate(vals)]
    timing = dict(validation=validated - started, final=time.perf_counter() - validated)
    for phase in vals + tests:
        for key, seconds in phase.get("timing", {}).items():
            timing[key] = timing.get(key, 0.0) + seconds
    sweep = [dict(**v["setting"], val_acc=v["val_acc"], val_epoch=v["epoch"], test_acc=t["selected"]["acc"],
                  test_last=t["last"]["acc"], test_oracle=t["oracle"]["acc"], selected=i == chosen)
             for i, (v, t) in enumerate(zip(vals, tests))]
    return dict(validation=vals[chosen], test=tests[chosen], sweep=sweep, chosen=chosen, timing=timing)
