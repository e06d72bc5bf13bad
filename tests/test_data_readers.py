"""Every input format: tiny synthetic files written here, read back through prepare into the skeleton cache."""
from __future__ import annotations

import datetime
import pickle
from pathlib import Path

import numpy as np
import pytest

from smie.features.skeletons import read_skeletons
from smie.features.store import SmieError
from smie.pipeline.data.readers import load_raw
from smie.pipeline.data.prepare import PrepareConfig, prepare

RNG = np.random.default_rng(0)


def motion(T: int, V: int, offset: float = 0.0) -> np.ndarray:
    """(T, V, 3) smooth synthetic joint trajectories around a body at depth ~3 m."""
    t = np.linspace(0, 1, T)[:, None, None]
    base = RNG.normal(0, 0.3, (1, V, 3)) + np.array([offset, 0.0, 3.0])
    return (base + 0.1 * np.sin(2 * np.pi * t + RNG.normal(0, 1, (1, V, 3)))).astype(np.float32)


def write_ntu(path: Path, bodies_per_frame: list[list[np.ndarray]]) -> None:
    lines = [str(len(bodies_per_frame))]
    for bodies in bodies_per_frame:
        lines.append(str(len(bodies)))
        for b, joints in enumerate(bodies):
            lines.append(f"7205759403792{b} 0 1 1 1 1 0 0.1 0.1 2")
            lines.append(str(len(joints)))
            lines += [f"{x:.6f} {y:.6f} {z:.6f} 270 190 1030 520 0 0 0 0 2" for x, y, z in joints]
    path.write_text("\n".join(lines) + "\n")


def ntu_dir(tmp_path: Path) -> Path:
    d = tmp_path / "ntu"
    d.mkdir()
    still, moving = motion(12, 25), motion(12, 25, offset=1.0)
    moving[:, :, 1] += np.linspace(0, 1.5, 12)[:, None]
    frames = [[still[t], moving[t], still[t] * 0.5] for t in range(12)]
    frames[4] = []
    write_ntu(d / "S001C002P003R002A010.skeleton", frames)
    write_ntu(d / "S017C003P008R001A060.skeleton", [[motion(1, 25)[0]] for _ in range(7)])
    return d


def test_ntu_roundtrip_bodies_and_meta(tmp_path):
    out = tmp_path / "ntu.h5"
    res = prepare(PrepareConfig("ntu", ntu_dir(tmp_path), out, num_frames=16))
    s = read_skeletons(out)
    assert res.num_samples == 2 and s.dataset == "ntu60" and len(s.class_names) == 60 and s.layout == "ntu-25"
    assert s.data.shape == (2, 3, 16, 25, 2) and s.lengths.tolist() == [11, 7]
    assert s.labels.tolist() == [9, 59] and s.sample_ids[0] == "S001C002P003R002A010"
    assert s.meta["setup"].tolist() == [1, 17] and s.meta["camera"].tolist() == [2, 3]
    assert s.meta["subject"].tolist() == [3, 8] and s.meta["replication"].tolist() == [2, 1]
    raw = load_raw("ntu", tmp_path / "ntu" / "S001C002P003R002A010.skeleton").samples[0].data
    assert raw.shape == (3, 12, 25, 2)
    assert raw[1, -1, :, 0].mean() - raw[1, 0, :, 0].mean() > 1.0, "the most active body must come first"
    assert np.all(raw[:, 4] == 0)
    assert np.allclose(s.data[0, :, 0, 1, 0], 0.0), "centred on spine-mid of body 0's first frame"


def test_ntu_dataset_and_missing_list(tmp_path):
    d = ntu_dir(tmp_path)
    write_ntu(d / "S018C001P042R001A061.skeleton", [[motion(1, 25)[0]] for _ in range(5)])
    write_ntu(d / "S001C002P005R002A008.skeleton", [[motion(1, 25)[0]] for _ in range(5)])
    res = prepare(PrepareConfig("ntu", d, tmp_path / "n.h5"))
    s = read_skeletons(tmp_path / "n.h5")
    assert s.dataset == "ntu120" and len(s.class_names) == 120 and res.num_samples == 3
    assert [name for name, _ in res.skipped] == ["S001C002P005R002A008"]


def test_ntu_truncated_file_names_file_and_line(tmp_path):
    d = ntu_dir(tmp_path)
    f = d / "S001C002P003R002A010.skeleton"
    f.write_text("\n".join(f.read_text().splitlines()[:40]))
    with pytest.raises(SmieError, match=r"S001C002P003R002A010\.skeleton: line \d+: file ends"):
        prepare(PrepareConfig("ntu", d, tmp_path / "x.h5"))
    assert not (tmp_path / "x.h5").exists()
    res = prepare(PrepareConfig("ntu", d, tmp_path / "x.h5", skip_bad=True))
    assert res.num_samples == 1 and res.skipped[0][0] == "S001C002P003R002A010"
    assert read_skeletons(tmp_path / "x.h5").provenance["skipped"][0][0] == "S001C002P003R002A010"


def test_ntu_unknown_joint_count(tmp_path):
    d = tmp_path / "ntu"
    d.mkdir()
    write_ntu(d / "S001C001P001R001A001.skeleton", [[motion(1, 20)[0]] for _ in range(3)])
    with pytest.raises(SmieError, match=r"S001C001P001R001A001\.skeleton: line 4: 20 joints, but NTU skeletons have 25"):
        load_raw("ntu", d)


def test_pku_segments_and_labels(tmp_path):
    T = 60
    body1, body2 = motion(T, 25), motion(T, 25, offset=1.0)
    body2[:20] = 0
    skel = tmp_path / "skel"
    skel.mkdir()
    rows = np.concatenate([body1.reshape(T, 75), body2.reshape(T, 75)], axis=1)
    np.savetxt(skel / "0002-L.txt", rows, fmt="%.6f")
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "0002-L.txt").write_text("1,0,20,1\n51,25,60,2\n")
    with pytest.raises(SmieError, match="pass --labels"):
        load_raw("pku", skel)
    res = prepare(PrepareConfig("pku", skel, tmp_path / "p.h5", num_frames=10, labels=labels))
    s = read_skeletons(tmp_path / "p.h5")
    assert res.num_samples == 2 and s.dataset == "pku51" and s.labels.tolist() == [0, 50]
    assert s.sample_ids == ("0002-L_001", "0002-L_002") and s.lengths.tolist() == [20, 35]
    assert s.meta["camera"].tolist() == [1, 1]
    (labels / "0002-L.txt").write_text("1,0,20,1\n52,25,60,2\n")
    with pytest.raises(SmieError, match=r"labels/0002-L\.txt: line 2: action id 52 is not a PKU-MMD action"):
        load_raw("pku", skel, labels=labels)
    (labels / "0002-L.txt").write_text("1,0,200,1\n")
    with pytest.raises(SmieError, match=r"0002-L\.txt: line 1: segment 0-200 is not inside"):
        load_raw("pku", skel, labels=labels)
    np.savetxt(skel / "0002-L.txt", rows[:, :120], fmt="%.6f")
    with pytest.raises(SmieError, match=r"0002-L\.txt: line 1: 120 values"):
        load_raw("pku", skel, labels=labels)


def test_msr_roundtrip_and_bad_values(tmp_path):
    d = tmp_path / "msr"
    d.mkdir()
    for name, T in (("a01_s01_e01", 9), ("a20_s10_e03", 5)):
        x = motion(T, 20)
        np.savetxt(d / f"{name}_skeleton3D.txt", np.concatenate([x.reshape(-1, 3), np.ones((T * 20, 1))], 1), fmt="%.5f")
    res = prepare(PrepareConfig("msr", d, tmp_path / "m.h5", num_frames=8))
    s = read_skeletons(tmp_path / "m.h5")
    assert res.num_samples == 2 and s.data.shape == (2, 3, 8, 20, 2) and s.layout == "kinect-v1-20"
    assert s.labels.tolist() == [0, 19] and s.meta["subject"].tolist() == [1, 10]
    assert np.all(s.data[..., 1] == 0)
    lines = (d / "a01_s01_e01_skeleton3D.txt").read_text().splitlines()
    lines[33] = "nan 0.1 3.0 1.0"
    (d / "a01_s01_e01_skeleton3D.txt").write_text("\n".join(lines))
    with pytest.raises(SmieError, match=r"a01_s01_e01_skeleton3D\.txt: line 34: contains non-finite"):
        prepare(PrepareConfig("msr", d, tmp_path / "m2.h5"))
    (d / "a01_s01_e01_skeleton3D.txt").write_text("\n".join(lines[:25]))
    with pytest.raises(SmieError, match=r"a01_s01_e01_skeleton3D\.txt: 25 lines is not a whole number"):
        load_raw("msr", d)
    (d / "a01_s01_e01_skeleton3D.txt").write_text("0 0 0 0\n" * 40)
    with pytest.raises(SmieError, match=r"a01_s01_e01_skeleton3D\.txt: no valid frames"):
        prepare(PrepareConfig("msr", d, tmp_path / "m3.h5"))


def test_aimclr_roundtrip_and_restricted_pickle(tmp_path):
    data = np.stack([motion(6, 25).transpose(2, 0, 1) for _ in range(3)])[..., None].repeat(2, -1)
    data[:, :, :, :, 1] = 0
    np.save(tmp_path / "train_position.npy", data.astype(np.float32))
    names = ["S001C001P001R001A003", "S002C002P002R001A007", "S003C003P004R002A060"]
    with open(tmp_path / "train_label.pkl", "wb") as fh:
        pickle.dump((names, [2, 6, 59]), fh)
    res = prepare(PrepareConfig("aimclr", tmp_path / "train_position.npy", tmp_path / "a.h5", num_frames=6))
    s = read_skeletons(tmp_path / "a.h5")
    assert res.num_samples == 3 and s.dataset == "ntu60" and s.labels.tolist() == [2, 6, 59]
    assert s.meta["subject"].tolist() == [1, 2, 4] and s.meta["source_split"].tolist() == [0, 0, 0]
    with open(tmp_path / "train_label.pkl", "wb") as fh:
        pickle.dump((names, [datetime.date(2020, 1, 1)] * 3), fh)
    with pytest.raises(SmieError, match=r"train_label\.pkl: refusing to unpickle datetime\.date"):
        load_raw("aimclr", tmp_path)
    with open(tmp_path / "train_label.pkl", "wb") as fh:
        pickle.dump((names, [2, 6, 60]), fh)
    with pytest.raises(SmieError, match=r"labels \[60\] are outside the 60-class ntu60 table"):
        load_raw("aimclr", tmp_path, dataset="ntu60")


def test_pyskl_roundtrip_2d_and_3d(tmp_path):
    anns = [{"frame_dir": f"S001C001P00{i}R001A00{i}", "label": i - 1, "total_frames": 8,
             "keypoint": motion(8, 25)[None].repeat(2, 0)} for i in (1, 2)]
    with open(tmp_path / "ntu.pkl", "wb") as fh:
        pickle.dump({"split": {"xsub_train": ["S001C001P001R001A001"]}, "annotations": anns}, fh)
    s = read_skeletons(prepare(PrepareConfig("pyskl", tmp_path / "ntu.pkl", tmp_path / "p.h5", num_frames=8)).path)
    assert s.dataset == "ntu60" and s.labels.tolist() == [0, 1] and s.meta["subject"].tolist() == [1, 2]
    coco = [{"frame_dir": f"clip{i}", "label": i, "keypoint": motion(5, 17)[None, :, :, :2],
             "keypoint_score": np.full((1, 5, 17), 0.9, np.float32)} for i in range(3)]
    with open(tmp_path / "coco.pkl", "wb") as fh:
        pickle.dump({"split": {}, "annotations": coco}, fh)
    with pytest.raises(SmieError, match="pass --dataset"):
        load_raw("pyskl", tmp_path / "coco.pkl")
    raw = load_raw("pyskl", tmp_path / "coco.pkl", dataset="msr")
    assert raw.layout == "coco-17" and raw.samples[0].data.shape == (3, 5, 17, 2)
    assert np.allclose(raw.samples[0].data[2, :, :, 0], 0.9)
    with open(tmp_path / "evil.pkl", "wb") as fh:
        pickle.dump({"annotations": [datetime.date(2020, 1, 1)]}, fh)
    with pytest.raises(SmieError, match=r"evil\.pkl: refusing to unpickle datetime\.date"):
        load_raw("pyskl", tmp_path / "evil.pkl")


def test_ctrgcn_roundtrip(tmp_path):
    def split(n, classes):
        x = np.zeros((n, 10, 150), np.float32)
        for i in range(n):
            x[i, :, :75] = motion(10, 25).reshape(10, 75)
        return x, np.eye(60, dtype=np.float32)[classes]

    xtr, ytr = split(2, [0, 5])
    xte, yte = split(1, [7])
    np.savez(tmp_path / "NTU60_CS.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    s = read_skeletons(prepare(PrepareConfig("ctrgcn", tmp_path / "NTU60_CS.npz", tmp_path / "c.h5")).path)
    assert s.dataset == "ntu60" and s.labels.tolist() == [0, 5, 7] and s.meta["source_split"].tolist() == [0, 0, 1]
    assert s.sample_ids[2] == "NTU60_CS_test_000000" and np.all(s.data[..., 1] == 0)
    np.savez(tmp_path / "bad.npz", x_train=xtr[:, :, :120], y_train=ytr, x_test=xte, y_test=yte)
    with pytest.raises(SmieError, match=r"bad\.npz: x_train has shape \(2, 10, 120\)"):
        load_raw("ctrgcn", tmp_path / "bad.npz")


def test_generic_npz_roundtrip_with_lengths(tmp_path):
    N, T, V = 4, 12, 20
    data = np.zeros((N, 3, T, V, 1), np.float32)
    for i in range(N):
        data[i, :, :, :, 0] = motion(T, V).transpose(2, 0, 1)
    data[:, :, 9:] = 7.0
    f = tmp_path / "mine.npz"
    np.savez(f, data=data, label=np.array([0, 1, 2, 1]), class_names=np.array(["wave", "kick", "bow"]),
             layout=np.array("kinect-v1-20"), lengths=np.array([9, 9, 9, 9]), subject=np.array([1, 2, 3, 4]),
             sample_id=np.array(["a", "b", "c", "d"]), dataset=np.array("toy"))
    s = read_skeletons(prepare(PrepareConfig("npz", f, tmp_path / "g.h5", num_frames=9, max_bodies=1)).path)
    assert s.dataset == "toy" and s.class_names == ("wave", "kick", "bow") and s.data.shape == (4, 3, 9, 20, 1)
    assert s.lengths.tolist() == [9] * 4 and s.sample_ids == ("a", "b", "c", "d") and float(s.data.max()) < 5
    np.savez(f, data=data, label=np.array([0, 1, 3, 1]), class_names=np.array(["wave", "kick", "bow"]),
             layout=np.array("kinect-v1-20"))
    with pytest.raises(SmieError, match=r"mine\.npz \(sample 2, mine_000002\): label 3 is outside the 3-class"):
        prepare(PrepareConfig("npz", f, tmp_path / "g2.h5"))
    res = prepare(PrepareConfig("npz", f, tmp_path / "g2.h5", skip_bad=True))
    assert res.num_samples == 3 and res.skipped[0][0] == "mine_000002"
    np.savez(f, data=data[:, :, :, :18], label=np.array([0, 1, 2, 1]), class_names=np.array(["a", "b", "c"]),
             layout=np.array("kinect-v1-20"))
    with pytest.raises(SmieError, match=r"mine\.npz: layout kinect-v1-20 has 20 joints but data has V=18"):
        load_raw("npz", f)
    np.savez(f, data=data, label=np.array([0, 1, 2, 1]), class_names=np.array(["a", "b", "c"]), layout=np.array("x"))
    with pytest.raises(SmieError, match="unknown joint layout 'x'"):
        load_raw("npz", f)
    data[1, 0, 0, 0, 0] = np.inf
    np.savez(f, data=data, label=np.array([0, 1, 2, 1]), class_names=np.array(["a", "b", "c"]),
             layout=np.array("kinect-v1-20"))
    with pytest.raises(SmieError, match=r"mine\.npz \(sample 1, mine_000001\): contains non-finite"):
        load_raw("npz", f)


def test_unknown_format_and_misplaced_labels(tmp_path):
    with pytest.raises(SmieError, match="unknown input format 'kinect'"):
        load_raw("kinect", tmp_path)
    with pytest.raises(SmieError, match="--labels applies to the pku and bvh formats only, not msr"):
        load_raw("msr", tmp_path, labels=tmp_path)
