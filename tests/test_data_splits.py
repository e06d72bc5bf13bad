"""The splits registry, the spec grammar and per-sample partitions."""
from __future__ import annotations

import json

import numpy as np
import pytest

from smie.features.store import SmieError
from smie.pipeline.data.splits import (
    PARTITIONS,
    assign_partitions,
    describe_splits,
    registry,
    resolve_split,
    resolve_splits,
)

NUM = {"ntu60": 60, "ntu120": 120, "pku51": 51}


def test_every_registry_split_resolves_and_is_consistent():
    for sid, entry in registry()["splits"].items():
        split = resolve_split(sid, NUM[entry["dataset"]], entry["dataset"])
        assert split.id == sid
        assert sorted(split.seen + split.unseen) == list(range(split.num_classes))
        assert split.val_unseen and set(split.val_unseen) <= set(split.seen)
        assert len(split.val_unseen) == min(len(split.unseen), len(split.seen) // 2)
    assert resolve_split("synse:ntu120:110/10", 120).val_unseen == resolve_split("synse:ntu120:110/10", 120).val_unseen


@pytest.mark.realdata
def test_registry_matches_refdata(refdata_dir):
    ref = json.loads((refdata_dir / "derived" / "splits.json").read_text())
    synse, pku, smie = ref["synse_benchmark"], ref["pku_star_benchmark"], ref["smie_optimized_setting (ST-GCN, 3 folds per dataset)"]
    val = next(v for k, v in synse.items() if k.startswith("gzsl_validation_unseen"))
    for key, sid in {"ntu60_55_5": "synse:ntu60:55/5", "ntu60_48_12": "synse:ntu60:48/12",
                     "ntu120_110_10": "synse:ntu120:110/10", "ntu120_96_24": "synse:ntu120:96/24"}.items():
        split = resolve_split(sid, int(key.split("_")[0][3:]))
        assert list(split.unseen) == sorted(synse[key]["unseen"])
        assert list(split.val_unseen) == sorted(val[key])
    assert list(resolve_split("star:pku51:46/5", 51).unseen) == sorted(pku["pku51_46_5"]["unseen"])
    assert list(resolve_split("star:pku51:39/12", 51).unseen) == sorted(pku["pku51_39_12"]["unseen"])
    for group in ("ntu60_55_5", "ntu120_110_10", "pku51_46_5"):
        n = NUM[group.split("_")[0]]
        for fold, unseen in smie[group].items():
            assert list(resolve_split(f"smie:{fold}", n).unseen) == sorted(unseen)
    purls = ref["purls_benchmark (harder splits)"]
    for key, entry in purls.items():
        ds, seen, unseen = key.split("_")
        assert list(resolve_split(f"purls:{ds}:{seen}/{unseen}", NUM[ds]).unseen) == sorted(entry["unseen"])


@pytest.mark.realdata
def test_registry_matches_published_npy_files(refdata_dir):
    msf, purls = refdata_dir / "MSF-GZSSAR" / "label_splits", refdata_dir / "PURLS" / "label_splits"
    checks = [("synse:ntu60:55/5", 60, msf / "ru5.npy", msf / "rv5_0.npy", msf / "rs55.npy"),
              ("synse:ntu60:48/12", 60, msf / "ru12.npy", msf / "rv12_0.npy", msf / "rs48.npy"),
              ("synse:ntu120:110/10", 120, msf / "ru10.npy", msf / "rv10_0.npy", msf / "rs110.npy"),
              ("synse:ntu120:96/24", 120, msf / "ru24.npy", msf / "rv24_0.npy", msf / "rs96.npy"),
              ("purls:ntu60:40/20", 60, purls / "ntu60" / "ru20.npy", None, purls / "ntu60" / "rs40.npy"),
              ("purls:ntu60:30/30", 60, purls / "ntu60" / "ru30.npy", None, purls / "ntu60" / "rs30.npy"),
              ("purls:ntu120:80/40", 120, purls / "ntu120" / "ru40.npy", None, purls / "ntu120" / "rs80.npy"),
              ("purls:ntu120:60/60", 120, purls / "ntu120" / "ru60.npy", None, purls / "ntu120" / "rs60.npy")]
    for sid, n, ru, rv, rs in checks:
        if not ru.is_file():
            pytest.skip(f"{ru} absent")
        split = resolve_split(sid, n)
        assert list(split.unseen) == sorted(np.load(ru, allow_pickle=False).tolist())
        assert list(split.seen) == sorted(np.load(rs, allow_pickle=False).tolist())
        if rv is not None:
            assert list(split.val_unseen) == sorted(np.load(rv, allow_pickle=False).tolist())
        assert resolve_split(f"file:{ru}", n).unseen == split.unseen


def test_fold_sets_and_lists():
    assert [s.id for s in resolve_splits("smie:ntu60", 60)] == ["smie:split_1", "smie:split_2", "smie:split_3"]
    assert [s.id for s in resolve_splits("smie:pku51", 51, "pku51")][-1] == "smie:split_9"
    folds = resolve_splits("random:4:folds=3", 20)
    assert [s.id for s in folds] == ["random:4:seed=0", "random:4:seed=1", "random:4:seed=2"]
    assert len({s.unseen for s in folds}) == 3
    mixed = resolve_splits("random:5:seeds=3,7, synse:ntu60:55/5", 60)
    assert [s.id for s in mixed] == ["random:5:seed=3", "random:5:seed=7", "synse:ntu60:55/5"]
    with pytest.raises(SmieError, match="set of 3 folds"):
        resolve_split("smie:ntu120", 120)


def test_random_split_is_seeded_and_valid():
    a, b = resolve_split("random:5:seed=1", 20), resolve_split("random:5:seed=1", 20)
    assert a == b and len(a.unseen) == 5 and len(a.val_unseen) == 5
    assert not set(a.val_unseen) & set(a.unseen)
    assert resolve_split("random:5:seed=2", 20).unseen != a.unseen
    assert len(resolve_split("random:1:seed=0", 2).val_unseen) == 1
    with pytest.raises(SmieError, match="unseen count"):
        resolve_split("random:20:seed=0", 20)


def test_split_errors_are_clear(tmp_path):
    with pytest.raises(SmieError, match="ntu60 split of 60 classes, but the data have 120"):
        resolve_split("synse:ntu60:55/5", 120)
    with pytest.raises(SmieError, match="defined on ntu60, but the data are pku51"):
        resolve_split("synse:ntu60:55/5", 60, dataset="pku51")
    with pytest.raises(SmieError, match="unknown split 'synse:ntu60:50/10'"):
        resolve_split("synse:ntu60:50/10", 60)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"unseen": [1, 25]}))
    with pytest.raises(SmieError, match=r"bad\.json: unseen indices \[25\] are outside 0..19"):
        resolve_split(f"file:{bad}", 20)
    clash = tmp_path / "clash.json"
    clash.write_text(json.dumps({"unseen": [1, 2], "val_unseen": [2, 3]}))
    with pytest.raises(SmieError, match=r"val_unseen must be seen classes, but \[2\] are unseen"):
        resolve_split(f"file:{clash}", 20)
    notjson = tmp_path / "x.json"
    notjson.write_text("{unseen")
    with pytest.raises(SmieError, match=r"x\.json: not valid JSON"):
        resolve_split(f"file:{notjson}", 20)


def test_file_split_json_and_npy(tmp_path):
    js = tmp_path / "s.json"
    js.write_text(json.dumps({"unseen": [3, 1], "val_unseen": [5]}))
    s = resolve_split(f"file:{js}", 10)
    assert s.unseen == (1, 3) and s.val_unseen == (5,) and len(s.seen) == 8
    npy = tmp_path / "u.npy"
    np.save(npy, np.array([0, 9]))
    s = resolve_split(f"file:{npy}", 10)
    assert s.unseen == (0, 9) and len(s.val_unseen) == 2 and set(s.val_unseen) <= set(s.seen)
    floats = tmp_path / "f.npy"
    np.save(floats, np.array([0.5]))
    with pytest.raises(SmieError, match="1-D integer array"):
        resolve_split(f"file:{floats}", 10)


def test_partitions_without_protocol_are_stratified_and_seeded():
    split = resolve_split("random:2:seed=0", 6)
    labels = np.repeat(np.arange(6), 20)
    p = assign_partitions(labels, {}, split, val_fraction=0.1, test_fraction=0.2, seed=3)
    assert p.dtype == np.int8 and p.shape == labels.shape
    assert np.all(p[np.isin(labels, split.unseen)] == PARTITIONS["unseen_test"])
    for c in split.seen:
        counts = np.bincount(p[labels == c], minlength=5)
        assert counts.tolist() == [14, 2, 4, 0, 0]
    assert np.array_equal(p, assign_partitions(labels, {}, split, seed=3))
    assert not np.array_equal(p, assign_partitions(labels, {}, split, seed=4))
    seen_class = split.seen[0]
    single = assign_partitions(np.array([seen_class]), {}, split, val_fraction=0.5, test_fraction=0.4)
    assert single.tolist() == [PARTITIONS["seen_train"]]


def test_partitions_with_protocols():
    split = resolve_split("random:1:seed=0", 4)
    u = split.unseen[0]
    labels = np.tile(np.arange(4), 10)
    subject = np.repeat(np.arange(1, 11), 4)
    p = assign_partitions(labels, {"subject": subject}, split, protocol="msr-xsub", val_fraction=0.2)
    train = np.isin(subject, (1, 3, 5, 7, 9))
    assert np.all(p[(labels == u) & train] == PARTITIONS["unused"])
    assert np.all(p[(labels == u) & ~train] == PARTITIONS["unseen_test"])
    assert np.all(p[(labels != u) & ~train] == PARTITIONS["seen_test"])
    seen_train = p[(labels != u) & train]
    assert set(seen_train.tolist()) == {0, 1} and np.sum(seen_train == 1) == 3
    seen_label = split.seen[0]
    p = assign_partitions(np.array([seen_label] * 3 + [u] * 3), {"camera": np.array([1, 2, 3, 1, 2, 3])}, split,
                          protocol="ntu-xview", val_fraction=0.0)
    assert p.tolist() == [2, 0, 0, 3, 4, 4]
    p = assign_partitions(np.array([seen_label] * 2), {"setup": np.array([1, 2])}, split, protocol="ntu-xset",
                          val_fraction=0.0)
    assert p.tolist() == [2, 0]
    with pytest.raises(SmieError, match="needs the per-sample 'setup' column"):
        assign_partitions(labels, {"subject": subject}, split, protocol="ntu-xset")
    with pytest.raises(SmieError, match="unknown protocol"):
        assign_partitions(labels, {}, split, protocol="xsub")
    with pytest.raises(SmieError, match="outside 0..3"):
        assign_partitions(np.array([4]), {}, split)


def test_ntu_xsub_uses_official_training_subjects():
    split = resolve_split("synse:ntu60:55/5", 60)
    labels = np.zeros(4, dtype=int)
    p = assign_partitions(labels, {"subject": np.array([1, 3, 38, 40])}, split, protocol="ntu-xsub", val_fraction=0)
    assert p.tolist() == [0, 2, 0, 2]


def test_describe_splits_lists_names():
    text = describe_splits("ntu60")
    assert "synse:ntu60:55/5" in text
    assert "smie:split_1" in text and "smie:split_7" not in text
    assert "10 reading" in text and "published" in text and "derived (seeded)" in text
    assert "star:pku51:46/5" in describe_splits()
