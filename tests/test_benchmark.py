"""``smie benchmark``: the fold generator is pinned, and a SIGKILLed benchmark resumes to identical results."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from smie.pipeline.data.splits import resolve_splits

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def test_fold_generator_is_deterministic():
    """random:5:folds=10 on 20 classes: seeded independent draws, pinned (a change would silently move every
    published benchmark number)."""
    folds = resolve_splits("random:5:folds=10", 20)
    assert [s.id for s in folds] == [f"random:5:seed={i}" for i in range(10)]
    assert [s.unseen for s in folds[:3]] == [(5, 6, 9, 10, 13), (0, 7, 8, 13, 18), (1, 4, 5, 8, 13)]
    assert [s.val_unseen for s in folds[:3]] == [(11, 12, 14, 16, 18), (4, 6, 14, 16, 17), (3, 10, 14, 17, 18)]
    assert resolve_splits("random:5:folds=10", 20) == folds
    assert all(not set(s.unseen) & set(s.val_unseen) and len(s.seen) == 15 for s in folds)


SCRIPT = """
import sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from smie.pipeline.tools.benchmark import BenchmarkConfig, run_benchmark
d, out = Path(sys.argv[1]), Path(sys.argv[2])
run_benchmark(BenchmarkConfig(skeletons=d / "sk.h5", text=d / "text.h5", out=out, folds=2, unseen=2,
                              methods=("devise", "smie-notemporal"), backbone_epochs=2, batch_size=8,
                              views=2, keyframes=3, random_drop=3, epochs_scale=0.05, device="cpu"),
              log=lambda m: print(m, flush=True))
"""


def _run(d, out):
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(d), str(out)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))


@pytest.mark.slow
def test_killed_benchmark_resumes_with_identical_results(tmp_path, skeletons_and_text):
    skeletons_and_text(tmp_path)
    whole = _run(tmp_path, tmp_path / "whole")
    out, err = whole.communicate(timeout=600)
    assert whole.returncode == 0, err[-3000:]
    killed = _run(tmp_path, tmp_path / "killed")
    marker = tmp_path / "killed" / "fold1" / "main.pt.resume"  # mid-pretraining: its best epoch is on disk
    deadline = time.monotonic() + 600
    while not marker.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert killed.poll() is None, "the run ended before it could be killed"
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    assert not (tmp_path / "killed" / "table.md").exists()
    finished = (tmp_path / "killed" / "fold0" / "runs" / "optimistic" / "smie-notemporal" / "seed0" / "metrics.json")
    before = finished.read_bytes()
    again = _run(tmp_path, tmp_path / "killed")
    log, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-3000:]
    assert "fold 0:" not in log, "a finished fold was run again"
    assert finished.read_bytes() == before
    cols = ["protocol", "method", "split", "seed", "zsl", "zsl_last", "zsl_oracle", "h", "seen", "unseen"]
    a = pd.read_csv(tmp_path / "whole" / "runs.csv")[cols]
    b = pd.read_csv(tmp_path / "killed" / "runs.csv")[cols]
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 2 * 2 * 2 and set(a.protocol) == {"honest", "optimistic"}
    table = (tmp_path / "killed" / "table.md").read_text()
    assert "## Protocol: honest" in table and "Wilcoxon" in table and "pretrain-val" in table


def test_benchmark_command_runs_one_fold_through_the_cli(tmp_path, skeletons_and_text):
    from click.testing import CliRunner

    from smie.cli import main

    skeletons_and_text(tmp_path)
    args = ["benchmark", "--skeletons", tmp_path / "sk.h5", "--text", tmp_path / "text.h5", "--out", tmp_path / "b",
            "--folds", "1", "--unseen", "2", "--methods", "devise", "--protocol", "honest", "--backbone-epochs", "1",
            "--batch-size", "8", "--keyframes", "3", "--random-drop", "3", "--epochs-scale", "0.05",
            "--device", "cpu"]
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert "## Protocol: honest" in result.output and "benchmark written" in result.output
    runs = pd.read_csv(tmp_path / "b" / "runs.csv")
    assert list(runs.method) == ["devise"] and list(runs.protocol) == ["honest"]
    metrics = (tmp_path / "b" / "fold0" / "runs" / "honest" / "devise" / "seed0" / "metrics.json").read_text()
    assert '"validation_features": "validation-backbone"' in metrics
    bad = CliRunner().invoke(main, [str(a) for a in args[:-2]] + ["--methods", "nope"])
    assert bad.exit_code != 0 and "unknown method" in bad.output
