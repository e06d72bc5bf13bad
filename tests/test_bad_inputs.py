"""Every class of bad input, through the command line (click's CliRunner on ``smie.cli.main``): the command exits
non-zero with a one-line message naming the file and the problem (no traceback), writes nothing under the final
name, and leaves an existing output byte-for-byte intact. The matrix is docs/bad-inputs.md."""
from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from smie.cli import main
from smie.pipeline.data.readers.ntu import write_skeleton_file
from tests.bad_input_contract import OLD, prepare_args, run_bad

pytestmark = pytest.mark.usefixtures("one_thread")


# --- raw inputs through `smie prepare` -----------------------------------------------------------------------------

def motion(T: int, V: int = 25, M: int = 1, seed: int = 0) -> np.ndarray:
    """(3, T, V, M) smooth joints around depth 3 m."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, T)[None, :, None, None]
    return (rng.normal(0, 0.3, (3, 1, V, M)) + np.array([0, 0, 3.0])[:, None, None, None]
            + 0.1 * np.sin(2 * np.pi * t + rng.normal(0, 1, (3, 1, V, M)))).astype(np.float32)


def ntu_tree(tmp_path: Path) -> tuple[Path, Path]:
    """A valid NTU directory of three files, and the file the test will spoil."""
    d = tmp_path / "raw"
    d.mkdir()
    for i, name in enumerate(("S001C001P001R001A001", "S001C001P002R001A002", "S001C001P003R001A003")):
        write_skeleton_file(d / f"{name}.skeleton", motion(20 + i, seed=i))
    return d, d / "S001C001P002R001A002.skeleton"


def spoil_ntu(kind: str, f: Path) -> tuple[str, ...]:
    text = f.read_text()
    if kind == "truncated":
        f.write_text("\n".join(text.splitlines()[:60]))
        return "line", "file ends"
    if kind == "garbage":
        f.write_bytes(os.urandom(64) + b"\x00\xff")
        return "cannot be read as an NTU"
    if kind == "garbage-text":
        f.write_text("hello\nworld\n")
        return "line 1", "frame count"
    if kind == "wrong-joints":
        x = motion(6, V=20)
        lines = [str(6)] + [ln for t in range(6) for ln in ("1", "72057594037927936 0 1 1 1 1 0 0.1 0.1 2", "20",
                 *(f"{a} {b} {c} 0 0 0 0 0 0 0 0 2" for a, b, c in x[:, t, :, 0].T))]
        f.write_text("\n".join(lines) + "\n")
        return "20 joints", "25"
    if kind == "nan":
        lines = text.splitlines()
        lines[5] = "nan " + " ".join(lines[5].split()[1:])
        f.write_text("\n".join(lines) + "\n")
        return "non-finite"
    if kind == "inf":
        lines = text.splitlines()
        lines[40] = "0.1 inf " + " ".join(lines[40].split()[2:])
        f.write_text("\n".join(lines) + "\n")
        return "non-finite"
    if kind == "zero-length":
        f.write_text("0\n")
        return "no valid frames"
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["truncated", "garbage", "garbage-text", "wrong-joints", "nan", "inf", "zero-length"])
def test_bad_ntu_skeleton_file(tmp_path, kind):
    d, f = ntu_tree(tmp_path)
    expect = spoil_ntu(kind, f)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    run_bad(prepare_args("ntu", d, out_dir / "sk.h5"), out_dir / "sk.h5", f.name, *expect)


def msr_tree(tmp_path: Path) -> tuple[Path, Path]:
    d = tmp_path / "msr"
    d.mkdir()
    for i in range(2):
        x = motion(10, V=20, seed=i)[..., 0]  # (3, T, 20)
        rows = [f"{a:.6f} {b:.6f} {c:.6f} 1" for t in range(10) for a, b, c in x[:, t].T]
        (d / f"a0{i + 1}_s01_e01_skeleton3D.txt").write_text("\n".join(rows) + "\n")
    return d, d / "a02_s01_e01_skeleton3D.txt"


@pytest.mark.parametrize("kind,expect", [
    ("truncated", ("not a whole number of 20-joint frames",)),
    ("garbage", ("values, expected 4",)),
    ("nan", ("line 3", "non-finite")),
    ("zero-length", ("empty skeleton file",)),
], ids=["truncated", "garbage", "nan", "zero-length"])
def test_bad_msr_file(tmp_path, kind, expect):
    d, f = msr_tree(tmp_path)
    lines = f.read_text().splitlines()
    f.write_text({"truncated": "\n".join(lines[:-7]), "garbage": "this is\nnot a skeleton\n",
                  "nan": "\n".join(lines[:2] + ["nan 0 0 1"] + lines[3:]), "zero-length": ""}[kind])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    run_bad(prepare_args("msr", d, out_dir / "msr.h5"), out_dir / "msr.h5", f.name, *expect)


@pytest.mark.parametrize("kind,expect", [
    ("truncated", ("line 4", "expected 150")),
    ("garbage", ("line 6", "not a number")),
    ("wrong-joints", ("line 1", "20 joints", "expected 150")),
    ("inf", ("line 2", "non-finite")),
], ids=["truncated", "garbage", "wrong-joints", "inf"])
def test_bad_pku_file(tmp_path, kind, expect):
    d, labels = tmp_path / "pku", tmp_path / "labels"
    d.mkdir(), labels.mkdir()
    x = motion(12, M=2).transpose(1, 3, 2, 0).reshape(12, 150)  # (T, bodies x joints x xyz)
    rows = [" ".join(f"{v:.5f}" for v in r) for r in x]
    if kind == "truncated":
        rows[3] = rows[3][: len(rows[3]) // 2]
    elif kind == "garbage":
        rows[5] = " ".join(["abc"] * 150)
    elif kind == "wrong-joints":
        rows = [" ".join(r.split()[:120]) for r in rows]
    else:
        rows[1] = "inf " + " ".join(rows[1].split()[1:])
    (d / "0002-L.txt").write_text("\n".join(rows) + "\n")
    (labels / "0002-L.txt").write_text("1,0,6,1\n2,6,12,1\n")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    run_bad(prepare_args("pku", d, out_dir / "pku.h5", "--labels", labels), out_dir / "pku.h5", "0002-L.txt",
            *expect)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("fmt", ["pyskl", "aimclr"])
def test_pickle_with_a_forbidden_global(tmp_path, fmt):
    d = tmp_path / "in"
    d.mkdir()
    if fmt == "pyskl":
        src = d / "ann.pkl"
        src.write_bytes(pickle.dumps({"split": {}, "annotations": [{"frame_dir": "x", "label": 0, "k": Evil()}]}))
        pkl = src
    else:
        src = d / "train_position.npy"
        np.save(src, np.zeros((1, 3, 4, 25, 1), np.float32))
        pkl = d / "train_label.pkl"
        pkl.write_bytes(pickle.dumps((["S001C001P001R001A001"], [Evil()])))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    run_bad(prepare_args(fmt, src, out_dir / "x.h5"), out_dir / "x.h5", pkl.name, "refusing to unpickle", "system")


def npz_arrays(N: int = 3) -> dict:
    return dict(data=motion(6, M=1, seed=1)[None].repeat(N, 0), label=np.arange(N), class_names=np.array(["a", "b", "c"]),
                layout=np.array("ntu-25"))


@pytest.mark.parametrize("kind,expect", [
    ("missing-keys", ("missing label, layout",)),
    ("label-length", ("label must be (3,)",)),
    ("lengths-length", ("lengths has shape (2,), expected (3,)",)),
    ("wrong-joints", ("layout kinect-v1-20 has 20 joints but data has V=25",)),
    ("nan", ("sample 1", "non-finite")),
    ("zero-length", ("sample 0", "length 0 is outside 1..6")),
], ids=["missing-keys", "label-length", "lengths-length", "wrong-joints", "nan", "zero-length"])
def test_bad_npz(tmp_path, kind, expect):
    z = npz_arrays()
    if kind == "missing-keys":
        del z["label"], z["layout"]
    elif kind == "label-length":
        z["label"] = np.arange(2)
    elif kind == "lengths-length":
        z["lengths"] = np.array([6, 6])
    elif kind == "wrong-joints":
        z["layout"] = np.array("kinect-v1-20")
    elif kind == "nan":
        z["data"][1, 0, 2, 3, 0] = np.nan
    else:
        z["lengths"] = np.array([0, 6, 6])
    (tmp_path / "in").mkdir()
    src = tmp_path / "in" / "x.npz"
    np.savez(src, **z)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    run_bad(prepare_args("npz", src, out_dir / "x.h5"), out_dir / "x.h5", "x.npz", *expect)


# --- caches, checkpoints, descriptions, splits ----------------------------------------------------------------------

@pytest.fixture
def caches(tmp_path, skeletons_and_text, stage_caches):
    d = tmp_path / "caches"
    d.mkdir()
    skeletons_and_text(d)
    stage_caches(d)  # visual.h5 (16 classes), text.h5 overwritten: keep the skeleton side's text apart
    return d


def spoil_cache(src: Path, dst: Path, kind: str) -> tuple[str, ...]:
    shutil.copy(src, dst)
    if kind == "truncated":
        with open(dst, "r+b") as fh:
            fh.truncate(dst.stat().st_size // 2)
        return ("cannot be read as HDF5",) if dst.stat().st_size < 4096 else ("truncated",)
    with h5py.File(dst, "a") as f:
        if kind == "future-version":
            f.attrs["schema-version"] = 99
            return "schema-version 99 is not supported",
        if kind == "wrong-type":
            f.attrs["encoding-type"] = "smie.text"
            return "is a smie.text file",
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["truncated", "future-version", "wrong-type"])
def test_bad_skeleton_cache(caches, tmp_path, kind):
    bad = tmp_path / "bad.h5"
    expect = spoil_cache(caches / "sk.h5", bad, kind)
    run_bad(["pretrain-backbone", "--skeletons", bad, "--split", "random:2:seed=0", "--out", tmp_path / "o" / "b.pt",
             "--epochs", "1", "--device", "cpu"], _mk(tmp_path / "o" / "b.pt"), "bad.h5", *expect)


@pytest.mark.parametrize("kind", ["truncated", "future-version", "wrong-type"])
def test_bad_visual_cache(caches, tmp_path, kind):
    bad = tmp_path / "bad.h5"
    expect = spoil_cache(caches / "visual.h5", bad, kind)
    run_bad(["fit-estimator", "--visual", bad, "--text", caches / "text.h5", "--out", tmp_path / "o" / "run",
             "--epochs", "1", "--warmup", "0", "--device", "cpu"], _mk(tmp_path / "o" / "run"), "bad.h5", *expect)


def _mk(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_unfinished_partial_skeleton_cache(tmp_path):
    d, f = ntu_tree(tmp_path)
    from smie.pipeline.data.prepare_partial import Partial, partial_paths

    part = Partial(tmp_path / "sk.h5", key="k")
    part.append([("S001C001P001R001A001", 0, 20, motion(8, M=2), {})], 1, [])
    partial = partial_paths(tmp_path / "sk.h5")[0]
    run_bad(["pretrain-backbone", "--skeletons", partial, "--split", "random:2:seed=0", "--out",
             tmp_path / "o" / "b.pt", "--epochs", "1"], _mk(tmp_path / "o" / "b.pt"), partial.name,
            "unfinished partial", "smie prepare")


def test_unfinished_partial_visual_cache(caches, tmp_path):
    from smie.features.visual import PARTIAL_TYPE

    partial = tmp_path / ".visual.h5.partial"
    shutil.copy(caches / "visual.h5", partial)
    with h5py.File(partial, "a") as f:
        f.attrs["encoding-type"] = PARTIAL_TYPE
        f.attrs["rows-done"] = 7
    run_bad(["fit-estimator", "--visual", partial, "--text", caches / "text.h5", "--out", tmp_path / "o" / "run",
             "--epochs", "1", "--warmup", "0", "--device", "cpu"], _mk(tmp_path / "o" / "run"), partial.name,
            "unfinished visual cache")


def test_visual_and_text_from_different_class_tables(caches, tmp_path, skeletons_and_text):
    other = tmp_path / "other"
    other.mkdir()
    _, text = skeletons_and_text(other)  # "class k" names, not the visual cache's
    run_bad(["fit-estimator", "--visual", caches / "visual.h5", "--text", text, "--out", tmp_path / "o" / "run",
             "--epochs", "1", "--warmup", "0", "--device", "cpu"], _mk(tmp_path / "o" / "run"), "text.h5", "class")


def test_backbone_of_another_layout(tmp_path, skeletons_and_text):
    import torch

    from smie.features.store import file_sha256
    from smie.pipeline.data.splits import resolve_split
    from smie.pipeline.visual.backbones import build_backbone, save_checkpoint

    sk, _ = skeletons_and_text(tmp_path)  # kinect-v1-20
    from smie.features.skeletons import read_skeleton_header

    head = read_skeleton_header(sk)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "ntu.pt", build_backbone("stgcn", "ntu-25", "small", hidden_channels=8, hidden_dim=16),
                    split=resolve_split("random:2:seed=0", len(head.class_names)),
                    partition={"protocol": None, "val_fraction": 0.1, "test_fraction": 0.2, "seed": 0},
                    class_names=head.class_names, num_frames=head.data.shape[2], skeleton_sha256=file_sha256(sk),
                    provenance={})
    run_bad(["extract-visual", "--skeletons", sk, "--backbone", tmp_path / "ntu.pt", "--out", tmp_path / "o" / "v.h5",
             "--keyframes", "2", "--random-drop", "2", "--device", "cpu"], _mk(tmp_path / "o" / "v.h5"), "ntu.pt",
            "ntu-25", "kinect-v1-20")


@pytest.mark.parametrize("line,expect", [
    ('{"class_id": 0, "label"', ("line 2", "not a json object")),
    ('[1, 2]', ("line 2", "expected a json object")),
    ('{"class_id": 0}', ("line 2", "missing field")),
], ids=["broken-json", "not-an-object", "missing-fields"])
def test_descriptions_jsonl_with_a_broken_line(tmp_path, line, expect):
    from smie.prompts.descriptions import Description

    good = Description(class_id=0, label="high arm wave", kind="action", text="a person waves", model="m", host="h",
                       prompt_sha256="0" * 64, temperature=0.0, seed=0, sample=0, time="2026-01-01T00:00:00")
    src = tmp_path / "d.jsonl"
    src.write_text(good.to_json() + "\n" + line + "\n")
    run_bad(["embed-labels", "--dataset", "msr", "--descriptions", src, "--out", tmp_path / "o" / "t.h5"],
            _mk(tmp_path / "o" / "t.h5"), "d.jsonl", *expect)


def test_split_naming_classes_that_do_not_exist(caches, tmp_path):
    spec = tmp_path / "split.json"
    spec.write_text(json.dumps({"unseen": [2, 99], "val_unseen": [3]}))
    run_bad(["pretrain-backbone", "--skeletons", caches / "sk.h5", "--split", f"file:{spec}", "--out",
             tmp_path / "o" / "b.pt", "--epochs", "1", "--device", "cpu"], _mk(tmp_path / "o" / "b.pt"),
            "split.json", "99")


# --- disk full ------------------------------------------------------------------------------------------------------

def _enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_while_writing_a_chunk_keeps_the_partial_for_a_rerun(tmp_path, monkeypatch):
    import smie.pipeline.data.prepare_partial as pp

    d, _ = ntu_tree(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "sk.h5"
    monkeypatch.setattr(pp.os, "fsync", _enospc)  # fault injection inside the real append
    out.write_bytes(OLD)
    result = CliRunner().invoke(main, [str(a) for a in prepare_args("ntu", d, out, "--chunk-size", "1")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert ".sk.h5.partial" in result.output and "No space left on device" in result.output
    assert out.read_bytes() == OLD
    monkeypatch.undo()
    result = CliRunner().invoke(main, [str(a) for a in prepare_args("ntu", d, out, "--chunk-size", "1")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out_dir.iterdir()) == ["sk.h5"] and out.read_bytes() != OLD


def test_disk_full_while_writing_the_cache(tmp_path, monkeypatch):
    from smie.pipeline.data.prepare_partial import Partial

    d, _ = ntu_tree(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    real = Partial.iter_sets

    def failing(self, header):
        for i, s in enumerate(real(self, header)):
            yield s
        _enospc()

    monkeypatch.setattr(Partial, "iter_sets", failing)
    out = out_dir / "sk.h5"
    out.write_bytes(OLD)
    result = CliRunner().invoke(main, [str(a) for a in prepare_args("ntu", d, out)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "sk.h5: write failed (No space left on device)" in result.output and "resumes" in result.output
    assert out.read_bytes() == OLD
    assert sorted(p.name for p in out_dir.iterdir()) == [".sk.h5.partial", ".sk.h5.progress.json", "sk.h5"], \
        "only the resumable partial is left, no temporary cache"
