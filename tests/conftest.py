"""Shared fixtures: where ../shared lives, and offline settings for every test."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

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
