"""Every option of every ``smie`` command, fed bad values through the real CLI: never a traceback.

The walk introspects the click group, so a new command or option is covered without editing this file. Each
numeric option gets 0, -1, NaN and an absurdly large value; each path option a missing path, a directory and a
file of the wrong kind (a real smie cache of another type). Every run must end in exit code 2 (click refused the
value where it is declared, naming the option) or a clean ``Error:`` line (exit 1), never an unhandled
exception. NaN and the absurd value must always be refused at parsing.

Values that parsing accepts (0 for a seed, a missing output path ...) must not start real work: every command
runs over inputs that are garbage files, so it stops cleanly at its first read (``BASE`` adds what a command
needs for that, e.g. ``quickstart --data``). The summary (``pytest -s``) is the table in docs/bad-inputs.md.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from smie.cli import main
from smie.pipeline.tools.cli_options import Numbers

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TEXT_CACHE = FIXTURES / "text-v1-523aec3.h5"
VISUAL_CACHE = FIXTURES / "visual-v1-3e5c33f.h5"
INT_VALUES = ("0", "-1", "nan", "1000000000000")
FLOAT_VALUES = ("0", "-1", "nan", "1e12")
ALWAYS_REFUSED = {"nan", "1000000000000", "1e12"}
# Non-path values a command needs on top of its required options to stop at its first (garbage) read.
STRINGS = {"split": "random:1:seed=0", "model": "test-model", "name": "devise", "format": "npz"}
BASE = {
    "quickstart": lambda f: ["--data", f["garbage"], "--format", "npz", "--workdir", f["out"] / "quickstart"],
    "synthetic": lambda f: ["--class", "no such class"],
    "serve-llm": lambda f: ["--model", f["garbage"]],
    "expand-labels": lambda f: ["--skeletons", f["garbage"], "--base-url", "http://127.0.0.1:9/v1",
                                "--max-retries", "0", "--timeout", "1"],
    "embed-labels": lambda f: ["--skeletons", f["garbage"]],
    "pos-texts": lambda f: ["--skeletons", f["garbage"]],
    "import-descriptions": lambda f: ["--skeletons", f["garbage"]],
}


def is_numeric(p: click.Parameter) -> bool:
    return isinstance(p.type, (click.IntRange, click.FloatRange, Numbers))


def is_int(p: click.Parameter) -> bool:
    item = p.type.item if isinstance(p.type, Numbers) else p.type
    return isinstance(item, click.IntRange)


def describe(t: click.ParamType) -> str:
    """The accepted values of a ranged type, as click's help shows them."""
    if isinstance(t, Numbers):
        return f"list of {describe(t.item)}" + (f", {t.length} values" if t.length else "")
    return t._describe_range() if isinstance(t, (click.IntRange, click.FloatRange)) else t.name


def commands() -> list[tuple[str, click.Command]]:
    return sorted(main.commands.items())


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("walk")
    (d / "garbage.bin").write_bytes(b"\x00not an smie file\xff" * 8)
    (d / "empty-dir").mkdir()
    (d / "out").mkdir()
    return {"garbage": d / "garbage.bin", "dir": d / "empty-dir", "out": d / "out"}


def missing(files: dict[str, Path]) -> Path:
    """A path that does not exist, new at each call (an accepted output path may be created by its command)."""
    missing.count = getattr(missing, "count", 0) + 1
    return files["out"].parent / f"no-{missing.count}" / "such.h5"


def _value_for(name: str, p: click.Parameter, files: dict[str, Path]) -> str:
    t = p.type
    if isinstance(t, click.Path):
        if not t.exists:
            return str(files["out"] / f"{name}-{p.name}{'' if not t.file_okay else '.out'}")
        return str(files["garbage"] if t.file_okay else files["dir"])
    if isinstance(t, click.Choice):
        return str(t.choices[0])
    return STRINGS.get(p.name, "x")


def _flag(p: click.Parameter) -> list[str]:
    return [p.opts[0]] if isinstance(p, click.Option) else []


def base_args(name: str, cmd: click.Command, files: dict[str, Path], skip: str | None = None) -> list[str]:
    """Required parameters filled with parse-valid values (garbage inputs), plus ``BASE``; ``skip`` left out."""
    args: list[str] = []
    extra = BASE.get(name, lambda f: [])(files)
    for p in cmd.params:
        if p.name == skip or not p.required or (isinstance(p, click.Option) and p.opts[0] in extra):
            continue
        args += [*_flag(p), _value_for(name, p, files)]
    return args + [str(a) for a in extra]


def with_value(name: str, cmd: click.Command, p: click.Parameter, value: str, files) -> list[str]:
    args = base_args(name, cmd, files, skip=p.name)
    if isinstance(p, click.Option) and p.opts[0] in args:  # a BASE option under test: replace its value
        i = args.index(p.opts[0])
        del args[i:i + 2]
    return [*args, *_flag(p), value] if isinstance(p, click.Option) else [value, *args]


def run(name: str, args: list[str]):
    return CliRunner().invoke(main, [name, *args])


def assert_clean(result, what: str) -> None:
    out = result.output
    assert isinstance(result.exception, (SystemExit, type(None))), f"{what}: unhandled {result.exception!r}\n{out}"
    assert "Traceback" not in out, f"{what}: traceback\n{out}"
    if result.exit_code != 0:
        last = [ln for ln in out.splitlines() if ln.strip()][-1]
        assert last.startswith("Error: "), f"{what}: exit {result.exit_code} without a clean Error line\n{out}"
        assert out.count("Error: ") == 1, f"{what}: several errors\n{out}"


def test_every_number_and_path_option_is_typed():
    """What the walk relies on: no bare int/float option (unranged), no untyped number-like option."""
    loose = [(name, p.name, p.type) for name, cmd in commands() for p in cmd.params
             if type(p.type) in (click.types.IntParamType, click.types.FloatParamType)]
    assert not loose, f"give these a click.IntRange / Real range: {loose}"


def test_base_command_lines_stop_cleanly_at_their_garbage_input(files):
    for name, cmd in commands():
        if name == "splits":  # reads nothing
            continue
        result = run(name, base_args(name, cmd, files))
        assert_clean(result, f"{name} (base)")
        assert result.exit_code == 1, f"{name} (base) should stop at its garbage input:\n{result.output}"


def test_every_numeric_option_refuses_or_survives_bad_values(files):
    counts: Counter = Counter()
    table: list[str] = []
    for name, cmd in commands():
        for p in cmd.params:
            if not is_numeric(p):
                continue
            outcomes = []
            for value in INT_VALUES if is_int(p) else FLOAT_VALUES:
                result = run(name, with_value(name, cmd, p, value, files))
                what = f"{name} {p.opts[0] if p.opts else p.name} {value}"
                assert_clean(result, what)
                if value in ALWAYS_REFUSED:
                    assert result.exit_code == 2, f"{what} must be refused at parsing:\n{result.output}"
                if result.exit_code == 2:
                    assert any(o in result.output for o in p.opts), f"{what}: the error must name the option"
                outcomes.append("refused" if result.exit_code == 2 else "accepted")
                counts[outcomes[-1]] += 1
            table.append(f"| `{name}` | `{p.opts[0]}` | `{describe(p.type)}` | " + " | ".join(outcomes) + " |")
    print(f"\nnumeric options: {len(table)}, values walked: {sum(counts.values())} ({dict(counts)})")
    print("\n".join(table))
    assert len(table) >= 60 and counts["refused"] > counts["accepted"]


def test_every_path_option_refuses_or_survives_bad_paths(files):
    counts: Counter = Counter()
    table: list[str] = []
    for name, cmd in commands():
        for p in cmd.params:
            t = p.type
            if not isinstance(t, click.Path):
                continue
            wrong = VISUAL_CACHE if p.name == "text" else TEXT_CACHE
            outcomes = []
            for case, value in (("missing", missing(files)), ("directory", files["dir"]), ("wrong kind", wrong)):
                result = run(name, with_value(name, cmd, p, str(value), files))
                what = f"{name} {p.opts[0] if isinstance(p, click.Option) else p.name.upper()} {case}"
                assert_clean(result, what)
                must_refuse = {"missing": t.exists, "directory": not t.dir_okay, "wrong kind": not t.file_okay}[case]
                if must_refuse:
                    assert result.exit_code == 2, f"{what} must be refused at parsing:\n{result.output}"
                outcomes.append("refused" if result.exit_code == 2 else "clean error" if result.exit_code else "ok")
                counts[outcomes[-1]] += 1
            kind = ("input " if t.exists else "output ") + ("file" if not t.dir_okay else "dir" if not t.file_okay
                                                            else "file or dir")
            table.append(f"| `{name}` | `{p.opts[0] if isinstance(p, click.Option) else p.name.upper()}` | {kind} | "
                         + " | ".join(outcomes) + " |")
    print(f"\npath options: {len(table)}, values walked: {sum(counts.values())} ({dict(counts)})")
    print("\n".join(table))
    assert len(table) >= 30


@pytest.mark.parametrize("args, both", [
    (["fit-estimator", "--epochs", "10", "--warmup", "15"], ("--epochs 10", "--warmup 15")),
    (["fit-estimator", "--epochs", "15"], ("--epochs 15", "--warmup 15")),
    (["pretrain-backbone", "--val-fraction", "0.5", "--test-fraction", "0.5"], ("--val-fraction", "--test-fraction")),
])
def test_cross_option_rules_name_both_options(files, args, both):
    name, rest = args[0], args[1:]
    result = run(name, [*base_args(name, main.commands[name], files), *rest])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert all(b in result.output for b in both), result.output
    ok = run(name, [*base_args(name, main.commands[name], files), *rest[:2]] + (["--warmup", "0"] if name ==
                                                                                "fit-estimator" else []))
    assert ok.exit_code == 1, ok.output  # the same values with the rule satisfied pass parsing
