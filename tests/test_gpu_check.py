"""``bench/gpu_check.sh``: the GPU check's dry run (every step at tiny sizes on the CPU) and its bookkeeping.

The script itself is meant for a CUDA machine (issue 27); here its ``--dry-run`` runs the same steps with
``--device cpu`` and gloo instead of NCCL, which checks the script, its helpers and the CPU halves of its
comparisons. The other tests check that a failing or skipped step is recorded and the run goes on.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "gpu_check.sh"
STEPS = ("install", "env", "gpu-tests", "torchrun-pipeline", "ddp-smoke", "agree-backbone", "agree-stage2",
         "backbone-throughput", "extract-throughput", "stage2-cost", "fit-ntu60")


def run_check(tmp_path: Path, *args: str, python: str = sys.executable, timeout: float = 1200):
    env = dict(os.environ, OUT=str(tmp_path / "out"), TMPDIR=str(tmp_path))
    return subprocess.run(["bash", str(SCRIPT), "--python", python, *args], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=tmp_path)


def summary_rows(out: Path) -> dict[str, str]:
    """step -> status from summary.txt."""
    rows = re.findall(r"^(PASS|FAIL|SKIP)\s+(\S+)\s", (out / "summary.txt").read_text(), re.M)
    return {step: status for status, step in rows}


@pytest.mark.slow
def test_dry_run_passes_every_step_and_reports_its_figures(tmp_path):
    res = run_check(tmp_path, "--dry-run")
    out = tmp_path / "out"
    assert res.returncode == 0, res.stdout[-8000:] + res.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["figures.json", "log.txt", "summary.txt"]
    assert summary_rows(out) == {step: "PASS" for step in STEPS}
    summary = (out / "summary.txt").read_text()
    assert f"{len(STEPS)} of {len(STEPS)} steps passed" in summary and "(dry-run)" in summary
    log = (out / "log.txt").read_text()
    assert "=== total" in log and "=== [fit-ntu60] PASS" in log
    doc = json.loads((out / "figures.json").read_text())
    assert [s["step"] for s in doc["steps"]] == list(STEPS)
    assert all(s["status"] == "PASS" and s["seconds"] > 0 for s in doc["steps"])
    fig = doc["figures"]
    assert fig["env"]["cuda_available"] is False and Path(fig["env"]["smie"]).resolve() == REPO
    assert fig["backbone-throughput"]["models"]["stgcn-small"]["train"] > 0
    assert fig["backbone-throughput"]["input"] == [2, 3, 50, 25, 2]
    assert fig["extract-throughput"]["seq_per_s"] > 0 and fig["extract-throughput"]["input"][1:] == [3, 50, 25, 2]
    assert fig["stage2-cost"]["official"] > 0 and fig["stage2-cost"]["cached"] > 0
    # two gloo ranks trained and extracted; their shards, joined, equal one process's CPU extraction exactly
    tr = fig["torchrun-pipeline"]
    assert tr["world_size"] == 2 and tr["backend"] == "gloo" and tr["samples"] == 80 and tr["pretrain_s"] > 0
    assert fig["ddp-smoke"]["backend"] == "gloo" and fig["ddp-smoke"]["pass"] is True
    ab = fig["agree-backbone"]
    assert ab["pass"] and ab["same_rows"] and ab["rows"] == 80
    assert ab["features"]["rel_err"] == 0 and ab["masked"]["rel_err"] == 0
    # stage two on the CPU twice is bit-for-bit repeatable
    a2 = fig["agree-stage2"]
    assert a2["pass"] and max(a2["loss_rdiff"].values()) == 0 and a2["weights_rdiff"] == 0
    fit = fig["fit-ntu60"]
    assert fit["device"] == "cpu" and fit["epochs"] == 10 and fit["visual_shape"] == [600, 32]
    assert fit["zsl_acc"] >= 2 / 3, fit  # 3 unseen classes: the synthetic caches' structure is learnt
    assert not list(tmp_path.glob("smie-gpu-check.*")), "scratch directory left behind"


def test_a_failing_step_is_recorded_and_the_run_goes_on(tmp_path):
    """With an interpreter that fails every command, each step FAILs in turn and the summary is still written
    (by the shell's fallback, since the report needs Python too); the exit status says not all passed."""
    res = run_check(tmp_path, "--dry-run", "--only", "install,env,gpu-tests", python="false", timeout=120)
    out = tmp_path / "out"
    assert res.returncode == 1, res.stdout + res.stderr
    assert summary_rows(out) == {"install": "FAIL", "env": "FAIL", "gpu-tests": "FAIL"}
    summary = (out / "summary.txt").read_text()
    assert "the report failed" in summary and "exit status 1" in summary
    assert "=== [gpu-tests] FAIL" in (out / "log.txt").read_text()


def test_steps_past_the_time_budget_are_skipped_not_run(tmp_path):
    res = run_check(tmp_path, "--dry-run", "--budget", "5", timeout=120)
    out = tmp_path / "out"
    assert res.returncode == 1, res.stdout + res.stderr
    assert summary_rows(out) == {step: "SKIP" for step in STEPS}
    doc = json.loads((out / "figures.json").read_text())
    assert all(s["note"] == "time budget of 5s spent" for s in doc["steps"]) and doc["figures"] == {}
    assert "0 of 11 steps passed" in (out / "summary.txt").read_text()
