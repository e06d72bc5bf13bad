"""ZSL/GZSL metrics, calibrated stacking, gate and validation-only selection."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from smie.pipeline.zsl import protocol
from smie.pipeline.data.splits import Split
from smie.pipeline.zsl.estimator import SMIEEstimator, SMIEParams
from smie.pipeline.zsl.evaluate import (calibrated_stacking, choose_gamma, choose_gate, gate_metrics, gate_statistic,
                               gated_predict, gzsl_metrics, harmonic, select_epoch, zsl_metrics)
from smie.pipeline.zsl.fit import FitOptions
from smie.pipeline.zsl.protocol import StageData, run_protocol, validate

# columns 0, 1 seen; 2, 3 unseen
SEEN = np.array([True, True, False, False])
SCORES = np.array([
    [5.0, 1.0, 4.0, 0.0],   # seen 0, right until gamma > 0.485 (standardised margin 1 / sqrt(4.25))
    [0.0, 3.0, 2.0, 0.0],   # seen 1, right until gamma > 0.77
    [2.0, 0.0, 0.0, 1.0],   # seen 1, wrong (0)
    [3.0, 0.0, 2.0, 0.0],   # unseen 2, wrong (0); right after gamma > 0.77
    [0.0, 0.0, 1.0, 0.5],   # unseen 2, right
    [1.0, 0.0, 0.0, 0.8],   # unseen 3, wrong; right after gamma > 0.439
])
LABELS = np.array([0, 1, 1, 2, 2, 3])


def test_zsl_metrics_per_sample_and_per_class():
    scores = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    m = zsl_metrics(scores, np.array([0, 0, 1, 1]))
    assert m["acc"] == pytest.approx(3 / 4)
    assert m["per_class_acc"] == pytest.approx((1.0 + 0.5) / 2)
    assert m["top5"] == 1.0


def test_gzsl_metrics_by_hand():
    m = gzsl_metrics(SCORES, LABELS, SEEN)
    assert m["seen"] == pytest.approx(2 / 3)
    assert m["unseen"] == pytest.approx(1 / 3)
    assert m["h"] == pytest.approx(harmonic(2 / 3, 1 / 3)) and m["h"] == pytest.approx(4 / 9)
    assert m["seen_pc"] == pytest.approx((1 + 0.5) / 2)
    assert m["unseen_pc"] == pytest.approx((0.5 + 0) / 2)


def test_calibrated_stacking_by_hand():
    # row 0: mean 2.5, deviations (2.5, -1.5, 1.5, -2.5), std sqrt(4.25)
    z0 = np.array([2.5, -1.5, 1.5, -2.5]) / np.sqrt(4.25)
    np.testing.assert_allclose(calibrated_stacking(SCORES, SEEN, 1.5)[0], z0 - [1.5, 1.5, 0.0, 0.0])
    m = gzsl_metrics(SCORES, LABELS, SEEN, gamma=1.5)
    # seen: row0 -> col 2 (wrong), row1 -> col 2 (wrong), row2 -> col 3 (wrong); unseen all right
    assert (m["seen"], m["unseen"]) == (0.0, 1.0)
    m = gzsl_metrics(SCORES, LABELS, SEEN, gamma=0.46)
    assert (m["seen"], m["unseen"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3))


def test_stacking_gamma_is_invariant_to_a_models_score_scale():
    """gamma chosen on one model must mean the same on a retrained one whose scores are scaled/shifted."""
    rescaled = 10.0 * SCORES + 3.0
    assert choose_gamma(rescaled, LABELS, SEEN) == pytest.approx(choose_gamma(SCORES, LABELS, SEEN))
    for g in (0.0, 0.46, 1.5):
        assert gzsl_metrics(rescaled, LABELS, SEEN, g)["h"] == gzsl_metrics(SCORES, LABELS, SEEN, g)["h"]


def test_choose_gamma_maximises_h_on_validation():
    gamma = choose_gamma(SCORES, LABELS, SEEN)
    best = gzsl_metrics(SCORES, LABELS, SEEN, gamma)["h"]
    for g in np.linspace(-2, 6, 161):
        assert gzsl_metrics(SCORES, LABELS, SEEN, g)["h"] <= best + 1e-12
    assert best == pytest.approx(2 / 3)


def test_gate_routes_uncertain_samples_to_unseen_classes():
    scores = np.array([[4.0, 0.0, 0.0, 1.0], [0.1, 0.0, 1.0, 0.0], [0.0, 0.1, 0.0, 2.0]])
    # seen-class confidence 1 - H/log 2: row0 ~0.87, row1 ~0.0018, row2 ~0.0018
    np.testing.assert_allclose(gate_statistic(scores, SEEN), [0.8707, 0.0018, 0.0018], atol=1e-3)
    np.testing.assert_array_equal(gated_predict(scores, SEEN, 0.5), [0, 2, 3])
    np.testing.assert_array_equal(gated_predict(scores, SEEN, 0.001), [0, 0, 1])
    labels = np.array([0, 2, 3])
    t = choose_gate(scores, labels, SEEN)
    assert gate_metrics(scores, labels, SEEN, t)["h"] == pytest.approx(1.0)


def test_select_epoch_skips_warmup_and_prefers_earliest():
    assert select_epoch([0.9, 0.1, 0.5, 0.5, 0.2], first_eligible=2) == 2
    assert select_epoch([0.9, 0.1, 0.5], first_eligible=0) == 0
    assert select_epoch([0.1, 0.3], first_eligible=5) == 1


def _data(seed=0, K=10, per=24, D=8, E=6):
    rng = np.random.default_rng(seed)
    sem = rng.normal(size=(K, E))
    labels = np.repeat(np.arange(K), per)
    feats = sem[labels] @ rng.normal(size=(D, E)).T + 0.3 * rng.normal(size=(len(labels), D))
    masked = feats[:, None] + 0.1 * rng.normal(size=(len(labels), 2, D))
    unseen, val = (0, 1, 2), (3, 4)
    part = np.where(np.isin(labels, unseen), 3, np.where(np.arange(len(labels)) % 5 == 0, 1, 0))
    data = StageData(feats.astype(np.float32), masked.astype(np.float32), labels, part.astype(np.int8),
                     sem.astype(np.float32), tuple(map(str, range(K))), tuple(map(str, range(len(labels)))))
    return data, Split("test", K, tuple(range(3, K)), unseen, val)


def _make(alpha, lam):
    return SMIEEstimator(8, 6, SMIEParams(hidden=(16, 8), alpha=alpha, lam=lam))


OPTS = FitOptions(epochs=4, batch_size=32, lr=1e-3, warmup=1, seed=0)


def test_selection_never_reads_unseen_test(monkeypatch):
    """Instrumented: validation touches no unseen_test row, and garbage in those rows changes nothing."""
    data, split = _data()
    touched = []
    real_scores, real_trainset = protocol._scores, protocol._trainset
    monkeypatch.setattr(protocol, "_scores", lambda m, d, rows, *a: touched.append(rows) or real_scores(m, d, rows, *a))
    monkeypatch.setattr(protocol, "_trainset", lambda d, rows, c: touched.append(rows) or real_trainset(d, rows, c))
    val = validate(_make, dict(alpha=0.1, lam=0.5), data, split, OPTS, gzsl=True)
    rows = np.concatenate(touched)
    assert len(rows) and not (data.partition[rows] == protocol.UNSEEN_TEST).any()
    assert not np.isin(data.labels[rows], split.unseen).any()

    noisy = data.features.copy()
    test_rows = data.partition == protocol.UNSEEN_TEST
    noisy[test_rows] = np.random.default_rng(1).normal(size=noisy[test_rows].shape) * 100
    other = StageData(noisy, data.masked, data.labels, data.partition, data.class_sem, data.class_names,
                      data.sample_ids)
    settings = [dict(alpha=0.1, lam=0.5), dict(alpha=0.5, lam=0.5)]
    a = run_protocol(_make, settings, data, split, OPTS, gzsl=True)
    b = run_protocol(_make, settings, other, split, OPTS, gzsl=True)
    for key in ("epoch", "val_acc", "gamma", "gate_threshold", "curve"):
        assert getattr(a.validation, key) == getattr(b.validation, key)
    assert a.chosen == b.chosen
    assert val.epoch == a.validation.epoch and val.gamma == a.validation.gamma
    assert a.test.curve != b.test.curve  # the test numbers do read the (changed) test rows


def test_oracle_is_best_test_epoch_and_labelled():
    data, split = _data(seed=2)
    res = run_protocol(_make, [dict(alpha=0.1, lam=0.5)], data, split, OPTS)
    t = res.test
    first = OPTS.warmup + 1  # epochs after the warm-up, as the official code
    assert t.oracle["acc"] == max(t.curve[first:]) and "oracle" in t.oracle["note"]
    assert res.validation.epoch >= first and t.oracle["epoch"] >= first
    assert t.last["acc"] == t.curve[-1]
    assert t.selected["acc"] == pytest.approx(t.curve[res.validation.epoch])


def test_kept_state_is_the_selected_epoch_even_with_nan_accuracy(monkeypatch):
    """The snapshot used for gamma/gate calibration follows select_epoch's rule (NaN never wins)."""
    data, split = _data()
    script = iter([0.1, 0.2, float("nan"), 0.3])
    real = protocol.zsl_metrics
    monkeypatch.setattr(protocol, "zsl_metrics", lambda s, t: {**real(s, t), "acc": next(script)})
    train_classes = [c for c in split.seen if c not in split.val_unseen]
    rows = protocol._rows(data, split.val_unseen, [protocol.SEEN_TRAIN, protocol.SEEN_VAL])
    _, track = protocol._train_tracking(_make, dict(alpha=0.1, lam=0.5), data, train_classes, rows,
                                        list(split.val_unseen), OPTS)
    assert track.kept == select_epoch(track.curve, OPTS.first_eligible()) == 3


def test_gzsl_on_seen_val_samples_warns_and_is_marked_optimistic():
    data, split = _data()
    with pytest.warns(UserWarning, match="optimistic"):
        res = run_protocol(_make, [dict(alpha=0.1, lam=0.5)], data, split, OPTS, gzsl=True)
    assert res.test.gzsl["seen_samples"] == "seen_val" and res.test.gzsl["optimistic"] is True

    part = data.partition.copy()
    part[(part == protocol.SEEN_VAL) & (np.arange(len(part)) % 2 == 0)] = protocol.SEEN_TEST
    held_out = StageData(data.features, data.masked, data.labels, part, data.class_sem, data.class_names,
                         data.sample_ids)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = run_protocol(_make, [dict(alpha=0.1, lam=0.5)], held_out, split, OPTS, gzsl=True)
    assert res.test.gzsl["seen_samples"] == "seen_test" and res.test.gzsl["optimistic"] is False


def test_eval_every_scores_only_every_kth_epoch_and_never_selects_the_others():
    data, split = _data()
    opts = FitOptions(epochs=7, batch_size=32, lr=1e-3, warmup=0, seed=0, eval_every=3)
    val = validate(_make, dict(alpha=0.1, lam=0.5), data, split, opts, gzsl=False)
    evaluated = [i for i, v in enumerate(val.curve) if not np.isnan(v)]
    assert evaluated == [2, 5, 6]
    assert val.epoch in evaluated
