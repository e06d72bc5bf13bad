"""Backbone pretraining on seen classes only: a real run, the no-unseen guarantee, exact resume."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from smie.features.skeletons import SkeletonSet, write_skeletons
from smie.features.store import SmieError
from smie.pipeline.visual.backbones import check_backbone_compatible, load_backbone
from smie.pipeline.data.partitions import SEEN_TRAIN, SEEN_VAL, assign_partitions
from smie.pipeline.data.splits import resolve_split
from smie.pipeline.visual.pretrain import PretrainConfig, _check_allowed, ids_sha256, pretrain_backbone, resume_path

K, PER, T, V, M = 6, 8, 16, 25, 2
SPLIT = "random:2:seed=0"


pytestmark = pytest.mark.usefixtures("one_thread")


def _cache(path, poison_unseen=False, poison_val=False):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(K), PER)
    data = rng.normal(size=(K * PER, 3, T, V, M)).astype(np.float32)
    data[:, 0] += labels[:, None, None, None] * 0.5
    if poison_unseen:
        data[np.isin(labels, resolve_split(SPLIT, K).unseen)] = np.nan
    if poison_val:
        data[np.isin(labels, resolve_split(SPLIT, K).val_unseen)] = np.nan
    sset = SkeletonSet(data=data, labels=labels, lengths=np.full(K * PER, T, np.int32),
                       sample_ids=tuple(f"S{i:03d}A{l:03d}" for i, l in enumerate(labels)),
                       class_names=tuple(f"class {k}" for k in range(K)), layout="ntu-25", dataset="synthetic",
                       meta={})
    write_skeletons(path, sset, {"test": True})
    return sset


def _config(tmp, name, **kw):
    base = dict(skeletons=tmp / "sk.h5", split=SPLIT, out=tmp / f"{name}.pt", epochs=2, batch_size=8,
                val_fraction=0.25, device="cpu", progress=False)
    return PretrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pretrain")
    sset = _cache(tmp / "sk.h5")
    cfg = _config(tmp, "full")
    return tmp, sset, cfg, pretrain_backbone(cfg)


def test_pretrain_two_epochs_writes_a_seen_only_checkpoint(trained):
    tmp, sset, cfg, result = trained
    assert result.path == cfg.out and result.epochs_run == 2 and 1 <= result.best_epoch <= 2
    assert 0.0 <= result.best_val_acc <= 1.0
    assert not resume_path(cfg.out).exists()
    model, info = load_backbone(cfg.out, "cpu")
    split = resolve_split(SPLIT, K)
    assert info.split == split and info.class_names == sset.class_names and info.num_frames == T
    assert info.partition == {"protocol": None, "val_fraction": 0.25, "test_fraction": 0.2, "seed": 0}
    assert info.val_acc == pytest.approx(result.best_val_acc) and info.epoch == result.best_epoch
    raw = torch.load(cfg.out, weights_only=True)
    assert raw["head_classes"] == list(split.seen)
    assert raw["head_state_dict"]["weight"].shape == (len(split.seen), 256)
    assert raw["provenance"]["config"]["split"] == SPLIT and "torch" in raw["provenance"]["packages"]
    with torch.no_grad():
        assert model(torch.from_numpy(sset.data[:2])).shape == (2, 256)
    check_backbone_compatible(info, split, skeleton_sha256=info.skeleton_sha256)


def test_no_unseen_class_sample_reaches_training_or_selection(tmp_path):
    """Unseen-class samples are NaN: one touching training would turn weights or BN statistics into NaN."""
    sset = _cache(tmp_path / "sk.h5", poison_unseen=True)
    cfg = _config(tmp_path, "poisoned", epochs=1)
    pretrain_backbone(cfg)
    raw = torch.load(cfg.out, weights_only=True)
    assert all(torch.isfinite(v.float()).all() for v in raw["state_dict"].values())
    split = resolve_split(SPLIT, K)
    part = assign_partitions(sset.labels, sset.meta, split, None, 0.25, 0.2, 0)
    train_ids = [sset.sample_ids[i] for i in np.flatnonzero(part == SEEN_TRAIN)]
    val_ids = [sset.sample_ids[i] for i in np.flatnonzero(part == SEEN_VAL)]
    assert not {int(s[-3:]) for s in train_ids + val_ids} & set(split.unseen)
    prov = raw["provenance"]
    assert prov["served_train_ids_sha256"] == prov["train_ids_sha256"] == ids_sha256(train_ids)
    assert prov["served_val_ids_sha256"] == prov["val_ids_sha256"] == ids_sha256(val_ids)
    unseen_row = int(np.flatnonzero(np.isin(sset.labels, split.unseen))[0])
    with pytest.raises(SmieError, match="unseen classes"):
        _check_allowed(sset.labels, np.array([0, unseen_row]), split, "training", False)


def test_validation_backbone_never_sees_val_unseen_or_unseen_samples(tmp_path):
    """The validation backbone trains on seen minus val_unseen: samples of both other groups are NaN here, so
    one reaching training, BatchNorm or selection would poison the weights; the checkpoint says its role."""
    sset = _cache(tmp_path / "sk.h5", poison_unseen=True, poison_val=True)
    cfg = _config(tmp_path, "val", epochs=1, validation=True)
    pretrain_backbone(cfg)
    raw = torch.load(cfg.out, weights_only=True)
    assert all(torch.isfinite(v.float()).all() for v in raw["state_dict"].values())
    split = resolve_split(SPLIT, K)
    allowed = [c for c in split.seen if c not in split.val_unseen]
    assert raw["role"] == "validation" and raw["head_classes"] == allowed
    _, info = load_backbone(cfg.out)
    assert info.role == "validation" and info.trained_classes == tuple(allowed)
    part = assign_partitions(sset.labels, sset.meta, split, None, 0.25, 0.2, 0)
    own = np.isin(sset.labels, allowed)
    train_ids = [sset.sample_ids[i] for i in np.flatnonzero((part == SEEN_TRAIN) & own)]
    assert raw["provenance"]["served_train_ids_sha256"] == ids_sha256(train_ids)
    val_row = int(np.flatnonzero(np.isin(sset.labels, split.val_unseen))[0])
    _check_allowed(sset.labels, np.array([0, val_row]), split, "training", False)
    with pytest.raises(SmieError, match="validation \\(val_unseen\\) classes"):
        _check_allowed(sset.labels, np.array([0, val_row]), split, "training", True)
    _cache(tmp_path / "sk.h5")
    main = _config(tmp_path, "main", epochs=1)
    pretrain_backbone(main)
    with pytest.raises(SmieError, match="refusing --init"):
        pretrain_backbone(_config(tmp_path, "val2", epochs=1, validation=True, init=main.out))


class Interrupt(Exception):
    pass


def test_resume_after_interruption_matches_uninterrupted_run(trained):
    tmp, _, full_cfg, full = trained
    cfg = dataclasses.replace(full_cfg, out=tmp / "resumed.pt")

    def stop_after_first(epochs_done, stats):
        if epochs_done == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        pretrain_backbone(cfg, on_epoch=stop_after_first)
    assert resume_path(cfg.out).exists()
    with pytest.raises(SmieError, match="other settings \\(lr\\)"):
        pretrain_backbone(dataclasses.replace(cfg, lr=1e-3))
    result = pretrain_backbone(cfg)
    assert (result.resumed_from, result.epochs_run) == (1, 1)
    assert (result.best_val_acc, result.best_epoch) == (full.best_val_acc, full.best_epoch)
    assert len(full.history) == 2 and result.history == full.history  # epoch-2 loss equal to the last bit
    a, b = torch.load(full_cfg.out, weights_only=True), torch.load(cfg.out, weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    assert a["provenance"]["history"] == b["provenance"]["history"]


def test_unknown_split_and_empty_validation_are_user_errors(trained):
    tmp, _, cfg, _ = trained
    with pytest.raises(SmieError, match="unknown split"):
        pretrain_backbone(dataclasses.replace(cfg, split="nonsense", out=tmp / "x.pt"))
    with pytest.raises(SmieError, match="validation samples"):
        pretrain_backbone(dataclasses.replace(cfg, val_fraction=0.0, out=tmp / "y.pt"))


def test_init_from_an_smie_checkpoint_is_checked_against_the_split(trained):
    """A backbone trained on split seed=0 saw class 2, which is unseen in split seed=1: refused."""
    tmp, _, cfg, _ = trained
    with pytest.raises(SmieError, match=r"full\.pt: refusing --init: .*unseen in split random:2:seed=1"):
        pretrain_backbone(dataclasses.replace(cfg, split="random:2:seed=1", init=cfg.out, out=tmp / "leak.pt"))
    assert not (tmp / "leak.pt").exists()
    again = dataclasses.replace(cfg, init=cfg.out, out=tmp / "again.pt", epochs=1)
    pretrain_backbone(again)
    record = torch.load(again.out, weights_only=True)["provenance"]["init"]
    assert record["path"] == str(cfg.out) and record["verified"] is True
    assert len(record["sha256"]) == 64 and record["sha256"] == load_backbone(cfg.out)[1].sha256


def test_foreign_init_weights_warn_and_are_recorded_unverified(trained):
    tmp, _, cfg, _ = trained
    foreign = tmp / "foreign.pt"
    torch.save({"module." + k: v for k, v in load_backbone(cfg.out)[0].state_dict().items()}, foreign)
    run = dataclasses.replace(cfg, init=foreign, out=tmp / "foreign-init.pt", epochs=1)
    with pytest.warns(UserWarning, match="foreign --init weights; smie cannot verify"):
        pretrain_backbone(run)
    record = torch.load(run.out, weights_only=True)["provenance"]["init"]
    assert record["path"] == str(foreign) and record["verified"] is False
    chained = dataclasses.replace(cfg, init=run.out, out=tmp / "chained.pt", epochs=1)
    with pytest.warns(UserWarning, match="itself initialised from unverified weights"):
        pretrain_backbone(chained)
    assert torch.load(chained.out, weights_only=True)["provenance"]["init"]["verified"] is False
