"""Stage-two loop, semantics, learnability, run directories and ``fit-estimator`` on real HDF5 caches."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from smie.features.store import SmieError
from smie.features.text import TextCache, TextKind, read_text, write_text
from smie.features.visual import VisualCache, write_visual
from smie.pipeline.data.splits import Split
from smie.pipeline.zsl.estimator import SMIEEstimator, SMIEParams
from smie.pipeline.zsl.experiment import FitConfig, fit_estimator
from smie.pipeline.zsl.fit import FitOptions, lr_factor, semantic_matrix, train_method
from smie.pipeline.zsl.method import TrainSet
from smie.pipeline.zsl.protocol import StageData, repartition, run_protocol
from smie.pipeline.zsl.report import report
from smie.pipeline.zsl.rundir import load_run, write_run

REPO = Path(__file__).resolve().parents[1]
NAMES = tuple(f"action {i}" for i in range(16))


def _world(seed=0, K=16, per=20, D=12, E=6, noise=0.3):
    """Visual features generated from class semantics: visual = W @ semantic + noise (unseen classes learnable)."""
    rng = np.random.default_rng(seed)
    sem = rng.normal(size=(K, E))
    sem /= np.linalg.norm(sem, axis=1, keepdims=True)
    labels = np.repeat(np.arange(K), per)
    feats = sem[labels] @ rng.normal(size=(D, E)).T + noise * rng.normal(size=(len(labels), D))
    masked = feats[:, None] + 0.2 * rng.normal(size=(len(labels), 3, D))
    unseen, val = (0, 1, 2, 3), (4, 5)
    split = dict(id="file:test", num_classes=K, seen=list(range(4, K)), unseen=list(unseen), val_unseen=list(val))
    part = np.where(np.isin(labels, unseen), 3, np.where(np.arange(len(labels)) % 5 == 0, 1, 0)).astype(np.int8)
    return sem.astype(np.float32), feats.astype(np.float32), masked.astype(np.float32), labels, part, split


def _write_caches(tmp_path, seed=0, text_sem=None, names=NAMES):
    sem, feats, masked, labels, part, split = _world(seed)
    vc = VisualCache(feats, masked, labels, tuple(f"s{i:04d}" for i in range(len(labels))), part, NAMES, split,
                     {"variant": "official", "k": 15, "drop": 15, "views": 3, "seed": 0},
                     {"protocol": None, "val_fraction": 0.2, "seed": 0}, "ab" * 32, "stgcn", {}, "cd" * 32)
    write_visual(tmp_path / "visual.h5", vc, {"config": {"test": True}})
    sem = sem if text_sem is None else text_sem
    K, E = sem.shape
    # two descriptions per class for "label" (second padded for the last class), their mean is the semantic
    noise = np.random.default_rng(7).normal(size=(K, E)) * 0.05
    a, b = sem + noise, sem - noise
    emb = np.stack([a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)], 1)
    count = np.full(K, 2, np.int32)
    count[-1] = 1
    emb[-1, 0], emb[-1, 1] = sem[-1], 0.0
    texts = tuple((n, n + "!" if i < K - 1 else "") for i, n in enumerate(names))
    tc = TextCache(tuple(names), np.arange(K), {"label": TextKind(emb.astype(np.float32), texts, count)},
                   "test-encoder", "test", "ef" * 32, E)
    write_text(tmp_path / "text.h5", tc, {"config": {"label_template": "{}"}})
    return tmp_path / "visual.h5", tmp_path / "text.h5"


def test_lr_schedule_is_the_official_one():
    assert lr_factor(0, 100, 15) == 0.0
    assert lr_factor(5, 100, 15) == pytest.approx(5 / 15)
    assert lr_factor(15, 100, 15) == 1.0
    assert lr_factor(99, 100, 15) == pytest.approx((1 + np.cos(np.pi * 84 / 85)) / 2)
    assert lr_factor(3, 10, 0) == pytest.approx((1 + np.cos(np.pi * 0.3)) / 2)


def test_semantic_matrix_skips_padding_and_combines(tmp_path):
    _, text = _write_caches(tmp_path)
    tc = read_text(text)
    sem = semantic_matrix(tc, ("label",))
    want = tc.pooled("label")
    np.testing.assert_allclose(sem, want, atol=1e-6)
    assert semantic_matrix(tc, ("label", "label")).shape == (16, 12)
    np.testing.assert_allclose(semantic_matrix(tc, ("label", "label"), "mean"), want, atol=1e-6)
    with pytest.raises(SmieError, match="no kind 'motion'"):
        semantic_matrix(tc, ("motion",))


def test_train_method_is_deterministic_on_cpu():
    sem, feats, masked, labels, _, _ = _world()
    ts = TrainSet(torch.from_numpy(feats), torch.from_numpy(masked), torch.from_numpy(labels), torch.from_numpy(sem))
    states = []
    for _ in range(2):
        torch.manual_seed(0)
        m = SMIEEstimator(12, 6, SMIEParams(hidden=(16, 8)))
        losses = train_method(m, ts, FitOptions(epochs=3, batch_size=64, lr=1e-3, warmup=1, seed=3))
        states.append((losses, m.state_dict()))
    assert states[0][0] == states[1][0] and len(states[0][0]) == 3
    assert all(torch.equal(states[0][1][k], states[1][1][k]) for k in states[0][1])


def _protocol(shuffle: bool):
    sem, feats, masked, labels, part, split = _world(seed=1)
    if shuffle:  # semantics unrelated to how the features were made
        sem = np.random.default_rng(99).normal(size=sem.shape).astype(np.float32)
    data = StageData(feats, masked, labels, part, sem, NAMES, tuple(map(str, range(len(labels)))))
    return run_protocol(lambda alpha, lam: SMIEEstimator(12, 6, SMIEParams(hidden=(64, 32), alpha=alpha, lam=lam)),
                        [dict(alpha=0.1, lam=0.5)], data, Split(**{**split, "seen": tuple(split["seen"])}),
                        FitOptions(epochs=25, batch_size=32, lr=2e-3, warmup=2))


def test_learnable_unseen_classes_reach_high_zsl_accuracy_and_shuffled_do_not():
    good = _protocol(shuffle=False).test
    bad = _protocol(shuffle=True).test
    assert good.last["acc"] > 0.8, good.curve
    assert bad.last["acc"] < 0.5, bad.curve  # 4 unseen classes: chance 0.25


def test_repartition_moves_only_classes_the_backbone_never_saw():
    _, _, _, labels, part, split = _world()
    new = Split("x", 16, tuple(range(4, 16)) + (0,), (1, 2, 3), (4,))
    out = repartition(part, labels, split, new, {"protocol": None, "val_fraction": 0.1, "test_fraction": 0.2,
                                                 "seed": 0})
    moved = out[labels == 0]
    assert set(moved.tolist()) == {0, 1, 2} and (moved == 0).sum() > (moved == 2).sum() > 0
    np.testing.assert_array_equal(out[labels != 0], part[labels != 0])


def test_repartition_without_protocol_trains_on_moved_classes_even_when_seen_test_exists():
    """Regression: a cache without a protocol has seen_test samples too (test_fraction); a class moved from
    unseen into seen by a file split must still get seen_train samples, not only seen_test."""
    from smie.pipeline.data.partitions import assign_partitions
    labels = np.repeat(np.arange(8), 20)
    cache = Split("cache", 8, tuple(range(2, 8)), (0, 1), (2,))
    settings = {"protocol": None, "val_fraction": 0.1, "test_fraction": 0.2, "seed": 3}
    part = assign_partitions(labels, None, cache, **settings)
    assert (part == 2).any()
    new = Split("file:x", 8, tuple(range(1, 8)), (0,), (2,))
    out = repartition(part, labels, dataclasses.asdict(cache), new, settings)
    moved = out[labels == 1]
    assert (moved == 0).sum() == 14 and (moved == 1).sum() == 2 and (moved == 2).sum() == 4
    np.testing.assert_array_equal(out[labels != 1], part[labels != 1])


def test_repartition_with_protocol_keeps_official_test_samples_for_testing():
    labels = np.repeat(np.arange(4), 10)
    official_train = np.tile(np.arange(10) < 6, 4)
    part = np.where(np.isin(labels, (0, 1)), np.where(official_train, 4, 3),
                    np.where(official_train, 0, 2)).astype(np.int8)
    cache = dict(id="c", seen=[2, 3], unseen=[0, 1], val_unseen=[3])
    new = Split("file:x", 4, (1, 2, 3), (0,), (3,))
    out = repartition(part, labels, cache, new, {"protocol": "ntu-xsub", "val_fraction": 0.2, "seed": 0})
    moved = out[labels == 1]
    assert (moved[~official_train[:10]] == 2).all()
    assert sorted(moved[official_train[:10]].tolist()) == [0, 0, 0, 0, 0, 1]


def test_run_directory_round_trip(tmp_path):
    torch.manual_seed(0)
    model = SMIEEstimator(12, 6, SMIEParams(hidden=(16, 8), alpha=0.3))
    v, s = torch.randn(6, 12), torch.randn(3, 6)
    scores = model.scores(v, s).detach().numpy()
    out = write_run(tmp_path / "run", method="smie", config={"a": 1}, metrics={"zsl": {"selected": {"acc": 0.5}}},
                    model=model, model_config=model.config, info={"kinds": ["label"], "split": {"id": "t"}},
                    test_scores=scores, test_targets=np.array([0, 1, 2, 0, 1, 2]), test_class_ids=[4, 7, 9],
                    class_names=NAMES, test_sample_ids=[f"s{i}" for i in range(6)])
    for name in ("config.json", "metrics.json", "model.pt", "per_class.csv", "confusion.png", "top5.png"):
        assert (out / name).stat().st_size > 0
    back, info = load_run(out)
    assert info["method"] == "smie" and info["kinds"] == ["label"] and info["metrics"]["zsl"]["selected"]["acc"] == 0.5
    assert back.alpha == 0.3
    np.testing.assert_allclose(back.scores(v, s).detach().numpy(), scores, rtol=1e-6)
    assert not list(tmp_path.glob(".run*"))


def test_fit_estimator_end_to_end_on_real_caches(tmp_path):
    visual, text = _write_caches(tmp_path)
    cfg = FitConfig(visual, text, tmp_path / "out", alpha=(0.1, 0.5), lr=2e-3, epochs=6, batch_size=32, warmup=1,
                    gzsl=True, device="cpu", hidden=(32, 16))
    res = fit_estimator(cfg)
    metrics = json.loads((res.out / "metrics.json").read_text())
    assert metrics["split"] == "file:test" and len(metrics["sweep"]) == 2
    assert sum(r["selected"] for r in metrics["sweep"]) == 1
    assert {"selected", "last", "oracle"} <= set(metrics["zsl"]) and "h" in metrics["gzsl"]["stacking"]
    assert metrics["gzsl"]["seen_samples"] == "seen_val"
    assert "selected on val" in res.table
    model, info = load_run(res.out)
    assert info["text_encoder"] == "test-encoder" and info["class_sem"].shape == (16, 6)
    df = report([res.out])
    assert len(df) == 1 and df.loc[0, "method"] == "smie" and df.loc[0, "split"] == "file:test"
    assert df.loc[0, "zsl"] == metrics["zsl"]["selected"]["acc"]
    assert df.loc[0, "h"] == metrics["gzsl"]["stacking"]["h"]
    with pytest.raises(SmieError, match="not a run directory"):
        report([tmp_path])


def test_fit_estimator_refuses_leaky_split_and_mismatched_classes(tmp_path):
    visual, text = _write_caches(tmp_path)
    leak = tmp_path / "leak.json"
    leak.write_text(json.dumps({"unseen": [0, 4], "val_unseen": [5]}))
    with pytest.raises(SmieError, match="trained on them"):
        fit_estimator(FitConfig(visual, text, tmp_path / "o", split=(f"file:{leak}",), epochs=1))
    other = tmp_path / "other"
    other.mkdir()
    _, text2 = _write_caches(other, names=tuple(reversed(NAMES)))
    with pytest.raises(SmieError, match="disagree on the class table"):
        fit_estimator(FitConfig(visual, text2, tmp_path / "o", epochs=1))
    assert not (tmp_path / "o").exists()


def test_several_splits_report_mean_and_std_and_import_no_encoders(tmp_path):
    visual, text = _write_caches(tmp_path)
    specs = []
    for i, unseen in enumerate(([0, 1, 2], [1, 2, 3])):
        f = tmp_path / f"s{i}.json"
        f.write_text(json.dumps({"unseen": unseen, "val_unseen": [4, 5]}))
        specs.append(f"file:{f}")
    script = f"""
import sys
from pathlib import Path
from smie.pipeline.zsl.experiment import FitConfig, fit_estimator
res = fit_estimator(FitConfig(Path({str(visual)!r}), Path({str(text)!r}), Path({str(tmp_path / 'multi')!r}),
                    split={tuple(specs)!r}, epochs=2, lr=1e-3, warmup=0, batch_size=64, temporal=False,
                    device="cpu", hidden=(32, 16)))
print(res.table)
bad = [m for m in sys.modules if m.startswith(("smie.pipeline.visual.backbones", "smie.pipeline.semantic.text_encoder", "sentence_transformers"))]
assert not bad, bad
"""
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "mean ± std over 2 splits" in run.stdout
    summary = json.loads((tmp_path / "multi" / "summary.json").read_text())
    assert len(summary["summary"]["zsl"]["values"]) == 2
    assert len([p for p in (tmp_path / "multi").iterdir() if (p / "metrics.json").exists()]) == 2
    df = report([tmp_path / "multi"])
    assert sorted(df["split"]) == sorted(specs)
    assert df["zsl"].tolist() == summary["summary"]["zsl"]["values"]


@pytest.mark.slow
def test_stage2_cost_bench_runs_both_ways():
    from bench.stage2_cost import run_bench

    r = run_bench(samples=16, test=8, epochs=1, batch_size=8, classes=4, sem_dim=16, views=2)
    assert r["official"] > 0 and r["cached"] > 0 and r["ratio"] == pytest.approx(r["official"] / r["cached"])
