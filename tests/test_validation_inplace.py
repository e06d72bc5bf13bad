"""The validation view is written in place (issue #25): extract-visual embeds each batch with both backbones in
one pass into one partial file (each checkpoint loaded once, no sibling cache, no copy of the cache), resumes
and shards like the main rows; attach_validation adds a view to a finished cache without copying it."""
from __future__ import annotations

import dataclasses
import os
import shutil

import h5py
import numpy as np
import pytest
import torch

from smie.features.store import file_sha256
from smie.features.visual import attach_validation, join_shards, partial_path, read_visual
from smie.pipeline.visual import backbones
from smie.pipeline.visual.backbones import build_backbone, save_checkpoint
from smie.pipeline.visual.extract import ExtractConfig, extract_visual, shard_path
from tests.conftest import TINY_D as D, TINY_DROP as DROP, TINY_KEY as KEY, TINY_PARTITION as PARTITION, TINY_T as T

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pair(tmp_path_factory, one_thread, tiny_skeletons, tiny_checkpoint):
    """A skeleton cache, its main backbone and a validation backbone (trained classes = seen minus val_unseen)."""
    d = tmp_path_factory.mktemp("inplace")
    sset = tiny_skeletons(d / "skel.h5")
    split, _ = tiny_checkpoint(d / "main.pt", d / "skel.h5", sset)
    torch.manual_seed(1)
    model = build_backbone("stgcn", "kinect-v1-20", "small", hidden_channels=8, hidden_dim=D)
    trained = [c for c in split.seen if c not in split.val_unseen]
    save_checkpoint(d / "val.pt", model, split=split, partition=PARTITION, class_names=sset.class_names,
                    num_frames=T, skeleton_sha256=file_sha256(d / "skel.h5"), provenance={}, role="validation",
                    head=torch.nn.Linear(D, len(trained)), head_classes=trained)
    cfg = ExtractConfig(skeletons=d / "skel.h5", backbone=d / "main.pt", out=d / "both.h5", views=2, keyframes=KEY,
                        random_drop=DROP, batch_size=5, chunk_size=8, device="cpu", seed=1,
                        validation_backbone=d / "val.pt")
    main_only = read_visual(extract_visual(dataclasses.replace(cfg, out=d / "main.h5", validation_backbone=None)))
    val_only = read_visual(extract_visual(dataclasses.replace(cfg, out=d / "val.h5", backbone=d / "val.pt",
                                                              validation_backbone=None)))
    return d, cfg, main_only, val_only, trained


def test_one_pass_loads_each_backbone_once_and_copies_nothing(pair, monkeypatch):
    d, cfg, main_only, val_only, trained = pair
    loads, real_load = [], backbones.load_backbone
    monkeypatch.setattr(backbones, "load_backbone", lambda path, *a, **k: loads.append(path) or real_load(path, *a, **k))
    reads, real_read = [], torch.load
    monkeypatch.setattr(torch, "load", lambda f, *a, **k: reads.append(str(f)) or real_read(f, *a, **k))

    def no_copy(*args, **kwargs):
        raise AssertionError(f"the cache was copied: {args}")

    monkeypatch.setattr(shutil, "copyfile", no_copy)
    monkeypatch.setattr(shutil, "copy", no_copy)
    vc = read_visual(extract_visual(cfg))
    assert sorted(map(str, loads)) == sorted([str(d / "main.pt"), str(d / "val.pt")]), "each checkpoint loaded once"
    assert sorted(reads) == sorted([str(d / "main.pt"), str(d / "val.pt")]), "each checkpoint file read once"
    assert sorted(p.name for p in d.iterdir() if p.name.startswith(".")) == [], "no sibling or partial file left"
    np.testing.assert_array_equal(vc.features, main_only.features)
    np.testing.assert_array_equal(vc.masked, main_only.masked)
    np.testing.assert_array_equal(vc.validation.features, val_only.features)
    np.testing.assert_array_equal(vc.validation.masked, val_only.masked)
    assert vc.validation.backbone_sha256 == file_sha256(d / "val.pt") and vc.validation.trained_classes == tuple(trained)
    assert vc.validation.head.classes == tuple(trained)
    assert vc.provenance["inputs"]["validation_backbone"]["sha256"] == file_sha256(d / "val.pt")
    with h5py.File(cfg.out) as f:
        assert int(f.attrs["schema-version"]) == 1, "a cache with nothing new stays readable by older smie"


def test_an_interrupted_run_resumes_both_views(pair, monkeypatch, tmp_path):
    d, cfg, main_only, val_only, _ = pair
    from smie.features.visual import VisualWriter

    real_write, calls = VisualWriter.write, []

    def die_on_second(self, start, features, masked, **kw):
        calls.append(start)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_write(self, start, features, masked, **kw)

    run = dataclasses.replace(cfg, out=tmp_path / "r.h5")
    monkeypatch.setattr(VisualWriter, "write", die_on_second)
    with pytest.raises(KeyboardInterrupt):
        extract_visual(run)
    assert partial_path(run.out).exists() and not run.out.exists()
    calls.clear()
    vc = read_visual(extract_visual(run))
    assert calls[0] == 8, "resumed after the first chunk"
    np.testing.assert_array_equal(vc.validation.features, val_only.features)
    np.testing.assert_array_equal(vc.features, main_only.features)


def test_shards_join_with_their_validation_view(pair, tmp_path):
    d, cfg, main_only, val_only, _ = pair
    out = tmp_path / "sharded.h5"
    for rank in range(2):
        extract_visual(dataclasses.replace(cfg, out=out, shard=(rank, 2)))
    vc = read_visual(join_shards([shard_path(out, r) for r in range(2)], out))
    np.testing.assert_array_equal(vc.validation.features, val_only.features)
    np.testing.assert_array_equal(vc.validation.masked, val_only.masked)
    np.testing.assert_array_equal(vc.features, main_only.features)


def test_attach_validation_writes_in_place(pair, tmp_path, monkeypatch):
    d, cfg, main_only, val_only, trained = pair
    path = tmp_path / "plain.h5"
    shutil.copyfile(d / "main.h5", path)
    inode = os.stat(path).st_ino
    monkeypatch.setattr(shutil, "copyfile", lambda *a, **k: pytest.fail("attach_validation copied the cache"))
    with h5py.File(path, "a") as f:  # a staging group left by an interrupted attach
        f.create_group(".validation-partial").create_dataset("features", data=np.zeros(3))
    attach_validation(path, val_only, trained, {"note": "test"})
    assert os.stat(path).st_ino == inode, "the cache file was replaced, not written in place"
    vc = read_visual(path)
    np.testing.assert_array_equal(vc.validation.features, val_only.features)
    np.testing.assert_array_equal(vc.features, main_only.features)
    with h5py.File(path) as f:
        assert ".validation-partial" not in f
    attach_validation(path, val_only, trained, {"note": "again"})  # replacing a view works the same way
    assert read_visual(path).validation.provenance == {"note": "again"}
