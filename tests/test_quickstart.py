"""``smie quickstart`` end to end on the tiny synthetic size: every stage, the INDEX, the table, and resume."""
from __future__ import annotations

import json

import pytest

from smie.features.store import SmieError
from smie.pipeline.tools.quickstart import QuickstartConfig, quickstart
from smie.pipeline.tools.quickstart_stages import SIZES, default_split
from smie.pipeline.tools.workdir import STATE_FILE

STAGES = ("synthetic", "prepare", "pretrain-backbone", "extract-visual", "embed-labels", "fit-estimator",
          "fit-baseline", "fit-fusion")


def _check_commands_parse(index: str) -> None:
    """Every command INDEX.md shows is one the real CLI accepts, with options it knows."""
    import shlex

    from smie import cli

    lines = index.splitlines()
    commands = [ln for prev, ln in zip(lines, lines[1:]) if prev == "```" and ln.startswith("smie ")]
    assert len(commands) == len(STAGES)
    for line in commands:
        argv = shlex.split(line)[1:]
        assert argv[0] in cli.main.commands, f"no smie command {argv[0]!r} for: {line}"
        cli.main.commands[argv[0]].make_context(argv[0], argv[1:])


@pytest.mark.slow
def test_tiny_quickstart_runs_indexes_and_resumes(tmp_path):
    lines: list[str] = []
    cfg = QuickstartConfig(workdir=tmp_path / "work", size="tiny", device="cpu")
    first = quickstart(cfg, echo=lines.append)
    work = first.workdir
    assert first.skipped == ()
    assert set(first.seconds) == set(STAGES)
    for name in ("synthetic.npz", "skeletons.h5", "backbone.pt", "visual.h5", "text.h5", "runs/smie/metrics.json",
                 "runs/devise/metrics.json", "runs/smie/confusion.png"):
        assert (work / name).is_file(), name
    assert not (work / "backbone.pt.resume").exists()

    index = (work / "INDEX.md").read_text()
    for name in STAGES:
        assert f". {name}\n" in index
    assert f"smie pretrain-backbone --skeletons {work / 'skeletons.h5'}" in index
    assert f"smie fit-baseline devise --visual {work / 'visual.h5'}" in index
    _check_commands_parse(index)
    assert "synthetic" in index.lower() and "Results" in index
    assert f"the tiny size ({SIZES['tiny'].describe()}) is a smoke run" in index
    assert "split random:4:seed=0" in first.table

    table_lines = first.table.splitlines()
    assert "ZSL acc" in table_lines[1] and "GZSL H" in table_lines[1]
    assert [ln.split()[0] for ln in table_lines[2:6]] == ["smie", "devise", "smie-fusion", "chance"]
    assert f"smie fit-baseline smie-fusion --visual {work / 'visual.h5'}" in index and "--option" in index
    assert table_lines[5].split()[1] == "0.250"
    for method in ("smie", "devise"):
        assert 0.0 <= first.metrics[method]["zsl"] <= 1.0
        assert 0.0 <= first.metrics[method]["h"] <= 1.0
    metrics = json.loads((work / "runs/smie/metrics.json").read_text())
    assert first.metrics["smie"]["zsl"] == metrics["zsl"]["selected"]["acc"]
    assert first.table in "\n".join(lines)

    before = {p: p.stat().st_mtime_ns for p in work.rglob("*") if p.is_file() and p.name not in
              ("INDEX.md", STATE_FILE)}
    again = quickstart(cfg, echo=lines.append)
    assert set(again.skipped) == set(STAGES)
    assert again.table == first.table
    assert {p: p.stat().st_mtime_ns for p in before} == before

    # a changed baseline reruns only that stage
    third = quickstart(QuickstartConfig(workdir=tmp_path / "work", size="tiny", device="cpu",
                                        baseline="relationnet"), echo=lines.append)
    assert set(STAGES) - set(third.skipped) == {"fit-baseline"}
    assert "relationnet" in third.metrics


def test_default_split_follows_the_seed():
    assert default_split(QuickstartConfig(seed=3), 16) == "random:4:seed=3"
    assert default_split(QuickstartConfig(seed=3, split="random:2:seed=0"), 16) == "random:2:seed=0"


def test_bad_size_and_format_without_data(tmp_path):
    with pytest.raises(SmieError, match="size"):
        quickstart(QuickstartConfig(workdir=tmp_path, size="huge"))
    with pytest.raises(SmieError, match="--format"):
        quickstart(QuickstartConfig(workdir=tmp_path, format="ntu"))
    with pytest.raises(SmieError, match="needs LLM descriptions"):
        quickstart(QuickstartConfig(workdir=tmp_path, baseline="synse"))
    with pytest.raises(SmieError, match="unknown"):
        quickstart(QuickstartConfig(workdir=tmp_path, baseline="nope"))
    assert not any(tmp_path.iterdir()), "nothing is written before the settings are checked"


@pytest.mark.slow
@pytest.mark.realdata
def test_tiny_quickstart_on_real_msr_data(tmp_path, realdata_dir):
    msr = realdata_dir / "msr_action3d"
    res = quickstart(QuickstartConfig(workdir=tmp_path, data=msr, format="msr", size="tiny", device="cpu"),
                     echo=lambda line: None)
    assert set(res.seconds) == set(STAGES) - {"synthetic"}
    assert "split random:5:seed=0" in res.table  # a quarter of MSR's 20 classes unseen
    index = (tmp_path / "INDEX.md").read_text()
    assert f"smie prepare --format msr --input {msr.resolve()}" in index and "--skip-bad" in index
    assert not (tmp_path / "synthetic.npz").exists()
