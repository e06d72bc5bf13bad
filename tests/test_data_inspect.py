"""`smie inspect` on every smie artifact and on foreign files."""
from __future__ import annotations

import dataclasses

import h5py
import numpy as np
import pytest

from smie.features.skeletons import SCHEMA_VERSION, SkeletonSet, write_skeletons
from smie.features.store import CacheError, provenance
from smie.features.text import TextCache, TextKind, write_text
from smie.features.visual import VisualCache, write_visual
from smie.pipeline.data.splits import resolve_split
from smie.pipeline.tools.inspect import inspect_file


def test_inspect_skeleton_cache_lists_everything(tmp_path):
    rng = np.random.default_rng(0)
    names = tuple(f"class {i}" for i in range(40))
    sset = SkeletonSet(rng.normal(size=(6, 3, 8, 20, 2)).astype(np.float32), np.array([0, 1, 2, 3, 39, 39]),
                       np.array([8, 9, 10, 11, 12, 30], np.int32), tuple("abcdef"), names, "kinect-v1-20", "toy",
                       {"subject": np.array([1, 2, 3, 4, 5, 6], np.int32)})
    write_skeletons(tmp_path / "s.h5", sset, provenance({"format": "npz"}, note="made in a test"))
    text = inspect_file(tmp_path / "s.h5")
    assert f"type: smie.skeletons (schema-version {SCHEMA_VERSION})" in text and "layout: kinect-v1-20: 20 joints" in text
    assert "skeletons: (6, 3, 8, 20, 2) float32" in text and "meta/subject: (6,) int32" in text
    assert "class names (40): class 0, class 1" in text and "(28 more)" in text and "class 39" in text
    assert "samples: 6; classes present: 5" in text and "min 8, median 10, max 30" in text
    assert '"note": "made in a test"' in text and '"format": "npz"' in text


def test_inspect_visual_and_text_caches(tmp_path):
    split = resolve_split("random:1:seed=0", 3)
    cache = VisualCache(np.ones((4, 5), np.float32), np.ones((4, 2, 5), np.float32), np.array([0, 1, 2, 0]),
                        tuple("abcd"), np.array([0, 1, 3, 4], np.int8), ("x", "y", "z"),
                        dataclasses.asdict(split), {"variant": "random", "k": 2}, {"protocol": None}, "f" * 64,
                        "stgcn", {"layout": "ntu-25"}, "e" * 64)
    write_visual(tmp_path / "v.h5", cache, provenance({"step": "extract"}))
    text = inspect_file(tmp_path / "v.h5")
    assert "type: smie.visual" in text and "features: (4, 5) float32" in text
    assert "partition: seen_train: 1, seen_val: 1, unseen_test: 1, unused: 1" in text
    assert split.id in text
    emb = np.zeros((3, 1, 4), np.float32)
    emb[:, 0, 0] = 1
    tc = TextCache(("x", "y", "z"), np.arange(3), {"label": TextKind(emb, (("x",), ("y",), ("z",)), np.ones(3, np.int32))},
                   "test-encoder", "test", "0" * 64, 4)
    write_text(tmp_path / "t.h5", tc, provenance({"step": "embed"}))
    text = inspect_file(tmp_path / "t.h5")
    assert "type: smie.text" in text and "label/embeddings: (3, 1, 4) float32" in text and "encoder: test-encoder" in text


def test_inspect_backbone_checkpoint(tmp_path):
    from smie.pipeline.visual.backbones import build_backbone, save_checkpoint

    model = build_backbone("stgcn", "kinect-v1-20", "small")
    split = resolve_split("random:2:seed=0", 20)
    save_checkpoint(tmp_path / "b.pt", model, split=split, partition={"protocol": None, "val_fraction": 0.1, "seed": 0},
                    class_names=tuple(f"c{i}" for i in range(20)), num_frames=50, skeleton_sha256="a" * 64,
                    provenance=provenance({"step": "pretrain"}), epoch=3, val_acc=0.625)
    text = inspect_file(tmp_path / "b.pt")
    assert "type: smie.backbone" in text and "arch: stgcn" in text and "val acc: 0.625" in text
    assert "split: random:2:seed=0 (18 seen / 2 unseen" in text and '"step": "pretrain"' in text


def test_inspect_refuses_foreign_files(tmp_path):
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(CacheError, match=r"plain\.h5: an HDF5 file but not an smie cache"):
        inspect_file(tmp_path / "plain.h5")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CacheError, match=r"notes\.txt: neither an smie HDF5 cache nor an smie backbone"):
        inspect_file(tmp_path / "notes.txt")
    import torch

    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CacheError, match=r"other\.pt: a torch file but not an smie backbone"):
        inspect_file(tmp_path / "other.pt")
    with pytest.raises(CacheError, match="no such file"):
        inspect_file(tmp_path / "missing.h5")
