"""Shared fixtures: where ../shared lives, and offline settings for every test."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# One torch thread per test process unless the caller says otherwise (read by torch at import, inherited by
# subprocesses): the tests' models are tiny, and on a busy 2-core machine two spinning OpenMP threads made single
# tests 100x slower (test_fit's 1 s learnability test took 108 s at load 8). Results do not depend on it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SMIE_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def realdata_dir() -> Path:
    """``../shared/realdata``; tests that use it skip cleanly when it is absent."""
    path = SHARED / "realdata"
    if not path.is_dir():
        pytest.skip(f"real data not available at {path}")
    return path


@pytest.fixture(scope="session")
def refdata_dir() -> Path:
    """``../shared/refdata``; tests that use it skip cleanly when it is absent."""
    path = SHARED / "refdata"
    if not path.is_dir():
        pytest.skip(f"reference data not available at {path}")
    return path


@pytest.fixture(scope="module")
def one_thread():
    """Run torch on one thread for a test module: tiny models spend their time in thread hand-offs, and on a
    busy 2-core machine two spinning OpenMP threads make them 10-20x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY_SYNSE = dict(train_per_class=12, test_per_class=6, val_rows=40, dim=32, sem_dim=16)


@pytest.fixture(scope="session")
def synse_folders(tmp_path_factory) -> dict:
    """Tiny seeded folders in SynSE's exact layout for 55/5 (``shift_5_r`` with ``*_out.npy`` scores and
    ``shift_val_5_r``; NTU-60 global class ids) and ``semantics.npy``, the class vectors the features follow.
    Read-only: a test that spoils files copies the folder first."""
    from smie.pipeline.visual.synse_synthetic import SynseLayout, write_synse_layout

    return write_synse_layout(tmp_path_factory.mktemp("synse"), SynseLayout(**TINY_SYNSE))
