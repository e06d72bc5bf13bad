"""``smie compare`` killed with SIGKILL at a random point after some runs finished: the rerun keeps every finished
run (bytes unchanged), reruns only the rest, and writes the same tables as an uninterrupted compare."""
from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest


REPO = Path(__file__).resolve().parents[1]


def _compare(d: Path, out: Path, *extra: str) -> subprocess.Popen:
    args = ["compare", "--visual", d / "visual.h5", "--text", d / "text.h5", "--out", out, "--methods",
            "devise,smie-notemporal", "--seeds", "3", "--epochs-scale", "0.03", "--batch-size", "64",
            "--device", "cpu", *extra]
    return subprocess.Popen([sys.executable, "-m", "smie", *map(str, args)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))


def _tables(out: Path) -> tuple[str, str, pd.DataFrame]:
    md = re.sub(r"wall time \d+ s", "wall time - s", (out / "table.md").read_text())
    runs = pd.read_csv(out / "runs.csv").drop(columns=["seconds"])
    return md, (out / "table.csv").read_text(), runs


@pytest.mark.slow
def test_killed_compare_resumes_to_the_same_table(tmp_path, stage_caches):
    stage_caches(tmp_path)
    whole = _compare(tmp_path, tmp_path / "whole")
    _, err = whole.communicate(timeout=600)
    assert whole.returncode == 0, err[-3000:]

    killed = _compare(tmp_path, tmp_path / "killed")
    runs = tmp_path / "killed" / "runs"
    deadline = time.monotonic() + 600
    while killed.poll() is None and len(list(runs.glob("*/*/seed*/metrics.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(random.Random(os.getpid()).uniform(0.0, 0.5))  # somewhere inside a later run
    assert killed.poll() is None, "the compare ended before it could be killed"
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    assert not (tmp_path / "killed" / "table.md").exists()
    finished = {p: p.read_bytes() for p in runs.glob("*/*/seed*/*") if p.is_file()}
    done = {p.parent for p in finished if p.name == "metrics.json"}
    assert len(done) >= 2

    again = _compare(tmp_path, tmp_path / "killed")
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-3000:]
    assert all(p.read_bytes() == b for p, b in finished.items() if p.parent in done), "a finished run was rerun"
    a, b = _tables(tmp_path / "whole"), _tables(tmp_path / "killed")
    assert a[0] == b[0] and a[1] == b[1], "table.md (wall time aside) and table.csv are identical"
    pd.testing.assert_frame_equal(a[2], b[2])
    assert len(list(runs.glob("*/*/seed*/metrics.json"))) == 2 * 3


def test_compare_reuses_finished_runs_only_under_the_same_key(tmp_path, stage_caches):
    from smie.pipeline.zsl.compare import CompareConfig, compare

    visual, text = stage_caches(tmp_path)
    cfg = CompareConfig(visual, text, tmp_path / "cmp", methods=("devise",), seeds=1, device="cpu",
                        epochs_scale=0.03, batch_size=64)
    compare(cfg)
    metrics = tmp_path / "cmp" / "runs" / "devise" / "file_test0" / "seed0" / "metrics.json"
    stamp = metrics.stat().st_mtime_ns
    compare(cfg)
    assert metrics.stat().st_mtime_ns == stamp, "a finished run of the same settings is reused"
    compare(CompareConfig(visual, text, tmp_path / "cmp", methods=("devise",), seeds=1, device="cpu",
                          epochs_scale=0.05, batch_size=64))
    assert metrics.stat().st_mtime_ns != stamp, "other settings rerun the run"
