"""MSF against its official code: constant lr, batch 64, cycle-aligned training and evaluation, NTU-120
constants, the backbone head in the visual cache and MSF's gate fitted on validation rows only."""
from __future__ import annotations

import dataclasses
import json

import h5py
import numpy as np
import pytest
import torch

from smie.features.store import CacheError, SmieError, file_sha256
from smie.features.text import TextCache, TextKind, write_text
from smie.features.visual import BackboneHead, attach_validation, read_visual, read_visual_header, write_visual
from smie.pipeline.data.splits import Split, resolve_split
from smie.pipeline.visual.backbones import build_backbone, load_backbone, save_checkpoint
from smie.pipeline.visual.extract import ExtractConfig, extract_visual
from smie.pipeline.zsl import protocol
from smie.pipeline.zsl.baselines.msf import MSF, MSFParams
from smie.pipeline.zsl.baselines.run import BaselineConfig, fit_baseline
from smie.pipeline.zsl.baselines.vae import cycle_weights
from smie.pipeline.zsl.evaluate import fit_logistic, gate_features, logistic_proba, msf_gate_predict
from smie.pipeline.zsl.fit import FitOptions, lr_factor, train_method
from smie.pipeline.zsl.method import MethodContext, TrainSet
from smie.pipeline.zsl.protocol import StageData, run_protocol, validate
from smie.pipeline.zsl.spec import method_spec, plan_units
from tests.conftest import TINY_PARTITION as PARTITION, TINY_T as T

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = ("latent=4", "seen_per_class=5", "unseen_per_class=10", "cls_steps=5", "cycles=2")


class Probe(MSF):
    """MSF that records its optimiser, the size of every batch and the training step at every scoring."""

    def __init__(self, *args):
        super().__init__(*args)
        self.batches, self.scored_at = [], []

    def optimizer(self, lr):
        self.opt = torch.optim.Adam(self.parameters(), lr=lr)
        return self.opt

    def loss(self, batch):
        self.batches.append(len(batch.labels))
        return super().loss(batch)

    def scores(self, visual, class_sem):
        self.scored_at.append(int(self.step))
        return super().scores(visual, class_sem)


def probe(context=None, **kw) -> Probe:
    return Probe(16, 8, MSFParams(**{**dict(latent=8, cycle_length=20, cycles=3, seen_per_class=20,
                                           unseen_per_class=50, cls_steps=50, cls_lr=1e-2), **kw}), context)


def stage(world, seed=0):
    """30 learnable classes (tests.test_baselines.world): 6 unseen, 4 validation classes, seen_val and seen_test
    rows, and a real backbone head: the nearest-class-mean classifier of the seen classes' training rows."""
    sem, feats, _, labels = world(seed, D=16, E=8, per=20)
    feats, labels = feats.numpy(), labels.numpy()
    unseen, val = (0, 7, 11, 14, 21, 28), (3, 9, 17, 25)
    seen = tuple(k for k in range(30) if k not in unseen)
    i = np.arange(len(labels)) % 5
    part = np.where(np.isin(labels, unseen), protocol.UNSEEN_TEST,
                    np.select([i == 0, i == 1], [protocol.SEEN_VAL, protocol.SEEN_TEST], protocol.SEEN_TRAIN))
    data = StageData(feats, None, labels, part.astype(np.int8), sem.numpy(), tuple(map(str, range(30))),
                     tuple(map(str, range(len(labels)))))
    means = np.stack([feats[(labels == c) & (part == protocol.SEEN_TRAIN)].mean(0) for c in seen])
    head = BackboneHead(means.astype(np.float32), (-0.5 * (means ** 2).sum(1)).astype(np.float32), seen)
    return data, Split("test", 30, seen, unseen, val), head


OPTS = FitOptions(epochs=3, batch_size=32, lr=3e-3, warmup=0, seed=0, device="cpu", schedule="constant",
                  cycle_steps=20, selectable="any")


def test_constant_schedule_keeps_the_learning_rate_fixed(world):
    assert [lr_factor(e, 10, 0, "constant") for e in range(10)] == [1.0] * 10
    assert [lr_factor(e, 10, 2, "constant") for e in range(3)] == [0.0, 0.5, 1.0]
    assert lr_factor(9, 10, 0) < 0.05 and lr_factor(9, 10, 0, "cosine") == lr_factor(9, 10, 0)
    sem, feats, _, labels = world(0, D=16, E=8, per=10)
    train = TrainSet(feats, None, labels, sem)
    for schedule, expect in (("constant", [1e-3] * 4), ("cosine", [1e-3 * lr_factor(e, 4, 0) for e in range(4)])):
        model, seen = probe(), []
        train_method(model, train, dataclasses.replace(OPTS, epochs=4, lr=1e-3, schedule=schedule),
                     lambda _e, m: seen.append(m.opt.param_groups[0]["lr"]))
        assert seen == pytest.approx(expect)
    with pytest.raises(SmieError, match="schedule"):
        train_method(probe(), train, dataclasses.replace(OPTS, schedule="linear"))


def test_step_epochs_train_exactly_their_steps_in_full_batches(world):
    sem, feats, _, labels = world(0, D=16, E=8, per=10)
    model = probe(cycle_length=7)
    losses = train_method(model, TrainSet(feats[:50], None, labels[:50], sem),
                          dataclasses.replace(OPTS, batch_size=16, cycle_steps=7))
    assert len(losses) == 3 and int(model.step) == 21 and model.batches == [16] * 21


def test_cycle_methods_are_evaluated_only_at_cycle_ends_and_any_cycle_may_win(world):
    data, split, _ = stage(world)
    models = []
    val = validate(lambda **_: models.append(probe()) or models[-1], {}, data, split, OPTS, gzsl=False)
    assert len(val.curve) == 3 and not np.isnan(val.curve).any()
    assert models[0].scored_at == [20, 40, 60] and int(models[0].step) == 60
    assert OPTS.first_eligible() == 0
    assert dataclasses.replace(OPTS, cycle_steps=None, selectable="after-warmup").first_eligible() == 1


def test_msf_runs_with_batch_64_constant_lr_and_whole_cycles_by_default(tmp_path, stage_caches):
    visual, text = stage_caches(tmp_path, kinds=("label", "action", "motion"))
    res = fit_baseline(BaselineConfig("msf", visual, text, tmp_path / "msf", device="cpu", options=TINY))
    used = json.loads((res.out / "config.json").read_text())
    metrics = json.loads((res.out / "metrics.json").read_text())
    n_train = 12 * 16  # 12 seen classes x 16 seen_train rows of 20 (every 5th row is seen_val)
    epochs, extra = plan_units(method_spec("msf"), n_train, 64, None, {"cycles": 2})
    assert (used["batch_size_used"], used["schedule_used"]) == (64, "constant")
    assert used["model_options"]["cycle_length"] == extra["cycle_length"] and used["epochs_used"] == epochs
    assert used["steps_used"] == 2 * extra["cycle_length"]
    assert len(metrics["curves"]["val_acc"]) == 2 and not np.isnan(metrics["curves"]["val_acc"]).any()
    other = fit_baseline(BaselineConfig("devise", visual, text, tmp_path / "devise", epochs=1, device="cpu"))
    assert json.loads((other.out / "config.json").read_text())["batch_size_used"] == 128
    given = fit_baseline(BaselineConfig("msf", visual, text, tmp_path / "b32", batch_size=32, schedule="cosine",
                                        device="cpu", options=TINY))
    used = json.loads((given.out / "config.json").read_text())
    assert (used["batch_size_used"], used["schedule_used"]) == (32, "cosine")


def test_ntu120_constants_unscaled_and_automatic_on_a_120_class_table(tmp_path, stage_caches):
    assert cycle_weights(1500, 1900)["cross"] == 0.0 and cycle_weights(1501, 1900)["cross"] == 1.0
    assert cycle_weights(1899, 1900)["kl_visual"] == pytest.approx(0.1 * 899 / 3000)
    assert cycle_weights(2 * 1900 + 1600, 1900)["kl_text"] == pytest.approx(0.1 * 100 / 3000)
    assert cycle_weights(1401, 1700)["cross"] == 1.0 and cycle_weights(60, 120) == cycle_weights(60, 120, 1700)
    assert cycle_weights(394, 500, 1900)["cross"] == 0.0 and cycle_weights(395, 500, 1900)["cross"] == 1.0
    _, extra = plan_units(method_spec("msf"), 300, 64, None, {}, {"cycle_length": 1900})
    assert extra == dict(cycle_length=200 * 5 // 10, cycles=10, cycle_base=1900)

    K, per = 120, 3
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(K), per)
    unseen = list(range(0, K, 12))
    seen = [k for k in range(K) if k not in unseen]
    part = np.where(np.isin(labels, unseen), 3, np.where(np.arange(len(labels)) % per == 0, 1, 0)).astype(np.int8)
    names = tuple(f"action {k}" for k in range(K))
    feats = rng.normal(size=(len(labels), 12)).astype(np.float32)
    big = dataclasses.replace(read_visual(stage_caches(tmp_path)[0]), features=feats,
                              masked=np.repeat(feats[:, None], 2, axis=1), labels=labels, partition=part,
                              class_names=names, sample_ids=tuple(f"s{i}" for i in range(len(labels))),
                              split=dict(id="file:ntu120", num_classes=K, seen=seen, unseen=unseen,
                                         val_unseen=seen[:5]))
    write_visual(tmp_path / "v120.h5", big, {})
    emb = rng.normal(size=(K, 1, 6)).astype(np.float32)
    kind = TextKind(emb / np.linalg.norm(emb, axis=-1, keepdims=True), tuple((n,) for n in names), np.ones(K, np.int32))
    write_text(tmp_path / "t120.h5", TextCache(names, np.arange(K), dict.fromkeys(("label", "action", "motion"), kind),
                                               "test", "test", "0" * 64, 6), {})
    res = fit_baseline(BaselineConfig("msf", tmp_path / "v120.h5", tmp_path / "t120.h5", tmp_path / "r", epochs=0,
                                      device="cpu", options=("cls_steps=2", "unseen_per_class=2", "seen_per_class=2")))
    options = json.loads((res.out / "config.json").read_text())["model_options"]
    assert options["latent"] == 200 and options["cycle_base"] == 1900


def test_backbone_head_round_trips_through_the_visual_cache(tmp_path, stage_caches):
    vc = read_visual(stage_caches(tmp_path)[0])
    rng = np.random.default_rng(0)
    seen = tuple(vc.split["seen"])
    head = BackboneHead(rng.normal(size=(len(seen), 12)).astype(np.float32), rng.normal(size=len(seen)).astype(
        np.float32), seen)
    path = write_visual(tmp_path / "head.h5", dataclasses.replace(vc, head=head), {})
    back = read_visual(path)
    np.testing.assert_array_equal(back.head.weight, head.weight)
    np.testing.assert_array_equal(back.head.bias, head.bias)
    assert back.head.classes == seen and read_visual_header(path).head.classes == seen
    np.testing.assert_allclose(back.head.logits(vc.features[:3]), vc.features[:3] @ head.weight.T + head.bias,
                               rtol=1e-5)
    assert read_visual(tmp_path / "visual.h5").head is None

    train = tuple(c for c in seen if c not in vc.split["val_unseen"])
    view_head = BackboneHead(head.weight[:len(train)], head.bias[:len(train)], train)
    attach_validation(path, dataclasses.replace(back, backbone_sha256="12" * 32, head=view_head), train, {})
    assert read_visual(path).validation.head.classes == train
    with pytest.raises(CacheError, match="head covers other classes"):
        attach_validation(path, dataclasses.replace(back, head=view_head), train[1:], {})
    with h5py.File(path, "a") as f:
        del f["head/bias"]
        f["head"].create_dataset("bias", data=np.zeros(len(seen) + 1, np.float32))
    with pytest.raises(CacheError, match="head"):
        read_visual(path)


def test_extract_visual_stores_the_checkpoints_head(tmp_path, tiny_skeletons):
    sset = tiny_skeletons(tmp_path / "skel.h5")
    torch.manual_seed(0)
    model = build_backbone("stgcn", "kinect-v1-20", "small", hidden_channels=8, hidden_dim=16)
    fc = torch.nn.Linear(16, 3)
    split = resolve_split("random:1:seed=0", 4)
    save_checkpoint(tmp_path / "bb.pt", model, split=split, partition=PARTITION, class_names=sset.class_names,
                    num_frames=T, skeleton_sha256=file_sha256(tmp_path / "skel.h5"), provenance={}, head=fc,
                    head_classes=split.seen)
    out = extract_visual(ExtractConfig(skeletons=tmp_path / "skel.h5", backbone=tmp_path / "bb.pt",
                                       out=tmp_path / "v.h5", views=1, keyframes=6, random_drop=6, batch_size=8,
                                       device="cpu"))
    vc = read_visual(out)
    assert vc.head.classes == tuple(split.seen)
    module, _ = load_backbone(tmp_path / "bb.pt")
    with torch.no_grad():
        expected = fc(module(torch.from_numpy(sset.data[:4]))).numpy()
    np.testing.assert_allclose(vc.head.logits(vc.features[:4]), expected, rtol=1e-4, atol=1e-5)


def test_logistic_gate_is_sklearns_two_class_multinomial_optimum():
    sklearn = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    x = rng.random((200, 6))
    y = (x[:, 0] + 0.3 * rng.normal(size=200) > 0.5).astype(int)
    coef, intercept = fit_logistic(x, y)
    ref = sklearn.LogisticRegression(C=2.0, tol=1e-12, max_iter=10000).fit(x, y)
    np.testing.assert_allclose(coef, ref.coef_[0], rtol=1e-5, atol=1e-6)
    assert intercept == pytest.approx(ref.intercept_[0], abs=1e-6)
    np.testing.assert_allclose(logistic_proba(x, coef, intercept), ref.predict_proba(x)[:, 1], atol=1e-6)


def test_gate_features_and_routing_by_hand():
    pu = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]])
    ps = np.array([[0.6, 0.4], [0.1, 0.9]])
    np.testing.assert_allclose(gate_features(pu, ps, 2), [[0.7, 0.2, 0.6, 0.4], [0.5, 0.3, 0.9, 0.1]])
    gate = dict(coef=[0.0, 0.0, 10.0, 0.0], intercept=-7.0, k=2, threshold=0.5)  # seen iff top seen prob > 0.7
    assert msf_gate_predict(pu, ps, [2, 3, 4], [0, 1], gate).tolist() == [3, 1]


def test_msf_gate_is_fitted_on_validation_rows_only(monkeypatch, world):
    """Instrumented: the gate's experts read no unseen_test row in validation; garbage there changes no choice."""
    data, split, head = stage(world)

    def make(**_):
        return probe(MethodContext(heads={"main": head}), gate="msf")

    touched = []
    real = protocol._gate_rows
    monkeypatch.setattr(protocol, "_gate_rows", lambda m, d, rows, *a: touched.append(rows) or real(m, d, rows, *a))
    val = validate(make, {}, data, split, OPTS, gzsl=True)
    rows = np.concatenate(touched)
    assert len(rows) and not (data.partition[rows] == protocol.UNSEEN_TEST).any()
    gate = val.gates["msf_gate"]
    train = [c for c in split.seen if c not in split.val_unseen]
    n_u = len(protocol._rows(data, split.val_unseen, [protocol.SEEN_TRAIN, protocol.SEEN_VAL]))
    n_s = len(protocol._rows(data, train, [protocol.SEEN_VAL]))
    assert gate["k"] == 4 and len(gate["coef"]) == 8 and gate["n_fit"] == n_u - n_u // 5 + n_s - n_s // 5
    assert val.val_gzsl["msf_gate"]["temperature"] == 2.0 and 0 <= gate["holdout_accuracy"] <= 1
    with pytest.raises(SmieError, match="validation backbone's classifier head"):
        validate(make, {}, data, split, OPTS, gzsl=True, view="validation")

    noisy = data.features.copy()
    test_rows = data.partition == protocol.UNSEEN_TEST
    noisy[test_rows] = np.random.default_rng(1).normal(size=noisy[test_rows].shape) * 100
    a = run_protocol(make, [{}], data, split, OPTS, gzsl=True)
    b = run_protocol(make, [{}], dataclasses.replace(data, features=noisy), split, OPTS, gzsl=True)
    assert a.validation.gates["msf_gate"] == b.validation.gates["msf_gate"] == val.gates["msf_gate"]
    assert a.validation.val_gzsl["msf_gate"] == b.validation.val_gzsl["msf_gate"]
    assert a.test.gzsl["msf_gate"] != b.test.gzsl["msf_gate"]
    assert {"seen", "unseen", "h", "k", "temperature", "threshold"} <= set(a.test.gzsl["msf_gate"])


def test_msf_gate_end_to_end_from_a_cache_with_a_head(tmp_path, stage_caches):
    visual, text = stage_caches(tmp_path, kinds=("label", "action", "motion"))
    cfg = BaselineConfig("msf", visual, text, tmp_path / "run", gzsl=True, device="cpu",
                         options=TINY + ("gate='msf'",))
    with pytest.raises(SmieError, match="classifier head"):
        fit_baseline(cfg)
    with pytest.raises(SmieError, match="--gzsl"):
        fit_baseline(dataclasses.replace(cfg, gzsl=False))
    with pytest.raises(SmieError, match="gate must be"):
        method_spec("msf").build(12, 18, gate="entropy")
    vc = read_visual(visual)
    seen = tuple(vc.split["seen"])
    means = np.stack([vc.features[vc.labels == c].mean(0) for c in seen])
    write_visual(visual, dataclasses.replace(vc, head=BackboneHead(means, -0.5 * (means ** 2).sum(1), seen)), {})
    with pytest.warns(UserWarning, match="optimistic"):
        res = fit_baseline(cfg)
    metrics = json.loads((res.out / "metrics.json").read_text())
    assert {"seen", "unseen", "h"} <= set(metrics["gzsl"]["msf_gate"])
    assert {"coef", "intercept", "holdout_accuracy", "h"} <= set(metrics["selection"]["val_gzsl"]["msf_gate"])
    assert {"stacking", "gate", "uncalibrated"} <= set(metrics["gzsl"])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_msf_gate_uses_the_validation_backbones_head_on_the_validation_view(tmp_path, skeletons_and_text):
    """Real main and validation backbones: both heads reach the cache, and the honest protocol fits the gate."""
    from smie.pipeline.visual.pretrain import PretrainConfig, pretrain_backbone

    SPLIT = "random:2:seed=0"  # the split conftest.write_skeletons_and_text's data is built for
    skeletons, _ = skeletons_and_text(tmp_path)
    base = dict(skeletons=skeletons, split=SPLIT, epochs=1, batch_size=8, val_fraction=0.25, device="cpu",
                progress=False)
    pretrain_backbone(PretrainConfig(out=tmp_path / "main.pt", **base))
    pretrain_backbone(PretrainConfig(out=tmp_path / "val.pt", validation=True, **base))
    out = extract_visual(ExtractConfig(skeletons=skeletons, backbone=tmp_path / "main.pt", out=tmp_path / "v.h5",
                                       views=1, keyframes=3, random_drop=3, batch_size=16, device="cpu",
                                       validation_backbone=tmp_path / "val.pt"))
    vc = read_visual(out)
    assert vc.head.classes == tuple(vc.split["seen"])
    assert set(vc.validation.head.classes) == set(vc.split["seen"]) - set(vc.split["val_unseen"])
    K = len(vc.class_names)
    emb = np.random.default_rng(0).normal(size=(K, 1, 8)).astype(np.float32)
    kind = TextKind(emb / np.linalg.norm(emb, axis=-1, keepdims=True), tuple((n,) for n in vc.class_names),
                    np.ones(K, np.int32))
    write_text(tmp_path / "t.h5", TextCache(vc.class_names, np.arange(K), dict.fromkeys(("label", "action", "motion"),
                                                                                         kind), "test", "test",
                                            "0" * 64, 8), {})
    res = fit_baseline(BaselineConfig("msf", out, tmp_path / "t.h5", tmp_path / "run", gzsl=True, device="cpu",
                                      options=TINY + ("gate='msf'",)))
    metrics = json.loads((res.out / "metrics.json").read_text())
    assert metrics["selection"]["validation_features"] == "validation-backbone"
    assert metrics["selection"]["val_gzsl"]["msf_gate"]["k"] == min(len(vc.split["unseen"]),
                                                                    len(vc.split["val_unseen"]))
    assert {"seen", "unseen", "h"} <= set(metrics["gzsl"]["msf_gate"])
