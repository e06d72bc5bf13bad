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


# --- shared builders of tiny seeded caches (real writers, real HDF5) ---------------------------------------------

STAGE_NAMES = tuple(f"action {i}" for i in range(16))
SKELETON_SPLIT = "random:2:seed=0"
"""The split :func:`write_skeletons_and_text`'s data is trained and extracted on (8 classes, 2 unseen)."""


def stage_world(seed=0, D=32, E=8, pos=False, per=30):
    """30 classes whose features are a fixed random map of their semantics (so unseen classes are learnable):
    (sem (30, E or 2E), feats (N, D), masked (N, 3, D), labels (N,)) as torch tensors.

    With ``pos`` each class is a (verb, noun) combination of 5 verbs x 6 nouns and its semantics the
    concatenation [verb | noun]; unseen classes are unseen combinations of seen verbs and nouns.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    unit = lambda n: torch.nn.functional.normalize(torch.randn(n, E, generator=g), dim=1)  # noqa: E731
    if pos:
        verbs, nouns = unit(5), unit(6)
        sem = torch.stack([torch.cat([verbs[i], nouns[j]]) for i in range(5) for j in range(6)])
    else:
        sem = unit(30)
    labels = torch.arange(30).repeat_interleave(per)
    W = torch.randn(sem.shape[1], D, generator=g)
    feats = torch.relu(sem[labels] @ W + 0.3 * torch.randn(len(labels), D, generator=g))
    masked = feats[:, None] + 0.1 * torch.randn(len(labels), 3, D, generator=g)
    return sem, feats, masked, labels


def write_stage_caches(tmp_path: Path, seed: int = 0, split_unseen=(0, 1, 2, 3), kinds=("label",), pos=False):
    """A tiny visual cache (16 classes x 20 samples, D 12, 2 masked views; split ``file:test<seed>``, every 5th
    seen sample ``seen_val``) and a text cache of ``kinds`` (E 6; with ``pos`` the kinds take the two halves of
    a 12-d semantic), written by the real writers under ``tmp_path``; returns their paths."""
    import numpy as np

    from smie.features.text import TextCache, TextKind, write_text
    from smie.features.visual import VisualCache, write_visual

    rng = np.random.default_rng(seed)
    K, per, D, E = 16, 20, 12, 6
    sem = rng.normal(size=(K, (2 if pos else 1) * E))
    labels = np.repeat(np.arange(K), per)
    feats = np.maximum(sem[labels] @ rng.normal(size=(D, sem.shape[1])).T + 0.3 * rng.normal(size=(len(labels), D)), 0)
    masked = feats[:, None] + 0.1 * rng.normal(size=(len(labels), 2, D))
    unseen = list(split_unseen)
    seen = [k for k in range(K) if k not in unseen]
    split = dict(id=f"file:test{seed}", num_classes=K, seen=seen, unseen=unseen, val_unseen=seen[:2])
    part = np.where(np.isin(labels, unseen), 3, np.where(np.arange(len(labels)) % 5 == 0, 1, 0)).astype(np.int8)
    vc = VisualCache(feats.astype(np.float32), masked.astype(np.float32), labels,
                     tuple(f"s{i:04d}" for i in range(len(labels))), part, STAGE_NAMES, split,
                     {"variant": "official", "k": 15, "drop": 15, "views": 2, "seed": 0},
                     {"protocol": None, "val_fraction": 0.2, "seed": 0}, "ab" * 32, "stgcn", {}, "cd" * 32)
    write_visual(tmp_path / "visual.h5", vc, {"config": {"test": True}})
    groups = {}
    for i, kind in enumerate(kinds):
        part_sem = sem[:, i * E:(i + 1) * E] if pos else sem
        emb = (part_sem / np.linalg.norm(part_sem, axis=1, keepdims=True))[:, None].astype(np.float32)
        groups[kind] = TextKind(emb, tuple((f"{kind} {n}",) for n in STAGE_NAMES), np.ones(K, np.int32))
    write_text(tmp_path / "text.h5", TextCache(STAGE_NAMES, np.arange(K), groups, "test-encoder", "test", "ef" * 32, E),
               {"config": {}})
    return tmp_path / "visual.h5", tmp_path / "text.h5"


def write_skeletons_and_text(d: Path):
    """A tiny seeded skeleton cache (8 classes x 8 samples, 12 frames, kinect-v1-20) and a matching text cache
    (kind ``label``, E 16) under ``d``; returns their paths."""
    import numpy as np

    from smie.features.skeletons import SkeletonSet, write_skeletons
    from smie.features.text import TextCache, TextKind, write_text

    K, PER, T, V, M = 8, 8, 12, 20, 1
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(K), PER)
    data = rng.normal(size=(K * PER, 3, T, V, M)).astype(np.float32)
    data[:, 0] += labels[:, None, None, None] * 0.3
    sset = SkeletonSet(data=data, labels=labels, lengths=np.full(K * PER, T, np.int32),
                       sample_ids=tuple(f"s{i:03d}" for i in range(K * PER)),
                       class_names=tuple(f"class {k}" for k in range(K)), layout="kinect-v1-20",
                       dataset="synthetic", meta={})
    write_skeletons(d / "sk.h5", sset, {"test": True})
    emb = rng.normal(size=(K, 1, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=-1, keepdims=True)
    kind = TextKind(emb, tuple((n,) for n in sset.class_names), np.ones(K, np.int32))
    write_text(d / "text.h5", TextCache(sset.class_names, np.arange(K), {"label": kind}, "test", "test", "0" * 64, 16),
               {"test": True})
    return d / "sk.h5", d / "text.h5"


@pytest.fixture(scope="session")
def stage_caches():
    """:func:`write_stage_caches`: ``stage_caches(dir, seed=0, split_unseen=(0, 1, 2, 3), kinds=("label",),
    pos=False) -> (visual, text)``."""
    return write_stage_caches


@pytest.fixture(scope="session")
def world():
    """:func:`stage_world`: ``world(seed=0, D=32, E=8, pos=False, per=30) -> (sem, feats, masked, labels)``."""
    return stage_world


@pytest.fixture(scope="session")
def skeletons_and_text():
    """:func:`write_skeletons_and_text`: ``skeletons_and_text(dir) -> (skeletons, text)``."""
    return write_skeletons_and_text
