"""expand-labels against a loopback OpenAI-style server that misbehaves on purpose: retries, resume, no leaks."""
from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from smie.features.store import SmieError
from smie.pipeline.data.classes import class_table
from smie.prompts.descriptions import read_descriptions
from smie.prompts.expand import ExpandConfig, expand_labels
from smie.prompts.llm_client import LLMUnavailable

SECRET = "sk-test-DO-NOT-LEAK-5f3a9c"
REPO = Path(__file__).resolve().parents[1]
# Generous bounds that only stop a broken test from hanging; nothing here waits for them on a passing run.
_HOLD_LIMIT = 300.0
# The client's timeout: only the ``timeout`` fault (which waits for it) runs into it, so it can be long enough
# that a loaded machine never turns a slow loopback answer into an extra, uncounted retry.
_CLIENT_TIMEOUT = 3.0


class FaultServer:
    """Speaks just enough of POST /v1/chat/completions; the first calls follow ``plan``, the rest ``after``.

    Faults: ``timeout`` (never answers: holds the request until the client gives up and hangs up), ``429``,
    ``500``, ``503``, ``401``, ``malformed`` (broken JSON), ``empty`` (empty content), ``null`` (content null),
    ``nochoices``; ``ok`` answers with a text naming the quoted label of the prompt.

    ``hold_from=n``: call ``n`` (0-based) and every later one are held, unanswered, until ``release`` is set;
    ``held`` is set when call ``n`` has arrived. No fault depends on how fast either side runs.
    """

    def __init__(self, plan=(), after="ok", delay=0.0, hold_from=None):
        self.plan = list(plan)
        self.after = after
        self.delay = delay
        self.hold_from = hold_from
        self.held = threading.Event()
        self.release = threading.Event()
        self.closing = threading.Event()
        self.calls: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with outer.lock:
                    n = len(outer.calls)
                    outer.calls.append({"body": body, "auth": self.headers.get("Authorization")})
                    fault = outer.plan[n] if n < len(outer.plan) else outer.after
                if outer.hold_from is not None and n >= outer.hold_from:
                    outer.held.set()
                    outer.release.wait(_HOLD_LIMIT)
                outer.respond(self, fault, body, n)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _until_hangup(self, h):
        """Wait, without answering, until the client closes the connection (its timeout ran out)."""
        deadline = time.monotonic() + _HOLD_LIMIT
        while not self.closing.is_set() and time.monotonic() < deadline:
            if select.select([h.connection], [], [], 0.05)[0]:
                return  # EOF (the client hung up) or, never expected, more bytes: either way stop here

    def respond(self, h, fault, body, n):
        time.sleep(self.delay)
        if fault == "timeout":
            self._until_hangup(h)
            return
        if fault in ("429", "500", "503", "401"):
            payload = json.dumps({"error": {"message": f"fault {fault}; you sent {h.headers.get('Authorization')}",
                                            "type": "test"}}).encode()
            h.send_response(int(fault))
            if fault == "429":
                h.send_header("Retry-After", "0")
        elif fault == "malformed":
            payload = b'{"id": "x", "choices": [{"message": '
            h.send_response(200)
        else:
            prompt = body["messages"][0]["content"]
            label = re.search(r'"([^"]+)"', prompt).group(1)
            content = {"ok": f'"A person performs {label}, call {n}."', "empty": "  \n ", "null": None}.get(fault)
            choices = [] if fault == "nochoices" else [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]
            payload = json.dumps({"id": f"c{n}", "object": "chat.completion", "created": 0, "model": body["model"],
                                  "choices": choices}).encode()
            h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        try:
            h.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.closing.set()
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def _secret_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def _cfg(tmp_path, server, **kw):
    base = dict(model="fake-model", out=tmp_path / "desc.jsonl", dataset="msr", base_url=server.base_url,
                timeout=_CLIENT_TIMEOUT, max_retries=6, backoff=0.01, max_wait=5.0, progress=False)
    base.update(kw)
    return ExpandConfig(**base)


def _check_complete(path: Path, kinds=("action",), samples=1):
    descs = read_descriptions(path)
    names = class_table("msr")
    keys = [d.key for d in descs]
    assert len(keys) == len(set(keys))
    assert sorted(keys) == sorted((c, k, s) for c in range(len(names)) for k in kinds for s in range(samples))
    for d in descs:
        assert d.label == names[d.class_id] and d.text.strip()
        assert d.label in d.text and not d.text.startswith('"')
    text = path.read_text(encoding="utf-8")
    assert SECRET not in text
    return descs


def test_transient_faults_and_bad_replies_are_retried(tmp_path):
    plan = ["timeout", "429", "500", "malformed", "empty", "null", "nochoices", "503"]
    with FaultServer(plan=plan) as srv:
        res = expand_labels(_cfg(tmp_path, srv, max_retries=len(plan)))
    assert res.written == 20 and res.failed == 0 and res.skipped_done == 0
    descs = _check_complete(res.path)
    assert len(srv.calls) == 20 + len(plan)
    assert all(c["auth"] == f"Bearer {SECRET}" for c in srv.calls)
    d0 = next(d for d in descs if d.class_id == 0)
    assert d0.host == srv.base_url.split("/")[2] and d0.model == "fake-model"
    assert d0.seed != 0, "a retry after a bad reply must change the seed (recorded)"
    first_seeds = [c["body"]["seed"] for c in srv.calls[:4]]
    assert first_seeds == [0, 0, 0, 0], "transient errors retry the same request"


def test_persistent_outage_stops_with_clear_error(tmp_path):
    with FaultServer(after="500") as srv:
        with pytest.raises(LLMUnavailable) as err:
            expand_labels(_cfg(tmp_path, srv, max_retries=2))
    msg = str(err.value)
    assert "HTTP 500" in msg and "gave up after 3 attempts" in msg and "class 0" in msg and "high arm wave" in msg
    assert SECRET not in msg
    assert len(srv.calls) == 3
    assert (tmp_path / "desc.jsonl").read_text() == ""


def test_total_wait_is_capped(tmp_path):
    with FaultServer(after="503") as srv:
        t0 = time.monotonic()
        with pytest.raises(LLMUnavailable, match=r"s of waiting") as err:
            expand_labels(_cfg(tmp_path, srv, max_retries=50, backoff=0.1, max_wait=0.5))
    attempts, waited = re.search(r"gave up after (\d+) attempts and ([\d.]+) s of waiting", str(err.value)).groups()
    assert 1 < int(attempts) < 51 and float(waited) <= 0.5 and len(srv.calls) == int(attempts)
    # Uncapped, 50 retries from 0.1 s doubling would sleep for minutes (25 s before the 9th try); the bound only has
    # to tell that apart, not time a loaded machine.
    assert time.monotonic() - t0 < 30


def test_refusal_is_not_retried_and_key_is_scrubbed(tmp_path):
    with FaultServer(after="401") as srv:
        with pytest.raises(SmieError) as err:
            expand_labels(_cfg(tmp_path, srv))
    assert "HTTP 401" in str(err.value) and "***" in str(err.value)
    assert SECRET not in str(err.value)
    assert len(srv.calls) == 1


def test_unexpected_client_error_is_scrubbed_and_unchained():
    """A fault outside the timeout/connection/status families (injected) still leaves only a scrubbed message."""
    from smie.prompts.llm_client import ChatClient

    client = ChatClient("http://127.0.0.1:9/v1", timeout=0.5, max_retries=2, backoff=0.01, max_wait=1.0)

    def explode(**kwargs):
        raise ValueError(f"odd failure with header Authorization: Bearer {SECRET}")

    client.client.chat.completions.create = explode
    with pytest.raises(SmieError) as err:
        client.complete("fake-model", "prompt", 0.0, 10, 0, "wave")
    assert "ValueError" in str(err.value) and "***" in str(err.value) and SECRET not in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_unusable_replies_are_counted_not_stored(tmp_path, caplog):
    classes = tmp_path / "classes.txt"
    classes.write_text("wave\nclap\n")
    with FaultServer(plan=["empty"] * 3, after="ok") as srv:
        res = expand_labels(_cfg(tmp_path, srv, dataset=None, classes_file=classes, max_retries=2))
    assert (res.written, res.failed) == (1, 1)
    assert [d.label for d in read_descriptions(res.path)] == ["clap"]
    assert "unusable reply" in caplog.text and "empty" in caplog.text
    with FaultServer() as srv:
        res2 = expand_labels(_cfg(tmp_path, srv, dataset=None, classes_file=classes))
    assert (res2.written, res2.skipped_done, res2.failed) == (1, 1, 0)
    assert sorted(d.label for d in read_descriptions(res.path)) == ["clap", "wave"]


def test_resume_skips_done_and_cuts_torn_line(tmp_path):
    with FaultServer() as srv:
        cfg = _cfg(tmp_path, srv, kinds=("action", "motion"), samples=2)
        expand_labels(cfg)
        lines = cfg.out.read_text(encoding="utf-8").splitlines(keepends=True)
        cfg.out.write_text("".join(lines[:7]) + lines[7][:25], encoding="utf-8")
        with pytest.warns(UserWarning, match="line 8 is incomplete"):
            assert len(read_descriptions(cfg.out)) == 7
        n_calls = len(srv.calls)
        res = expand_labels(cfg)
    assert (res.written, res.skipped_done) == (80 - 7, 7)
    assert len(srv.calls) == n_calls + 73
    descs = _check_complete(cfg.out, kinds=("action", "motion"), samples=2)
    assert {d.seed for d in descs if d.sample == 1} == {1}


def test_other_class_list_is_refused(tmp_path):
    with FaultServer() as srv:
        expand_labels(_cfg(tmp_path, srv))
        with pytest.raises(SmieError, match="class 0 as 'high arm wave'"):
            expand_labels(_cfg(tmp_path, srv, dataset="ntu60"))


def test_no_key_without_base_url_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(SmieError, match="OPENAI_API_KEY"):
        expand_labels(ExpandConfig(model="gpt-4o-mini", out=tmp_path / "d.jsonl", dataset="msr"))


def test_local_server_without_key_uses_placeholder(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with FaultServer() as srv:
        res = expand_labels(_cfg(tmp_path, srv))
    assert res.written == 20
    assert srv.calls[0]["auth"].startswith("Bearer ") and SECRET not in srv.calls[0]["auth"]


_CHILD = """
import signal
import sys
from pathlib import Path
# Ctrl-C as in a terminal: a job started in the background by a non-interactive shell (CI scripts run with &)
# inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler
signal.signal(signal.SIGINT, signal.default_int_handler)
from smie.prompts.expand import ExpandConfig, expand_labels
expand_labels(ExpandConfig(model="fake", out=Path(sys.argv[1]), dataset="msr", base_url=sys.argv[2],
                           kinds=("action", "motion"), timeout=600.0, progress=False))
"""


def test_ctrl_c_keeps_everything_finished(tmp_path):
    """Ctrl-C with ``finished`` descriptions written and one request in flight keeps exactly those; a rerun
    does the rest. The interrupt is sent on an event, not after a while: the child asks for one description
    at a time and appends (fsyncs) each before asking for the next, so when the server has received, and is
    holding, request ``finished + 1``, exactly ``finished`` are done. (Its timeout is long, so it never retries.)"""
    finished = 5
    out = tmp_path / "desc.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with FaultServer(hold_from=finished) as srv:
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(out), srv.base_url], cwd=REPO, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + _HOLD_LIMIT
            while not srv.held.wait(0.1):
                if child.poll() is not None or time.monotonic() > deadline:
                    child.kill()
                    pytest.fail(f"the child never reached request {finished + 1} (exit {child.wait()}):\n"
                                f"{child.stderr.read()[-3000:]}")
            assert len(read_descriptions(out)) == finished
            child.send_signal(signal.SIGINT)
            _, err = child.communicate(timeout=_HOLD_LIMIT)
        finally:
            srv.release.set()
            if child.poll() is None:
                child.kill()
                child.communicate()
        assert child.returncode != 0 and "KeyboardInterrupt" in err, err[-3000:]
        assert f"interrupted: {finished} descriptions written this run are kept" in err and "rerun to resume" in err
        assert SECRET not in err
        kept = read_descriptions(out)
        assert len(kept) == finished and len(srv.calls) == finished + 1
        res = expand_labels(_cfg(tmp_path, srv, kinds=("action", "motion")))
    assert res.skipped_done == finished and res.written == 40 - finished and res.failed == 0
    descs = _check_complete(out, kinds=("action", "motion"))
    assert descs[:finished] == kept, "a resume must not touch what was finished"


def test_nothing_listening_is_a_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = ExpandConfig(model="m", out=tmp_path / "d.jsonl", dataset="msr", base_url=f"http://127.0.0.1:{port}/v1",
                       max_retries=1, backoff=0.01, progress=False)
    with pytest.raises(LLMUnavailable, match=rf"cannot connect to 127.0.0.1:{port}.*gave up after 2 attempts"):
        expand_labels(cfg)


def test_rerun_with_another_template_warns(tmp_path, caplog):
    tdir = tmp_path / "tpl"
    tdir.mkdir()
    (tdir / "action.txt").write_text('# smie-template: action v2\nDefine "{label}" briefly.\n')
    with FaultServer() as srv:
        expand_labels(_cfg(tmp_path, srv))
        res = expand_labels(_cfg(tmp_path, srv, template_dir=tdir))
    assert (res.written, res.skipped_done) == (0, 20)
    assert "20 action descriptions were made with another template or model" in caplog.text


def test_second_writer_is_refused(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    out = tmp_path / "desc.jsonl"
    with FaultServer() as srv, open(out, "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(SmieError, match="another expand-labels run is writing this file"):
            expand_labels(_cfg(tmp_path, srv))
        assert srv.calls == []
