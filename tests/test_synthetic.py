"""The embedded synthetic action set: deterministic, well-formed, readable by prepare, and learnable."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from smie.features.store import SmieError
from smie.pipeline.data.synthetic import CLASSES, SyntheticConfig, forward_kinematics, generate_synthetic

SMALL = dict(per_class=6, num_frames=32)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return generate_synthetic(SyntheticConfig(out=tmp_path_factory.mktemp("syn") / "syn.npz", **SMALL))


def test_shapes_and_fields(small):
    with np.load(small, allow_pickle=False) as z:
        N, C, T, V, M = z["data"].shape
        K = len(CLASSES)
        assert (N, C, T, V, M) == (K * 6, 3, 32, 25, 2)
        assert z["data"].dtype == np.float32
        assert not z["data"][..., 1].any(), "the second body must be all zeros"
        assert str(z["layout"]) == "ntu-25"
        assert tuple(z["class_names"]) == CLASSES
        assert np.bincount(z["label"]).tolist() == [6] * K
        lengths = z["lengths"]
        assert lengths.min() >= int(0.75 * T) and lengths.max() <= T
        for i in range(N):
            assert not z["data"][i, :, lengths[i]:].any(), "frames past the valid length must be zero"
        assert len(set(z["sample_id"].tolist())) == N
        assert set(z["subject"].tolist()) <= set(range(10))
        # metres, y up: the head is above the feet in every valid frame of every sample
        head_y, foot_y = z["data"][:, 1, :, 3, 0], z["data"][:, 1, :, :, 0][..., [15, 19]].min(axis=-1)
        valid = np.arange(T)[None, :] < lengths[:, None]
        assert (head_y[valid] - foot_y[valid] > 0.6).all()


def test_deterministic_for_a_seed(small, tmp_path):
    again = generate_synthetic(SyntheticConfig(out=tmp_path / "again.npz", **SMALL))
    other = generate_synthetic(SyntheticConfig(out=tmp_path / "other.npz", seed=1, **SMALL))
    with np.load(small) as a, np.load(again) as b, np.load(other) as c:
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])
        assert not np.array_equal(a["data"], c["data"])


def test_rest_pose_bone_lengths():
    T, V = 2, 25
    pos = forward_kinematics(np.zeros((T, V, 3)), np.zeros(T), np.zeros((T, 3)), np.ones(V))
    assert pos.shape == (T, V, 3)
    np.testing.assert_allclose(np.linalg.norm(pos[0, 3] - pos[0, 2]), 0.14, atol=1e-9)  # neck-head
    np.testing.assert_allclose(np.linalg.norm(pos[0, 13] - pos[0, 12]), 0.42, atol=1e-9)  # hip-knee
    assert pos[0, 8, 0] > pos[0, 4, 0], "the right shoulder is at +x (subject faces -z)"
    assert pos[0, :, 1].min() == pytest.approx(0.0), "feet are grounded"


def test_subset_and_bad_class(tmp_path):
    path = generate_synthetic(SyntheticConfig(out=tmp_path / "two.npz", per_class=2, num_frames=20,
                                              classes=("wave left hand", "wave right hand")))
    with np.load(path) as z:
        assert tuple(z["class_names"]) == ("wave left hand", "wave right hand")
    with pytest.raises(SmieError, match="unknown"):
        generate_synthetic(SyntheticConfig(out=tmp_path / "bad.npz", classes=("moonwalk",)))
    assert not (tmp_path / "bad.npz").exists()


def test_reads_back_through_the_npz_reader_and_prepare(small, tmp_path):
    from smie.features.skeletons import read_skeletons
    from smie.pipeline.data.readers import load_raw
    from smie.pipeline.data.prepare import PrepareConfig, prepare

    raw = load_raw("npz", small)
    assert raw.layout == "ntu-25" and tuple(raw.class_names) == CLASSES
    assert len(raw.samples) == len(CLASSES) * 6
    first = raw.samples[0]
    C, T, V, M = first.data.shape
    assert (C, V) == (3, 25) and T <= 32

    out = tmp_path / "skeletons.h5"
    prepare(PrepareConfig(input=small, format="npz", out=out, num_frames=32))
    sset = read_skeletons(out)
    N, C, T, V, M = sset.data.shape
    assert (N, C, T, V) == (len(CLASSES) * 6, 3, 32, 25)
    assert sset.class_names == CLASSES and sset.layout == "ntu-25"
    with np.load(small) as z:
        np.testing.assert_array_equal(sset.labels, z["label"])


def _motion_statistics(data: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Per sample: spread and mean of each joint relative to spine-mid over its valid frames."""
    feats = []
    for x, n in zip(data[..., 0], lengths):
        rel = x[:, :n] - x[:, :n, 1:2]
        feats.append(np.concatenate([rel.std(axis=1).ravel(), rel.mean(axis=1).ravel()]))
    return np.asarray(feats)


def test_classes_are_distinguishable_across_subjects(tmp_path):
    path = generate_synthetic(SyntheticConfig(out=tmp_path / "d.npz", per_class=10, num_frames=40, seed=3))
    with np.load(path) as z:
        feats, y, subject = _motion_statistics(z["data"], z["lengths"]), z["label"], z["subject"]
    train, test = subject < 7, subject >= 7
    K = len(CLASSES)
    centroids = np.stack([feats[train & (y == k)].mean(axis=0) for k in range(K)])
    pred = ((feats[test, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    acc = (pred == y[test]).mean()
    assert acc > 5.0 / K, f"nearest-centroid accuracy {acc:.2f} is near chance {1 / K:.2f}"
    assert acc < 1.0, "the set should not be trivially separable by simple statistics"
