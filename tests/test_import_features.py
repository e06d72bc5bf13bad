"""``smie import-features``: SynSE-layout folders (tiny seeded ones of the exact layout) into a visual cache,
row by row, with the split checked, the partitions mapped, the scores and the validation folder kept, every
file hashed; then stage two runs on it through the command line."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from smie.cli import main
from smie.features.store import SmieError, file_sha256
from smie.features.visual import StoredLogits, read_visual, read_visual_header
from smie.pipeline.data.partitions import SEEN_TEST, SEEN_TRAIN, SEEN_VAL, UNSEEN_TEST, UNUSED
from smie.pipeline.data.splits import resolve_split
from smie.pipeline.visual.import_features import ImportFeaturesConfig, import_features
from smie.pipeline.visual.synse_synthetic import SynseLayout, write_synse_layout
from tests.conftest import TINY_SYNSE

SPLIT = "synse:ntu60:55/5"
pytestmark = pytest.mark.usefixtures("one_thread")


def load(folder: Path, name: str) -> np.ndarray:
    return np.load(folder / name)


@pytest.fixture(scope="module")
def imported(synse_folders, tmp_path_factory):
    out = tmp_path_factory.mktemp("imp") / "visual.h5"
    res = import_features(ImportFeaturesConfig(folder=synse_folders["main"], split=SPLIT, out=out))
    return res, read_visual(out)


def test_rows_partitions_and_values_follow_the_folders(synse_folders, imported):
    res, vc = imported
    main = synse_folders["main"]
    split = resolve_split(SPLIT, 60)
    x, y = load(main, "train.npy"), load(main, "train_label.npy")
    gx, gy = load(main, "gtest.npy"), load(main, "g_label.npy")
    n = len(y)
    np.testing.assert_array_equal(vc.features[:n], x)  # float32 stored bit for bit
    np.testing.assert_array_equal(vc.labels[:n], y)
    np.testing.assert_array_equal(vc.features[n:], gx)
    np.testing.assert_array_equal(vc.labels[n:], gy)
    assert len(vc.labels) == n + len(gy), "ztest holds gtest's unseen rows: stored once"
    assert set(np.unique(vc.partition[:n])) == {SEEN_TRAIN, SEEN_VAL}
    assert abs((vc.partition[:n] == SEEN_VAL).mean() - 0.1) < 0.03, "a tenth of each seen class held out"
    assert (vc.partition[n:] == np.where(np.isin(gy, split.unseen), UNSEEN_TEST, SEEN_TEST)).all()
    assert vc.masked.shape == (len(vc.labels), 0, 32) and vc.masking["variant"] == "none"
    assert vc.class_names[0] == "drink water" and len(vc.class_names) == 60
    assert vc.split["id"] == SPLIT and vc.split["val_unseen"] == list(split.val_unseen)
    assert vc.sample_ids[0] == "shift_5_r/train:000000" and len(set(vc.sample_ids)) == len(vc.sample_ids)
    assert vc.imported["label_convention"] == "global" and "matched row by row" in vc.imported["notes"][0]
    assert res.partitions["unused"] == 0 and res.label_convention == "global"


def test_scores_and_validation_folder_are_kept(synse_folders, imported):
    _, vc = imported
    main, val = synse_folders["main"], synse_folders["validation"]
    n = len(load(main, "train_label.npy"))
    g_out = load(main, "gtest_out.npy")
    assert isinstance(vc.logits, StoredLogits) and vc.logits.classes == tuple(range(60))
    np.testing.assert_array_equal(vc.logits.rows, n + np.arange(len(g_out)))
    np.testing.assert_array_equal(vc.logits.at(n + np.arange(3)), g_out[:3])
    seen = list(resolve_split(SPLIT, 60).seen)
    np.testing.assert_array_equal(vc.logits.at([n], seen), g_out[:1, seen])
    with pytest.raises(SmieError, match="no stored backbone logits"):
        vc.logits.at([0])  # train.npy has no scores beside it
    vs = vc.validation_set
    parts = [(load(val, f"{r}.npy"), load(val, lab)) for r, lab in
             (("train", "train_label.npy"), ("ztest", "z_label.npy"), ("val", "val_label.npy"))]
    np.testing.assert_array_equal(vs.features, np.concatenate([p[0] for p in parts]))
    np.testing.assert_array_equal(vs.labels, np.concatenate([p[1] for p in parts]))
    assert (vs.partition == np.repeat([SEEN_TRAIN, SEEN_VAL, SEEN_VAL], [len(p[1]) for p in parts])).all()
    split = resolve_split(SPLIT, 60)
    assert vs.trained_classes == tuple(c for c in split.seen if c not in split.val_unseen)
    assert set(vs.labels[len(parts[0][1]):][:len(parts[1][1])]) == set(split.val_unseen)
    np.testing.assert_array_equal(vs.logits.at([0]), load(val, "train_out.npy")[:1])
    assert vc.validation is None, "other rows than the cache's: never a same-rows validation view"


def test_every_file_is_hashed_with_its_folder(synse_folders, imported):
    _, vc = imported
    inputs = vc.provenance["inputs"]
    for key in ("main", "validation"):
        for f in sorted(synse_folders[key].glob("*.npy")):
            rec = inputs[f"{f.parent.name}/{f.name}"]
            assert rec == {"path": str(f), "sha256": file_sha256(f)}
    assert len(inputs) == len(list(synse_folders["main"].glob("*.npy"))) + len(
        list(synse_folders["validation"].glob("*.npy")))


def test_cache_is_schema_version_2_and_its_header_reads_cheaply(imported):
    res, vc = imported
    with h5py.File(res.path) as f:
        assert int(f.attrs["schema-version"]) == 2
    head = read_visual_header(res.path)
    assert head.features.shape == (0, 32) and head.validation_set.features.shape == (0, 32)
    assert len(head.validation_set.labels) == len(vc.validation_set.labels)


@pytest.mark.parametrize("layout", [dict(labels="local"), dict(naming="sadvae"), dict(ztest_copy=False),
                                    dict(naming="smie"), dict(validation=False, logits=False)])
def test_every_layout_and_label_convention(tmp_path, layout):
    paths = write_synse_layout(tmp_path, SynseLayout(**TINY_SYNSE, **layout))
    res = import_features(ImportFeaturesConfig(folder=paths["main"], split=SPLIT, out=tmp_path / "v.h5"))
    vc = read_visual(res.path)
    ref = write_synse_layout(tmp_path / "ref", SynseLayout(**TINY_SYNSE))  # the same draws, global ids
    n = len(load(ref["main"], "train_label.npy"))
    np.testing.assert_array_equal(vc.labels[:n], load(ref["main"], "train_label.npy"))
    assert res.label_convention == ("local" if layout.get("labels") == "local" else "global")
    if layout.get("ztest_copy") is False:
        assert (vc.partition == UNUSED).sum() == (vc.partition == UNSEEN_TEST).sum() > 0
        assert "not the same samples" in res.notes[0]
    if layout.get("naming") == "smie":
        assert vc.imported["format"] == "smie" and (vc.partition == SEEN_TEST).sum() == 0
    if layout.get("naming") == "sadvae":
        assert vc.validation_set is not None and paths["main"].name == "shift_ntu60_5_r"
    if layout.get("labels") == "local":
        np.testing.assert_array_equal(vc.validation_set.labels, read_visual(import_features(ImportFeaturesConfig(
            folder=ref["main"], split=SPLIT, out=tmp_path / "g.h5")).path).validation_set.labels)


def test_a_folder_without_gtest_imports_zsl_only(tmp_path, synse_folders):
    folder = tmp_path / "shift_5_r"
    shutil.copytree(synse_folders["main"], folder)
    for f in ("gtest.npy", "g_label.npy", "gtest_out.npy"):
        (folder / f).unlink()
    res = import_features(ImportFeaturesConfig(folder=folder, split=SPLIT, out=tmp_path / "v.h5"))
    vc = read_visual(res.path)
    assert vc.imported["format"] == "synse-zsl" and res.partitions["seen_test"] == 0
    assert res.partitions["unseen_test"] == len(load(folder, "z_label.npy")) and vc.validation_set is None


def test_stage_two_runs_on_the_imported_cache_through_the_cli(synse_folders, imported, tmp_path):
    res, _ = imported
    run = CliRunner().invoke
    text = tmp_path / "text.h5"
    r = run(main, ["import-text-features", "--format", "npy", "--file", f"label={synse_folders['semantics']}",
                   "--encoder", "synthetic class vectors", "--dataset", "ntu60", "--out", str(text)])
    assert r.exit_code == 0, r.output
    r = run(main, ["fit-baseline", "devise", "--visual", str(res.path), "--text", str(text), "--out",
                   str(tmp_path / "devise"), "--epochs", "3", "--gzsl"])
    assert r.exit_code == 0, r.output
    metrics = json.loads((tmp_path / "devise" / "metrics.json").read_text())
    assert metrics["zsl"]["selected"]["acc"] >= 0 and metrics["gzsl"]["seen_samples"] == "seen_test"
    r = run(main, ["fit-estimator", "--visual", str(res.path), "--text", str(text), "--out", str(tmp_path / "smie"),
                   "--epochs", "2", "--warmup", "0"])
    assert r.exit_code != 0 and str(res.path) in r.output and "--no-temporal" in r.output, r.output
    r = run(main, ["fit-estimator", "--visual", str(res.path), "--text", str(text), "--out", str(tmp_path / "smie"),
                   "--epochs", "2", "--warmup", "0", "--no-temporal", "--hidden", "32,16"])
    assert r.exit_code == 0, r.output


def test_cli_prints_what_went_where(synse_folders, tmp_path):
    r = CliRunner().invoke(main, ["import-features", "--folder", str(synse_folders["main"]), "--split", SPLIT,
                                  "--out", str(tmp_path / "v.h5"), "--val-fraction", "0"])
    assert r.exit_code == 0, r.output
    assert "seen_train" in r.output and "seen_val" not in r.output and "validation set:" in r.output
    r = CliRunner().invoke(main, ["inspect", str(tmp_path / "v.h5")])
    assert r.exit_code == 0 and "masked views: none" in r.output and "smie-notemporal" in r.output, r.output
    assert "validation set:" in r.output and "schema-version 2" in r.output
