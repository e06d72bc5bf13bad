"""A resumable work directory of pipeline stages: which stages are complete, and its ``INDEX.md``.

Why: ``smie quickstart`` chains six steps; a rerun must skip finished ones, and a newcomer must be able to see
what every file is and rerun any stage by hand. A stage is complete when all its outputs exist (every step writes
atomically, so an existing file is a finished one) and the fingerprint of its config, and of the stages it reads,
equals the one recorded in ``quickstart-state.json`` when it finished. A stage whose fingerprint changed reruns,
and so does everything downstream of it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from smie.features.store import SmieError, atomic_path, to_json

STATE_FILE = "quickstart-state.json"


@dataclass(frozen=True)
class Stage:
    """One step: ``command`` is its ``smie`` subcommand, ``config`` its frozen config, ``run(config)`` does it.

    ``outputs`` exist when it is complete (the first one is the stage's product); ``about`` says what they are
    for the INDEX; ``deps`` name the stages whose outputs it reads; ``scratch`` are resume files the step leaves
    while it runs (kept when an interrupted stage reruns with the same settings, removed otherwise).
    """

    name: str
    command: str
    config: Any
    run: Callable[[Any], Any]
    outputs: tuple[Path, ...]
    about: str
    deps: tuple[str, ...] = ()
    scratch: tuple[Path, ...] = ()
    options: dict[str, str] = dataclasses.field(default_factory=dict)


def settings(config: Any) -> dict[str, Any]:
    """The config's fields that differ from their defaults (None left out), in field order.

    Fingerprints use these rather than the whole config, so a new defaulted field in a step's config does not
    make a finished stage look stale."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if value is None or (f.default is not dataclasses.MISSING and value == f.default):
            continue
        out[f.name] = value
    return out


def fingerprint(stage: Stage, upstream: dict[str, str]) -> str:
    text = to_json({"config": settings(stage.config), "deps": {d: upstream.get(d, "") for d in stage.deps}})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def read_state(workdir: Path) -> dict:
    path = workdir / STATE_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise SmieError(f"{path}: not valid JSON ({exc}); delete it to rerun every stage") from None


def write_state(workdir: Path, state: dict) -> None:
    with atomic_path(workdir / STATE_FILE) as tmp:
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")


def is_complete(stage: Stage, fp: str, state: dict) -> bool:
    return state.get(stage.name, {}).get("fingerprint") == fp and all(p.exists() for p in stage.outputs)


def clear_outputs(stage: Stage, workdir: Path, keep_scratch: bool) -> None:
    """Remove a stale stage's outputs before it reruns (only paths inside ``workdir``), and its resume files
    unless ``keep_scratch`` (an interrupted attempt with the same settings and unchanged inputs)."""
    root = workdir.resolve()
    for p in stage.outputs + (() if keep_scratch else stage.scratch):
        if root not in p.resolve().parents:
            raise SmieError(f"{p}: stage {stage.name} output lies outside the work directory {workdir}")
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def _quote(value: Any) -> str:
    text = str(value)
    return f"'{text}'" if any(c in text for c in " ,;*$&|(){}") else text


def _option(flag: str, value: Any) -> list[str]:
    if flag == "":
        return [_quote(value)]
    if isinstance(value, bool):
        return [flag if value else "--no-" + flag[2:]]
    if isinstance(value, (tuple, list)):
        return [part for v in value for part in (flag, _quote(v))]
    return [flag, _quote(value)]


def command_line(stage: Stage) -> str:
    """``smie <command> --option value ...`` for every config field that differs from its default.

    A field's option is ``--field-name`` unless ``stage.options`` renames it (``""`` = a positional argument);
    booleans render as ``--flag`` / ``--no-flag``, tuples as a repeated option.
    """
    parts = ["smie", stage.command]
    for name, value in settings(stage.config).items():
        parts += _option(stage.options.get(name, "--" + name.replace("_", "-")), value)
    return " ".join(parts)


def write_index(workdir: Path, stages: list[Stage], state: dict, header: str, footer: str = "") -> Path:
    """``INDEX.md``: every stage's files, what they are, the command that reruns it, and its last wall time."""
    lines = [header.rstrip(), "", "| stage | files | wall s | CPU s |", "|---|---|---|---|"]
    for st in stages:
        rec = state.get(st.name, {})
        files = ", ".join(f"`{p.relative_to(workdir)}`" for p in st.outputs if p.is_file() or p == st.outputs[0])
        times = [f"{rec[k]:.1f}" if k in rec else "" for k in ("seconds", "cpu_seconds")]
        lines.append(f"| {st.name} | {files} | {' | '.join(times)} |")
    lines.append("")
    for i, st in enumerate(stages, 1):
        lines += [f"## {i}. {st.name}", "", st.about, "", "```", command_line(st), "```", ""]
    if footer:
        lines += [footer.rstrip(), ""]
    path = workdir / "INDEX.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    return path
