"""Bad inputs of the import commands, through the command line: each exits with one line naming the file and the
problem, writes nothing under the output's name and leaves an existing output byte-for-byte intact (the
contract of docs/bad-inputs.md, checked by ``run_bad``)."""
from __future__ import annotations

import csv
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from smie.pipeline.data.classes import class_table
from smie.pipeline.visual.synse_synthetic import SynseLayout, write_synse_layout
from tests.bad_input_contract import run_bad
from tests.conftest import TINY_SYNSE

SPLIT = "synse:ntu60:55/5"


@pytest.fixture
def folder(tmp_path, synse_folders) -> Path:
    """A writable copy of the tiny 55/5 main folder (no validation folder beside it)."""
    d = tmp_path / "in" / "shift_5_r"
    shutil.copytree(synse_folders["main"], d)
    return d


def import_args(folder: Path, out: Path, *extra) -> list:
    return ["import-features", "--folder", folder, "--split", SPLIT, "--out", out, *extra]


def spoil(folder: Path, kind: str, tmp_path: Path) -> tuple[str, ...]:
    if kind == "row-count":
        np.save(folder / "train_label.npy", np.load(folder / "train_label.npy")[:-1])
        return "train.npy", "feature rows but train_label.npy has"
    if kind == "labels-outside-split":
        z = np.load(folder / "z_label.npy")
        z[3] = 0  # a seen class among the unseen test rows
        np.save(folder / "z_label.npy", z)
        return "z_label.npy", "labels outside the split"
    if kind == "mixed-splits":  # ztest from the 48/12 folder of the same backbone family
        other = write_synse_layout(tmp_path / "other", SynseLayout(**TINY_SYNSE, split="synse:ntu60:48/12"))
        for f in ("ztest.npy", "z_label.npy", "ztest_out.npy"):
            shutil.copy(other["main"] / f, folder / f)
        return "z_label.npy", "mixes splits"
    if kind == "nan-rows":
        g = np.load(folder / "gtest.npy")
        g[[2, 7]] = np.nan
        np.save(folder / "gtest.npy", g)
        return "gtest.npy", "2 rows hold NaN", "rows 2, 7"
    if kind == "wrong-dtype":
        np.save(folder / "train.npy", np.load(folder / "train.npy").astype(np.int32))
        return "train.npy", "wrong dtype int32"
    if kind == "missing-file":
        (folder / "g_label.npy").unlink()
        return "g_label.npy", "missing file", "gtest.npy is there"
    if kind == "missing-train":
        (folder / "train.npy").unlink()
        return "train.npy", "missing file"
    if kind == "pickled":
        with open(folder / "train_label.npy", "wb") as fh:
            np.save(fh, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
        return "train_label.npy", "not a plain numeric .npy"
    if kind == "bad-logits":
        np.save(folder / "gtest_out.npy", np.load(folder / "gtest_out.npy")[:, :37])
        return "gtest_out.npy", "37 score columns"
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["row-count", "labels-outside-split", "mixed-splits", "nan-rows", "wrong-dtype",
                                  "missing-file", "missing-train", "pickled", "bad-logits"])
def test_bad_feature_folder(kind, folder, tmp_path):
    expect = spoil(folder, kind, tmp_path)
    run_bad(import_args(folder, tmp_path / "out" / "visual.h5"), (tmp_path / "out").mkdir() or
            tmp_path / "out" / "visual.h5", *expect)


def test_folder_named_for_another_split(folder, tmp_path):
    renamed = folder.rename(folder.with_name("shift_12_r"))
    (tmp_path / "out").mkdir()
    run_bad(import_args(renamed, tmp_path / "out" / "v.h5"), tmp_path / "out" / "v.h5",
            "shift_12_r", "says 12 unseen classes")


def test_validation_folder_of_another_backbone_width(folder, tmp_path, synse_folders):
    val = tmp_path / "in" / "shift_val_5_r"
    shutil.copytree(synse_folders["validation"], val)
    np.save(val / "val.npy", np.zeros((3, 8), np.float32))
    np.save(val / "val_label.npy", np.zeros(3, np.int64))
    (val / "val_out.npy").unlink()
    (tmp_path / "out").mkdir()
    run_bad(import_args(folder, tmp_path / "out" / "v.h5"), tmp_path / "out" / "v.h5", "val.npy", "8-d features")


def msf_tree(tmp_path: Path, names: list[str], rows: int = 60) -> Path:
    """An MSF-style ``text_feats/ViT-B-32`` folder with ``sem_info/lb_60.csv`` naming ``names``."""
    feats = tmp_path / "msf" / "text_feats" / "ViT-B-32"
    feats.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in ("lb", "ad", "md"):
        np.save(feats / f"{k}_60.npy", rng.standard_normal((rows, 512)).astype(np.float32))
    sem = tmp_path / "msf" / "sem_info"
    sem.mkdir()
    with open(sem / "lb_60.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["idx", "label"])
        w.writerows([i + 1, n] for i, n in enumerate(names))
    return feats


def text_args(feats: Path, out: Path) -> list:
    return ["import-text-features", "--format", "msf", "--input", feats, "--dataset", "ntu60", "--out", out]


def test_text_features_in_another_class_order(tmp_path):
    names = list(class_table("ntu60"))
    names[3], names[10] = names[10], names[3]
    feats = msf_tree(tmp_path, names)
    run_bad(text_args(feats, tmp_path / "t.h5"), tmp_path / "t.h5", "lb_60.csv", "class order does not match",
            "row 3 'reading' is row 10")


def test_text_features_shifted_by_one_class(tmp_path):
    names = list(class_table("ntu60"))
    feats = msf_tree(tmp_path, names[1:] + names[:1])
    run_bad(text_args(feats, tmp_path / "t.h5"), tmp_path / "t.h5", "lb_60.csv", "class order does not match")


def test_text_features_with_too_few_rows(tmp_path):
    feats = msf_tree(tmp_path, list(class_table("ntu60")), rows=59)
    run_bad(text_args(feats, tmp_path / "t.h5"), tmp_path / "t.h5", "lb_60.npy", "59 rows, the class table has 60")


def test_text_features_with_nan_and_pickles(tmp_path):
    feats = msf_tree(tmp_path, list(class_table("ntu60")))
    x = np.load(feats / "ad_60.npy")
    x[5, 0] = np.nan
    np.save(feats / "ad_60.npy", x)
    run_bad(text_args(feats, tmp_path / "t.h5"), tmp_path / "t.h5", "ad_60.npy", "1 rows hold NaN", "(rows 5)")
    with open(feats / "ad_60.npy", "wb") as fh:
        pickle.dump({"not": "an array"}, fh)
    run_bad(text_args(feats, tmp_path / "t.h5"), tmp_path / "t.h5", "ad_60.npy", "not a plain numeric .npy")
