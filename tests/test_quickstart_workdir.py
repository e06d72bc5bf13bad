"""The resumable work directory behind ``smie quickstart``: state, fingerprints, commands, INDEX."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from smie.features.store import SmieError
from smie.pipeline.tools.workdir import (Stage, clear_outputs, command_line, fingerprint, is_complete, read_state, settings,
                              write_index, write_state)


@dataclass(frozen=True)
class Cfg:
    out: Path
    kinds: tuple[str, ...] = ("label",)
    epochs: int = 100
    gzsl: bool = False
    resume: bool = True
    note: str | None = None


@dataclass(frozen=True)
class CfgWithNewField(Cfg):
    added: int = 3


def _stage(cfg, **kw) -> Stage:
    return Stage("fit", "fit-estimator", cfg, lambda c: None, (cfg.out,), "about", **kw)


def test_command_line_renders_non_default_fields(tmp_path):
    cfg = Cfg(out=tmp_path / "a b", kinds=("label", "action"), epochs=5, gzsl=True, resume=False)
    line = command_line(_stage(cfg, options={"kinds": "--kind"}))
    assert line == (f"smie fit-estimator --out '{tmp_path / 'a b'}' --kind label --kind action --epochs 5 --gzsl "
                    "--no-resume")
    assert command_line(_stage(Cfg(out=Path("x")), options={"out": ""})) == "smie fit-estimator x"


def test_fingerprint_ignores_new_defaulted_fields_but_not_changes(tmp_path):
    a = fingerprint(_stage(Cfg(out=tmp_path)), {})
    assert a == fingerprint(_stage(CfgWithNewField(out=tmp_path)), {})
    assert a != fingerprint(_stage(Cfg(out=tmp_path, epochs=7)), {})
    assert a != fingerprint(_stage(Cfg(out=tmp_path), deps=("prepare",)), {"prepare": "x"})
    assert settings(Cfg(out=tmp_path, note=None)) == {"out": tmp_path}


def test_state_round_trip_completion_and_clearing(tmp_path):
    out, scratch = tmp_path / "run", tmp_path / "run.resume"
    st = _stage(Cfg(out=out), scratch=(scratch,))
    fp = fingerprint(st, {})
    write_state(tmp_path, {"fit": {"fingerprint": fp, "seconds": 1.5}})
    state = read_state(tmp_path)
    assert state == {"fit": {"fingerprint": fp, "seconds": 1.5}}
    assert not is_complete(st, fp, state), "the output is missing"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    scratch.write_text("r")
    assert is_complete(st, fp, state) and not is_complete(st, "other", state)
    clear_outputs(st, tmp_path, keep_scratch=True)
    assert not out.exists() and scratch.exists()
    clear_outputs(st, tmp_path, keep_scratch=False)
    assert not scratch.exists()
    with pytest.raises(SmieError, match="outside the work directory"):
        clear_outputs(_stage(Cfg(out=tmp_path.parent / "elsewhere")), tmp_path, keep_scratch=False)
    (tmp_path / "quickstart-state.json").write_text("{torn")
    with pytest.raises(SmieError, match="quickstart-state.json"):
        read_state(tmp_path)


def test_index_lists_files_commands_and_times(tmp_path):
    st = _stage(Cfg(out=tmp_path / "visual.h5", epochs=3))
    (tmp_path / "visual.h5").write_text("x")
    path = write_index(tmp_path, [st], {"fit": {"seconds": 2.5, "cpu_seconds": 1.0}}, "# head", "tail")
    text = path.read_text()
    assert text.startswith("# head")
    assert "| fit | `visual.h5` | 2.5 | 1.0 |" in text
    assert f"```\nsmie fit-estimator --out {tmp_path / 'visual.h5'} --epochs 3\n```" in text
    assert text.rstrip().endswith("tail")
