"""``smie --help`` and every command's ``--help`` stay instant: the CLI imports no heavy module (torch, h5py,
sentence-transformers) before a command runs. (Moved out of test_cli.py, whose chain is slow, so the default run
checks it.)"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_help_is_instant_and_imports_nothing_heavy():
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "import sys; from smie import cli; cli.main(['--help'], standalone_mode=False); "
                           "print(sorted(m for m in ('torch', 'h5py', 'sentence_transformers') if m in sys.modules))"],
                          capture_output=True, text=True, check=True)
    assert proc.stdout.strip().endswith("[]"), proc.stdout
    assert time.perf_counter() - t0 < 10


def test_every_command_help_imports_nothing_heavy():
    code = ("import sys; from smie import cli\n"
            "for name in sorted(cli.main.commands):\n"
            "    try:\n"
            "        cli.main([name, '--help'], standalone_mode=False)\n"
            "    except SystemExit:\n"
            "        pass\n"
            "print(len(cli.main.commands), sorted(m for m in ('torch', 'h5py', 'sentence_transformers', 'numpy') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    count, heavy = proc.stdout.strip().splitlines()[-1].split(" ", 1)
    assert int(count) >= 19 and heavy == "[]", proc.stdout[-2000:]


def test_the_console_script_prints_a_warning_as_one_line():
    """``smie`` (``smie.cli:run``) shows ``Warning: <message>``, not Python's file:line and source line."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    assert "smie = smie.cli:run" in cfg["options.entry_points"]["console_scripts"]
    assert "run()" in (REPO / "__main__.py").read_text()
    code = ("import sys, warnings; from smie import cli\n"
            "def hello():\n    warnings.warn('the validation curve never rose above chance')\n"
            "    warnings.warn('old option', FutureWarning)\n"
            "cli.main.command('hello')(hello)\n"
            "sys.argv = ['smie', 'hello']\n"
            "cli.run()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ("Warning: the validation curve never rose above chance\n"
                           "Warning: FutureWarning: old option\n"), proc.stderr
