"""The shared cache plumbing and the skeleton cache: round trip, checked reads, atomic writes."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from smie.features.skeletons import SkeletonSet, iter_skeleton_chunks, read_skeleton_header, read_skeletons, write_skeletons
from smie.features.store import CacheError, atomic_path, open_checked, provenance, write_header


def _sset(n=6, t=8, v=25, m=2, k=3, seed=0) -> SkeletonSet:
    rng = np.random.default_rng(seed)
    return SkeletonSet(
        data=rng.normal(size=(n, 3, t, v, m)).astype(np.float32),
        labels=np.arange(n) % k,
        lengths=np.full(n, t, np.int32),
        sample_ids=tuple(f"s{i}" for i in range(n)),
        class_names=tuple(f"class {c}" for c in range(k)),
        layout="ntu-25",
        dataset="synthetic",
        meta={"subject": np.arange(n, dtype=np.int32)},
    )


def test_skeleton_round_trip(tmp_path):
    s = _sset()
    path = tmp_path / "sk.h5"
    write_skeletons(path, s, provenance({"a": 1}))
    back = read_skeletons(path)
    np.testing.assert_array_equal(back.data, s.data)
    np.testing.assert_array_equal(back.labels, s.labels)
    assert back.sample_ids == s.sample_ids and back.class_names == s.class_names
    assert back.layout == "ntu-25" and back.dataset == "synthetic"
    np.testing.assert_array_equal(back.meta["subject"], s.meta["subject"])
    assert back.provenance["config"] == {"a": 1} and "numpy" in back.provenance["packages"]
    head = read_skeleton_header(path)
    assert head.data.shape == (0, 3, 8, 25, 2) and len(head.labels) == 6
    chunks = list(iter_skeleton_chunks(path, chunk=4))
    assert [o for o, _ in chunks] == [0, 4]
    np.testing.assert_array_equal(np.concatenate([c for _, c in chunks]), s.data)


def test_subset_keeps_rows_aligned():
    s = _sset()
    sub = s.subset(np.array([4, 1]))
    assert sub.sample_ids == ("s4", "s1")
    np.testing.assert_array_equal(sub.meta["subject"], [4, 1])
    np.testing.assert_array_equal(sub.data[0], s.data[4])


def test_wrong_type_and_version_are_named(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        write_header(f, "smie.visual", 1, {})
    with pytest.raises(CacheError, match="other.h5.*smie.visual.*expected smie.skeletons"):
        read_skeletons(path)
    with h5py.File(path, "w") as f:
        write_header(f, "smie.skeletons", 99, {})
    with pytest.raises(CacheError, match="schema-version 99"):
        read_skeletons(path)
    plain = tmp_path / "plain.h5"
    h5py.File(plain, "w").close()
    with pytest.raises(CacheError, match="not an smie cache"):
        open_checked(plain, "smie.skeletons", 1)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(CacheError, match="junk.h5.*cannot be read as HDF5"):
        read_skeletons(junk)
    with pytest.raises(CacheError, match="no such file"):
        read_skeletons(tmp_path / "missing.h5")


def test_labels_outside_class_table_are_refused(tmp_path):
    s = _sset()
    bad = SkeletonSet(**{**s.__dict__, "labels": np.array([0, 1, 2, 3, 4, 5])})
    path = tmp_path / "bad.h5"
    write_skeletons(path, bad, {})
    with pytest.raises(CacheError, match="labels outside the 3-class table"):
        read_skeletons(path)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.h5"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole" and len(list(tmp_path.iterdir())) == 1


def test_provenance_hashes_inputs_and_holds_no_env_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    f = tmp_path / "in.txt"
    f.write_text("abc")
    rec = provenance({"x": tmp_path}, inputs={"raw": f}, encoder="minilm")
    assert rec["inputs"]["raw"]["sha256"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert rec["encoder"] == "minilm" and rec["config"]["x"] == str(tmp_path)
    assert "sk-secret-value" not in str(rec)
