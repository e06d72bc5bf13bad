"""The readers on the real recordings in ../shared/realdata (skipped when absent)."""
from __future__ import annotations

import time

import numpy as np
import pytest

from smie.features.skeletons import read_skeletons
from smie.features.store import SmieError
from smie.pipeline.data.readers import load_raw
from smie.pipeline.data.prepare import PrepareConfig, prepare

pytestmark = pytest.mark.realdata


def test_ntu_samples(realdata_dir, tmp_path):
    raw = load_raw("ntu", realdata_dir / "ntu_rgbd_samples")
    assert raw.dataset == "ntu60" and raw.layout == "ntu-25"
    assert [s.data.shape[1] for s in raw.samples] == [103, 158, 104, 99, 54]
    assert [s.label for s in raw.samples] == [0, 1, 2, 3, 4]
    for s in raw.samples:
        assert np.all(s.data[..., 1] == 0), "one body per frame in these samples"
        assert 3.0 < np.median(s.data[2, :, :, 0]) < 4.5, "z is depth in metres"
    res = prepare(PrepareConfig("ntu", realdata_dir / "ntu_rgbd_samples", tmp_path / "ntu.h5"))
    s = read_skeletons(res.path)
    assert s.data.shape == (5, 3, 50, 25, 2) and s.lengths.tolist() == [103, 158, 104, 99, 54]
    assert s.class_names[0] == "drink water" and s.meta["camera"].tolist() == [1] * 5
    assert np.allclose(s.data[:, :, 0, 1, 0], 0.0)


def test_pku_sample_with_a_label_file(realdata_dir, tmp_path):
    skel = realdata_dir / "pku_mmd_sample" / "A10N08-L.txt"
    with pytest.raises(SmieError, match="pass --labels"):
        load_raw("pku", skel)
    labels = tmp_path / "A10N08-L.txt"
    labels.write_text("8,10,100,1\n22,200,400,1\n41,500,1040,2\n")
    res = prepare(PrepareConfig("pku", skel, tmp_path / "pku.h5", labels=labels))
    s = read_skeletons(res.path)
    assert res.num_samples == 3 and s.labels.tolist() == [7, 21, 40] and s.dataset == "pku51"
    assert [s.class_names[i] for i in s.labels] == ["drink water", "pickup", "throw"]
    assert s.lengths.tolist() == [90, 200, 540] and s.sample_ids[0] == "A10N08-L_001"
    raw = load_raw("pku", skel, labels=labels)
    assert raw.samples[2].data.shape == (3, 540, 25, 2)


def test_all_msr_files(realdata_dir, tmp_path):
    msr = realdata_dir / "msr_action3d"
    with pytest.raises(SmieError, match=r"a13_s09_e02_skeleton3D\.txt: no valid frames"):
        prepare(PrepareConfig("msr", msr, tmp_path / "msr.h5"))
    t0 = time.time()
    res = prepare(PrepareConfig("msr", msr, tmp_path / "msr.h5", skip_bad=True))
    seconds = time.time() - t0
    assert res.num_samples == 566 and res.num_classes == 20
    assert [name for name, _ in res.skipped] == ["a13_s09_e02"]
    s = read_skeletons(res.path)
    assert s.data.shape == (566, 3, 50, 20, 2) and np.all(s.data[..., 1] == 0)
    counts = np.bincount(s.labels, minlength=20)
    assert counts[0] == 27 and counts[12] == 29 and counts[14] == 20 and counts.sum() == 566
    assert sorted(set(s.meta["subject"].tolist())) == list(range(1, 11))
    long = s.sample_ids.index("a13_s09_e03")
    assert s.lengths[long] == 936 - 740
    assert np.isfinite(s.data).all() and seconds < 30
