"""The visual cache file: round trip, resumable partial files, shard joins, refusals."""
from __future__ import annotations

import dataclasses

import h5py
import numpy as np
import pytest

from smie.features.store import CacheError
from smie.features.visual import (
    VisualCache,
    VisualWriter,
    join_shards,
    partial_path,
    read_visual,
    read_visual_header,
    write_visual,
)


def _cache(n: int = 10, d: int = 6, w: int = 3, seed: int = 0) -> VisualCache:
    rng = np.random.default_rng(seed)
    return VisualCache(
        features=rng.standard_normal((n, d)).astype(np.float32),
        masked=rng.standard_normal((n, w, d)).astype(np.float32),
        labels=rng.integers(0, 4, n).astype(np.int64),
        sample_ids=tuple(f"s{i:03d}" for i in range(n)),
        partition=rng.integers(0, 5, n).astype(np.int8),
        class_names=("wave", "jump", "sit", "kick"),
        split={"id": "random:1:seed=0", "num_classes": 4, "seen": [0, 1, 2], "unseen": [3], "val_unseen": [2]},
        masking={"variant": "official", "k": 15, "drop": 15, "views": w, "seed": 0},
        partition_settings={"protocol": None, "val_fraction": 0.1, "seed": 0},
        backbone_sha256="ab" * 32,
        backbone_arch="stgcn",
        backbone_config={"hidden": [8, 16]},
        skeleton_sha256="cd" * 32,
    )


def _header(c: VisualCache) -> VisualCache:
    return dataclasses.replace(c, features=c.features[:0], masked=c.masked[:0])


def test_round_trip(tmp_path):
    c = _cache()
    write_visual(tmp_path / "v.h5", c, {"config": {"x": 1}})
    back = read_visual(tmp_path / "v.h5")
    for name in ("split", "masking", "partition_settings", "class_names", "backbone_arch", "skeleton_sha256"):
        assert getattr(back, name) == getattr(c, name)
    np.testing.assert_array_equal(back.features, c.features)
    np.testing.assert_array_equal(back.masked, c.masked)
    np.testing.assert_array_equal(back.labels, c.labels)
    np.testing.assert_array_equal(back.partition, c.partition)
    assert back.features.dtype == np.float32 and back.labels.dtype == np.int64 and back.partition.dtype == np.int8
    assert back.sample_ids == c.sample_ids and back.backbone_config == c.backbone_config
    assert back.provenance["config"] == {"x": 1} and back.shard is None
    assert read_visual_header(tmp_path / "v.h5").features.shape == (0, 6)
    assert not partial_path(tmp_path / "v.h5").exists()


def test_partial_file_is_refused_and_resumed(tmp_path):
    c, out = _cache(), tmp_path / "v.h5"
    with VisualWriter(out, _header(c), {}) as w:
        w.write(0, c.features[:4], c.masked[:4])
        w.mark_verified()
    assert not out.exists()
    with pytest.raises(CacheError, match="unfinished"):
        read_visual(partial_path(out))
    with VisualWriter(out, _header(c), {}) as w:
        assert w.rows_done == 4
        with pytest.raises(CacheError, match="4 of 10 rows"):
            w.finalize()
        assert w.verified
        w.write(4, c.features[4:], c.masked[4:])
        w.finalize()
    np.testing.assert_array_equal(read_visual(out).masked, c.masked)


def test_partial_of_other_inputs_or_no_resume_starts_over(tmp_path):
    c, out = _cache(), tmp_path / "v.h5"
    with VisualWriter(out, _header(c), {}) as w:
        w.write(0, c.features[:4], c.masked[:4])
        w.mark_verified()
    other = dataclasses.replace(_header(c), backbone_sha256="ef" * 32)
    with VisualWriter(out, other, {}) as w:
        assert w.rows_done == 0
        w.write(0, c.features[:2], c.masked[:2])
        w.mark_verified()
    with VisualWriter(out, other, {}, resume=False) as w:
        assert w.rows_done == 0
        w.write(0, c.features[:2], c.masked[:2])
    with VisualWriter(out, other, {}) as w:
        assert w.rows_done == 0, "rows written before the inputs were verified are never resumed"
        w.write(0, c.features, c.masked)
        with pytest.raises(CacheError, match="verified: False"):
            w.finalize()


def test_refuses_foreign_and_inconsistent_files(tmp_path):
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f.attrs["encoding-type"] = "smie.skeletons"
        f.attrs["schema-version"] = 1
    with pytest.raises(CacheError, match="expected smie.visual"):
        read_visual(bad)
    write_visual(tmp_path / "v.h5", _cache(), {})
    with h5py.File(tmp_path / "v.h5", "r+") as f:
        del f["partition"]
        f["partition"] = np.zeros(3, np.int8)
    with pytest.raises(CacheError, match="'partition' has 3 rows"):
        read_visual(tmp_path / "v.h5")


def _shards(c: VisualCache, tmp_path, bounds):
    paths = []
    for r, (a, b) in enumerate(bounds):
        part = dataclasses.replace(
            c, features=c.features[a:b], masked=c.masked[a:b], labels=c.labels[a:b], partition=c.partition[a:b],
            sample_ids=c.sample_ids[a:b], shard={"rank": r, "world": len(bounds), "start": a, "stop": b, "total": 10})
        paths.append(write_visual(tmp_path / f"v.rank{r}.h5", part, {}))
    return paths


def test_join_shards_restores_order_and_checks_coverage(tmp_path):
    c = _cache()
    paths = _shards(c, tmp_path, [(0, 3), (3, 7), (7, 10)])
    joined = read_visual(join_shards(paths[::-1], tmp_path / "v.h5", chunk=2))
    np.testing.assert_array_equal(joined.features, c.features)
    np.testing.assert_array_equal(joined.masked, c.masked)
    assert joined.sample_ids == c.sample_ids and joined.shard is None
    with pytest.raises(CacheError, match="3 shards but 2"):
        join_shards(paths[:2], tmp_path / "w.h5")
    (tmp_path / "gap").mkdir()
    gap = _shards(c, tmp_path / "gap", [(0, 3), (4, 7), (7, 10)])
    with pytest.raises(CacheError, match="expected to start at 3"):
        join_shards(gap, tmp_path / "w.h5")
    (tmp_path / "dup").mkdir()
    dup = _shards(dataclasses.replace(c, sample_ids=("s000",) * 10), tmp_path / "dup", [(0, 5), (5, 10)])
    with pytest.raises(CacheError, match="duplicate"):
        join_shards(dup, tmp_path / "w.h5")
    assert not (tmp_path / "w.h5").exists()
