"""`extract_visual` end to end on a tiny seeded skeleton cache with a real ST-GCN checkpoint file."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from smie.features.store import CacheError, SmieError, file_sha256
from smie.features.visual import VisualWriter, join_shards, partial_path, read_visual
from smie.pipeline.visual.backbones import load_backbone
from smie.pipeline.visual.extract import ExtractConfig, extract_visual
from smie.pipeline.visual.keyframes import masked_views
from tests.conftest import TINY_C as C, TINY_D as D, TINY_DROP as DROP, TINY_KEY as KEY, TINY_M as M, TINY_N as N
from tests.conftest import TINY_T as T, TINY_V as V

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, one_thread, tiny_skeletons, tiny_checkpoint):
    d = tmp_path_factory.mktemp("extract")
    sset = tiny_skeletons(d / "skel.h5")
    split, part = tiny_checkpoint(d / "bb.pt", d / "skel.h5", sset)
    cfg = ExtractConfig(skeletons=d / "skel.h5", backbone=d / "bb.pt", out=d / "ref.h5", views=3, keyframes=KEY,
                        random_drop=DROP, batch_size=5, chunk_size=8, device="cpu", seed=1)
    return d, sset, split, part, cfg, read_visual(extract_visual(cfg))


def test_cache_is_consistent_with_backbone_and_partitions(setup):
    d, sset, split, part, cfg, ref = setup
    assert ref.features.shape == (N, D) and ref.masked.shape == (N, 3, D)
    assert ref.sample_ids == sset.sample_ids and ref.class_names == sset.class_names
    np.testing.assert_array_equal(ref.labels, sset.labels)
    np.testing.assert_array_equal(ref.partition, part)
    assert ref.split["unseen"] == list(split.unseen) and ref.masking == {
        "variant": "official", "k": KEY, "drop": DROP, "views": 3, "seed": 1}
    assert ref.skeleton_sha256 == file_sha256(cfg.skeletons) and ref.backbone_sha256 == file_sha256(cfg.backbone)
    module, _ = load_backbone(cfg.backbone, "cpu")
    x = torch.from_numpy(sset.data[3:6])
    with torch.no_grad():
        full = module(x).numpy()
        views = masked_views(x, "official", KEY, DROP, 3, 1, np.arange(3, 6))
        masked = module(views.reshape(9, C, T - KEY - DROP, V, M)).reshape(3, 3, D).numpy()
    np.testing.assert_allclose(ref.features[3:6], full, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ref.masked[3:6], masked, rtol=1e-4, atol=1e-5)


def test_masked_views_differ_from_full_and_each_other(setup):
    ref = setup[-1]
    gap = np.abs(ref.masked - ref.features[:, None]).max(axis=2)
    assert (gap > 1e-4).all()
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert (np.abs(ref.masked[:, a] - ref.masked[:, b]).max(axis=1) > 1e-5).all()


def test_killed_run_resumes_to_same_arrays(setup, monkeypatch):
    d, sset, split, part, cfg, ref = setup
    cfg = dataclasses.replace(cfg, out=d / "killed.h5")
    real_write, starts = VisualWriter.write, []

    class Killed(Exception):
        pass

    def write_then_die(self, start, features, masked):
        starts.append(start)
        if len(starts) == 2:
            raise Killed("injected fault after the first chunk")
        real_write(self, start, features, masked)

    monkeypatch.setattr(VisualWriter, "write", write_then_die)
    with pytest.raises(Killed):
        extract_visual(cfg)
    assert not cfg.out.exists() and partial_path(cfg.out).exists()
    with pytest.raises(CacheError, match="unfinished"):
        read_visual(partial_path(cfg.out))
    starts.clear()
    got = read_visual(extract_visual(cfg))
    assert starts[0] == 8 and not partial_path(cfg.out).exists()
    np.testing.assert_array_equal(got.features, ref.features)
    np.testing.assert_array_equal(got.masked, ref.masked)


def test_shard_join_equals_single_process(setup):
    d, sset, split, part, cfg, ref = setup
    shards = [extract_visual(dataclasses.replace(cfg, out=d / "sh.h5", shard=(r, 3))) for r in range(3)]
    assert [p.name for p in shards] == ["sh.rank0.h5", "sh.rank1.h5", "sh.rank2.h5"]
    got = read_visual(join_shards(shards, d / "joined.h5"))
    assert got.sample_ids == ref.sample_ids and got.shard is None
    np.testing.assert_array_equal(got.partition, ref.partition)
    np.testing.assert_allclose(got.features, ref.features, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.masked, ref.masked, rtol=1e-5, atol=1e-6)


def test_paper_variant_stores_one_view(setup):
    d, sset, split, part, cfg, ref = setup
    got = read_visual(extract_visual(dataclasses.replace(cfg, out=d / "paper.h5", masking="paper", workers=1)))
    assert got.masked.shape == (N, 1, D) and got.masking["drop"] == 0 and got.masking["views"] == 1
    np.testing.assert_allclose(got.features, ref.features, rtol=1e-5, atol=1e-6)


def test_refuses_incompatible_backbone_and_settings(setup, tiny_skeletons, tiny_checkpoint):
    d, sset, split, part, cfg, ref = setup
    tiny_skeletons(d / "other.h5", seed=5)
    with pytest.raises(SmieError, match="skeleton cache sha256"):
        extract_visual(dataclasses.replace(cfg, skeletons=d / "other.h5", out=d / "x.h5"))
    assert not partial_path(d / "x.h5").exists(), "rows of an unverified skeleton cache must not stay behind"
    tiny_checkpoint(d / "leaky.pt", cfg.skeletons, sset, train_sha="0" * 64)
    with pytest.raises(SmieError, match="train_ids_sha256"):
        extract_visual(dataclasses.replace(cfg, backbone=d / "leaky.pt", out=d / "x.h5"))
    with pytest.raises(SmieError, match="cannot mask"):
        extract_visual(dataclasses.replace(cfg, keyframes=12, random_drop=12, out=d / "x.h5"))
    assert not (d / "x.h5").exists()
