"""Every ``smie`` command through click's CliRunner, chained on a tiny seeded synthetic data set.

The chain is the README's hand-run pipeline: prepare -> inspect -> pretrain-backbone -> extract-visual ->
pos-texts -> embed-labels -> fit-estimator -> fit-baseline -> report -> compare -> predict, with real HDF5
files, the real ST-GCN and the real MiniLM encoder. Errors must come out as clean messages, not tracebacks.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from smie.cli import main

pytestmark = pytest.mark.slow


def run(*args: str):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    from smie.pipeline.data.synthetic import SyntheticConfig, generate_synthetic

    d = tmp_path_factory.mktemp("cli")
    classes = ("raise left arm", "raise right arm", "kick with left leg", "kick with right leg", "squat down",
               "jump up")
    npz = generate_synthetic(SyntheticConfig(out=d / "raw.npz", per_class=8, num_frames=20, seed=0,
                                             classes=classes))
    out = run("prepare", "--format", "npz", "--input", npz, "--out", d / "sk.h5", "--frames", "20",
              "--max-bodies", "1")
    assert "wrote 48 samples of 6 classes" in out
    return d


@pytest.fixture(scope="module")
def stage_one(work):
    out = run("pretrain-backbone", "--skeletons", work / "sk.h5", "--split", "random:2:seed=0", "--epochs", "1",
              "--batch-size", "16", "--device", "cpu", "--out", work / "b.pt")
    assert "1 epochs; best seen-class validation accuracy" in out
    out = run("extract-visual", "--skeletons", work / "sk.h5", "--backbone", work / "b.pt", "--out",
              work / "v.h5", "--views", "2", "--keyframes", "5", "--random-drop", "5", "--device", "cpu")
    assert "wrote visual cache" in out
    run("pos-texts", "--skeletons", work / "sk.h5", "--out", work / "pos.jsonl")
    out = run("embed-labels", "--skeletons", work / "sk.h5", "--descriptions", work / "pos.jsonl",
              "--out", work / "t.h5")
    assert "wrote text cache" in out
    return work


def test_inspect_and_splits(work):
    out = run("inspect", work / "sk.h5")
    assert "smie.skeletons" in out and "raise left arm" in out
    out = run("splits", "--dataset", "ntu60")
    assert "synse:ntu60:55/5" in out and "reading" in out


def test_user_errors_are_clean_messages(work, tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    result = CliRunner().invoke(main, ["inspect", str(bad)])
    assert result.exit_code == 1 and "bad.h5" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["pretrain-backbone", "--skeletons", str(work / "sk.h5"), "--split",
                                       "random:99:seed=0", "--out", str(tmp_path / "x.pt")])
    assert result.exit_code == 1 and "Error:" in result.output and "Traceback" not in result.output
    for option, value in (("--hidden", "64"), ("--alpha", "x")):
        result = CliRunner().invoke(main, ["fit-estimator", "--visual", str(work / "sk.h5"), "--text",
                                           str(work / "sk.h5"), "--out", str(tmp_path / "r"), option, value])
        assert result.exit_code == 2 and option in result.output and "Traceback" not in result.output


def test_stage_two_commands(stage_one):
    w = stage_one
    run("inspect", w / "v.h5")
    out = run("inspect", w / "t.h5")
    assert "smie.text" in out and "verb" in out
    out = run("fit-estimator", "--visual", w / "v.h5", "--text", w / "t.h5", "--out", w / "runs/smie", "--epochs",
              "3", "--warmup", "1", "--lr", "1e-4", "--alpha", "0.1,0.5", "--gzsl", "--device", "cpu")
    assert "run written" in out
    metrics = json.loads((w / "runs/smie/metrics.json").read_text())
    assert 0.0 <= metrics["zsl"]["selected"]["acc"] <= 1.0
    run("fit-baseline", "devise", "--visual", w / "v.h5", "--text", w / "t.h5", "--out", w / "runs/devise",
        "--epochs", "3", "--device", "cpu")
    out = run("report", w / "runs/smie", w / "runs/devise", "--csv", w / "report.csv")
    assert "devise" in out and (w / "report.csv").exists()
    out = run("compare", "--visual", w / "v.h5", "--text", w / "t.h5", "--out", w / "cmp", "--methods",
              "devise,smie", "--epochs-scale", "0.03", "--device", "cpu")
    assert (w / "cmp" / "table.md").exists()
    raw = w / "raw.npz"
    out = run("predict", "--backbone", w / "b.pt", "--estimator", w / "runs/smie", "--labels", "jumping",
              "--labels", "squatting", "--json", "--format", "npz", "--device", "cpu", raw)
    rows = json.loads(out)
    assert {r["label"] for r in rows} == {"jumping", "squatting"}
