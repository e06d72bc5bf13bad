"""Streaming ``smie prepare``: the same bytes for any worker count and chunk size, a SIGKILLed run resumes to the
same bytes, a partial of other inputs is refused; the NTU writer round-trips (synthetic and real files)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from smie.features.skeletons import read_skeletons
from smie.features.store import SmieError
from smie.pipeline.data.prepare import PrepareConfig, prepare
from smie.pipeline.data.prepare_partial import partial_paths
from smie.pipeline.data.readers.ntu import parse_skeleton_file, write_skeleton_file

REPO = Path(__file__).resolve().parents[1]


def ntu_tree(d: Path, n: int, seed: int = 0) -> Path:
    """``n`` NTU files (1-2 bodies, 8-40 frames, a body missing in some frames) with NTU names."""
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        T, M = int(rng.integers(8, 40)), 1 + i % 2
        x = (rng.normal(0, 0.3, (3, 1, 25, M)) + np.cumsum(rng.normal(0, 0.02, (3, T, 25, M)), axis=1)
             + np.array([0, 0, 3.0])[:, None, None, None]).astype(np.float32)
        if M == 2:
            x[:, : T // 3, :, 1] = 0  # the second person enters later
        write_skeleton_file(d / f"S{1 + i // 240:03d}C001P{1 + i % 40:03d}R{1 + (i // 40) % 2:03d}A{1 + i % 120:03d}"
                                f".skeleton", x)
    return d


def test_writer_round_trips_through_the_reader(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (3, 17, 25, 4)).astype(np.float32)
    x[:, 5, :, 1:] = 0  # one body in frame 6
    x[:, 9] = 0  # no body in frame 10
    write_skeleton_file(tmp_path / "S001C001P001R001A001.skeleton", x)
    assert np.array_equal(parse_skeleton_file(tmp_path / "S001C001P001R001A001.skeleton"), x)


@pytest.mark.realdata
def test_writer_round_trips_real_ntu_files(realdata_dir, tmp_path):
    files = sorted(realdata_dir.rglob("*.skeleton"))[:5]
    if not files:
        pytest.skip("no NTU .skeleton files in the real data")
    for f in files:
        x = parse_skeleton_file(f)
        write_skeleton_file(tmp_path / f.name, x)
        assert np.array_equal(parse_skeleton_file(tmp_path / f.name), x), f.name


def test_same_bytes_for_any_worker_count_and_chunk_size(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    raw = ntu_tree(tmp_path / "raw", 30)
    out = tmp_path / "sk.h5"
    blobs = []
    for workers, chunk in ((1, 1024), (2, 4), (1, 7)):
        prepare(PrepareConfig("ntu", raw, out, num_frames=10, workers=workers, chunk_size=chunk))
        blobs.append(out.read_bytes())
        assert sorted(p.name for p in tmp_path.iterdir()) == ["raw", "sk.h5"], "partial files are removed"
    assert blobs[0] == blobs[1] == blobs[2]
    s = read_skeletons(out)
    assert s.data.shape == (30, 3, 10, 25, 2) and s.dataset == "ntu60" and len(set(s.sample_ids)) == 30
    assert "seconds" not in s.provenance and s.provenance["created"].startswith("2023-11-14")
    assert "workers" not in s.provenance["config"]


def test_partial_of_other_settings_is_refused(tmp_path):
    raw = ntu_tree(tmp_path / "raw", 6)
    out = tmp_path / "sk.h5"
    partial, record = partial_paths(out)
    from smie.pipeline.data.prepare_partial import Partial

    Partial(out, key="made-elsewhere").append([], 2, [])
    with pytest.raises(SmieError, match=r"\.sk\.h5\.partial: this partial was made from other inputs"):
        prepare(PrepareConfig("ntu", raw, out, num_frames=10))
    assert partial.exists() and not out.exists()
    prepare(PrepareConfig("ntu", raw, out, num_frames=10, resume=False))
    assert read_skeletons(out).num_samples == 6 and not partial.exists() and not record.exists()


SCRIPT = """
import sys
from pathlib import Path
from smie.pipeline.data.prepare import PrepareConfig, prepare
import smie.pipeline.data.prepare_partial as pp
real = pp.Partial.append
def slow(self, *a, **k):  # widen the window between chunks so the kill lands mid-run
    import time; time.sleep(0.05); return real(self, *a, **k)
pp.Partial.append = slow
prepare(PrepareConfig("ntu", Path(sys.argv[1]), Path(sys.argv[2]), num_frames=10, chunk_size=5,
                      workers=int(sys.argv[3])))
"""


def _prepare(raw: Path, out: Path, workers: int) -> subprocess.Popen:
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000", OMP_NUM_THREADS="1", TQDM_DISABLE="1")
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(raw), str(out), str(workers)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow  # SIGKILL and resume
@pytest.mark.parametrize("workers", [1, 2])
def test_killed_prepare_resumes_to_identical_bytes(tmp_path, workers):
    raw = ntu_tree(tmp_path / "raw", 120)
    out = tmp_path / "out" / "sk.h5"  # the same path for both runs: the provenance records it
    whole = _prepare(raw, out, 1)
    _, err = whole.communicate(timeout=300)
    assert whole.returncode == 0, err[-2000:]
    reference = out.read_bytes()
    out.unlink()

    killed = _prepare(raw, out, workers)
    record = partial_paths(out)[1]
    deadline = time.monotonic() + 300
    while killed.poll() is None and time.monotonic() < deadline:
        if record.exists() and len(json.loads(record.read_text())["chunks"]) >= 3:
            break
        time.sleep(0.01)
    assert killed.poll() is None, "prepare ended before it could be killed"
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    assert not out.exists()
    done = len(json.loads(record.read_text())["chunks"])
    assert 3 <= done < 24

    again = _prepare(raw, out, workers)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-2000:]
    assert out.read_bytes() == reference
    assert not partial_paths(out)[0].exists() and not record.exists()
