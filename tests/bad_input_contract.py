"""The bad-input contract shared by the bad-input tests (docs/bad-inputs.md): the command exits non-zero with one
clean ``Error:`` line naming the file and the problem, writes nothing under the final name, and leaves an existing
output byte-for-byte intact. A support module, not a test module."""
from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from smie.cli import main

OLD = b"existing output, must survive\n"


def run_bad(args: list, out: Path, *expect: str) -> str:
    """Run ``smie ARGS`` over a pre-existing ``out``; check the failure contract; return the message."""
    if out.suffix in (".h5", ".pt", ".jsonl"):
        out.write_bytes(OLD)
    else:
        out.mkdir(parents=True, exist_ok=True)
        (out / "keep.txt").write_bytes(OLD)
    before = sorted(p.name for p in out.parent.iterdir())
    result = CliRunner().invoke(main, [str(a) for a in args])
    msg = result.output
    assert result.exit_code != 0, msg
    assert isinstance(result.exception, SystemExit) and "Traceback" not in msg, f"not a clean error: {msg}"
    assert msg.startswith("Error: ") and msg.count("\n") == 1, f"expected one error line: {msg!r}"
    for part in expect:
        assert part.lower() in msg.lower(), f"{part!r} not in {msg!r}"
    assert (out.read_bytes() if out.is_file() else (out / "keep.txt").read_bytes()) == OLD, "output was touched"
    assert sorted(p.name for p in out.parent.iterdir()) == before, "something was left beside the output"
    print("MESSAGE", msg.strip())  # pytest -s shows the messages docs/bad-inputs.md quotes
    return msg


def prepare_args(fmt: str, src: Path, out: Path, *extra) -> list:
    return ["prepare", "--format", fmt, "--input", src, "--out", out, "--frames", "8", *extra]
