"""The step budget (pipeline/zsl/budget.py), the per-step schedule, the collapse diagnostic and the chance rule."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from smie.features.store import SmieError
from smie.pipeline.data.splits import Split
from smie.pipeline.zsl import protocol
from smie.pipeline.zsl.budget import NTU60_55_5_ROWS, fit_options, plan_budget
from smie.pipeline.zsl.estimator import SPEC, SMIEEstimator, SMIEParams
from smie.pipeline.zsl.fit import FitOptions, step_factor
from smie.pipeline.zsl.protocol import StageData, chance_bound, top_class_share, validate
from smie.pipeline.zsl.results import selection_rule


def test_paper_budget_is_the_papers_on_ntu_and_compressed_on_small_data():
    ntu = plan_budget(1e-5, 100, NTU60_55_5_ROWS, 128, max_compression=10)
    assert (ntu.steps, ntu.lr, ntu.steps_ref, ntu.compression) == (28_700, 1e-5, 28_700, 1.0)
    msr = plan_budget(1e-5, 100, 300, 128, max_compression=10)  # 3 steps an epoch: 300 steps as the code counts
    assert (msr.steps_code, msr.steps) == (300, 2_870) and msr.lr == pytest.approx(1e-4)
    mid = plan_budget(1e-5, 100, 10_000, 128, max_compression=10)  # 79 steps an epoch: less than 10x short
    assert mid.steps == 7_900 and mid.lr * mid.steps == pytest.approx(1e-5 * 28_700)
    assert plan_budget(1e-5, 100, 300, 128, max_compression=1).steps == 28_700  # c_max 1: the paper's steps
    code = plan_budget(1e-5, 100, 300, 128, "code-epochs")
    assert (code.steps, code.lr) == (300, 1e-5)
    with pytest.raises(SmieError, match="budget must be one of"):
        plan_budget(1e-5, 100, 300, 128, "epochs")


def _trajectory(n_train: int) -> tuple[list[float], FitOptions]:
    fit, _ = fit_options(SPEC, n_train, 128, SPEC.lr, 100, "paper-steps")
    plan = fit.plan(n_train)
    return [fit.lr * plan.lr_factor(s) for s in range(plan.steps)], fit


def test_step_budget_gives_the_same_learning_rate_trajectory_at_any_data_size():
    small, fit_small = _trajectory(200)
    other, fit_other = _trajectory(1_000)  # 8 steps an epoch instead of 2: same budget, same rates
    assert len(small) == 957 and small == other  # SMIE: 28,700 steps compressed 30x
    assert fit_small.plan(200).evaluate == fit_other.plan(1_000).evaluate  # same evaluation points too
    assert small[0] == 0 and max(small) == pytest.approx(1e-5 * 28_700 / 957) and small[-1] < 1e-6
    warm = int(np.argmax(small))
    assert warm == round(0.15 * 957)  # 15 of 100 epochs of warm-up = 15 % of the steps
    # NTU-size data runs the paper's own 28,700 steps at 1e-5: the same curve, as a fraction of the run
    fit, _ = fit_options(SPEC, NTU60_55_5_ROWS, 128, SPEC.lr, 100, "paper-steps")
    plan = fit.plan(NTU60_55_5_ROWS)
    assert plan.steps == 28_700 and fit.lr == 1e-5
    for frac in (0.05, 0.15, 0.3, 0.6, 0.9):
        big = plan.lr_factor(int(frac * 28_700))
        assert big == pytest.approx(small[int(frac * 957)] / max(small), abs=1e-2)  # 957 vs 28,700 steps
    # code-epochs keeps the code's per-epoch schedule and count
    code, budget = fit_options(SPEC, 200, 128, SPEC.lr, 100, "code-epochs")
    assert code.steps is None and code.epochs == 100 and budget["steps"] == 200 and budget["mode"] == "code-epochs"


def test_step_factor_is_warmup_then_cosine_and_points_partition_the_run():
    assert [step_factor(s, 100, 10) for s in (0, 5, 10)] == [0.0, 0.5, 1.0]
    assert step_factor(55, 100, 10) == pytest.approx(0.5) and step_factor(99, 100, 10) < 1e-3
    opts = FitOptions(epochs=25, steps=2_870, lr=1e-4, warmup=0, warmup_share=0.15)
    plan = opts.plan(300)
    assert len(plan.ends) == 25 and plan.ends[-1] == 2_870 and plan.evaluate == plan.ends
    first = opts.first_eligible()
    assert plan.ends[first - 1] >= round(0.15 * 2_870) > plan.ends[first - 2]  # first point after the warm-up


class _OneClassCritic(SMIEEstimator):
    """A critic with a per-text bias: class text 0 scores highest for every visual feature (collapse)."""

    def scores(self, visual, class_sem):
        out = super().scores(visual, class_sem)
        return out + torch.nn.functional.one_hot(torch.tensor(0), out.shape[1]) * 1e3


def _data(seed=0, K=8, D=8, E=6, n=30):
    rng = np.random.default_rng(seed)
    sem = rng.normal(size=(K, E))
    labels = np.repeat(np.arange(K), n)
    feats = sem[labels] @ rng.normal(size=(D, E)).T + 0.3 * rng.normal(size=(len(labels), D))
    masked = feats[:, None] + 0.1 * rng.normal(size=(len(labels), 2, D))
    unseen, val = (0, 1, 2), (3, 4, 5)
    part = np.where(np.isin(labels, unseen), 3, np.where(np.arange(len(labels)) % 5 == 0, 1, 0))
    data = StageData(feats.astype(np.float32), masked.astype(np.float32), labels, part.astype(np.int8),
                     sem.astype(np.float32), tuple(map(str, range(K))), tuple(map(str, range(len(labels)))))
    return data, Split("test", K, tuple(range(3, K)), unseen, val)


OPTS = FitOptions(epochs=5, steps=40, batch_size=32, lr=1e-3, warmup=0, warmup_share=0.15, seed=0)


def test_collapse_diagnostic_detects_a_critic_that_always_predicts_one_class():
    assert top_class_share(np.eye(4)) == 0.25  # every class predicted once
    assert top_class_share(np.tile([0.0, 5.0, 1.0], (7, 1))) == 1.0
    data, split = _data()
    with pytest.warns(UserWarning, match="below chance"):
        val = validate(lambda **s: _OneClassCritic(8, 6, SMIEParams(hidden=(16, 8))), {}, data, split, OPTS,
                       gzsl=False)
    assert val.top_share == [1.0] * 5  # every evaluated point: all predictions to one class
    assert all(v == pytest.approx(1 / 3) for v in val.curve)  # the share of that class's samples
    healthy = validate(lambda **s: SMIEEstimator(8, 6, SMIEParams(hidden=(16, 8))), {}, data, split, OPTS,
                       gzsl=False)
    assert max(healthy.top_share) < 1.0


def test_chance_rule_warns_records_and_selects_the_last_point():
    p, n = 1 / 5, 111
    assert chance_bound(5, n) == pytest.approx(p + 2 * math.sqrt(p * (1 - p) / n))
    data, split = _data()
    with pytest.warns(UserWarning, match="selecting the last evaluated point"):
        val = validate(lambda **s: _OneClassCritic(8, 6, SMIEParams(hidden=(16, 8))), {}, data, split, OPTS,
                       gzsl=True)
    assert val.at_chance is True and val.epoch == len(val.curve) - 1
    assert val.chance_bound == pytest.approx(chance_bound(3, len(protocol._rows(data, split.val_unseen, [0, 1]))))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        good = validate(lambda **s: SMIEEstimator(8, 6, SMIEParams(hidden=(16, 8))), {}, data, split,
                        FitOptions(epochs=5, steps=200, batch_size=32, lr=3e-3, warmup=0, seed=0), gzsl=False)
    assert good.at_chance is False and good.val_acc >= good.chance_bound
    assert "last evaluated point" in selection_rule(OPTS.first_eligible(), "after-warmup", "point")


def test_seen_mean_centring_zeroes_each_class_mean_over_training_rows_and_survives_a_reload():
    from smie.pipeline.zsl.method import TrainSet

    torch.manual_seed(0)
    params = SMIEParams(hidden=(16, 8), score_center="seen-mean")
    model = SMIEEstimator(8, 6, params)
    train = TrainSet(torch.randn(40, 8), None, torch.arange(40) % 4, torch.randn(4, 6), (0, 1, 2, 3))
    sem = torch.randn(5, 6)
    model.finalize(train, train.class_sem)
    centred = model.scores(train.visual, sem)  # 40 rows <= 512: every training row is kept
    assert torch.allclose(centred.mean(dim=0), torch.zeros(5), atol=1e-5)
    plain = SMIEEstimator(8, 6, SMIEParams(hidden=(16, 8)))
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if k != "center_visual"})
    assert not torch.allclose(plain.scores(train.visual, sem).mean(dim=0), torch.zeros(5), atol=1e-3)
    again = SMIEEstimator(8, 6, params)
    again.load_state_dict(model.state_dict())
    assert torch.equal(again.scores(train.visual, sem), centred)
    with pytest.raises(SmieError, match="score_center"):
        SMIEParams(score_center="test-mean")


def test_quickstart_says_why_the_selected_point_is_far_from_the_best_test_point():
    from smie.pipeline.tools.quickstart_stages import selection_note

    def metrics(selected, oracle, at_chance):
        return dict(zsl=dict(selected=dict(acc=selected, epoch=24), oracle=dict(acc=oracle, epoch=3)),
                    selection=dict(val_at_chance=at_chance, chance_bound=0.43),
                    curves=dict(val_top_share=[0.5, 1.0]))

    assert selection_note("smie", metrics(0.70, 0.74, False)) == ""  # within 5 points: nothing to explain
    note = selection_note("smie", metrics(0.43, 0.70, True))
    assert "27.0 points below the best test point 3" in note and "chance + 2 s.e. (0.430)" in note
    assert "does not track" in selection_note("smie", metrics(0.43, 0.70, False))


def test_compare_passes_the_budget_to_every_run_and_keys_resume_on_it(stage_caches, tmp_path):
    """``smie compare --budget code-epochs`` reaches the runs (metrics.json's ``budget.mode``), and the budget is
    part of the resume key: a compare under another budget reruns instead of reusing."""
    import json

    from smie.pipeline.zsl.compare import CompareConfig, compare_key

    visual, text = stage_caches(tmp_path)
    cfgs = [CompareConfig(visual, text, tmp_path / "cmp", methods=("smie",), budget=b, device="cpu")
            for b in ("code-epochs", "paper-steps")]
    assert compare_key(cfgs[0], [visual]) != compare_key(cfgs[1], [visual])
    from smie.pipeline.zsl.compare import compare

    compare(cfgs[0])
    (metrics,) = (tmp_path / "cmp" / "runs" / "smie").rglob("metrics.json")
    assert json.loads(metrics.read_text())["budget"]["mode"] == "code-epochs"
