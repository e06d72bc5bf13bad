"""Shared fixtures and builders: where ../shared lives, offline settings for every test, and the tiny seeded
caches, checkpoints and files that several test modules build (test modules import nothing from each other)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
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


@pytest.fixture(scope="session")
def tiny_skeletons():
    """:func:`write_tiny_skeletons`: ``tiny_skeletons(path, seed=0) -> SkeletonSet``."""
    return write_tiny_skeletons


@pytest.fixture(scope="session")
def tiny_checkpoint():
    """:func:`write_tiny_checkpoint`: ``tiny_checkpoint(path, skeletons, sset, split_spec, train_sha) ->
    (split, partition)``."""
    return write_tiny_checkpoint


# --- the tiny extraction set: skeletons and a narrow ST-GCN checkpoint (test_extract, test_msf, ...) --------

TINY_N, TINY_C, TINY_T, TINY_V, TINY_M, TINY_K = 16, 3, 24, 20, 1, 4
TINY_D, TINY_KEY, TINY_DROP = 64, 6, 6  # 12 of 24 frames left: the official 15 + 15 of 50, scaled down
TINY_PARTITION = {"protocol": None, "val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}


def write_tiny_skeletons(path, seed=0):
    """A seeded random-walk skeleton cache (TINY_N samples of TINY_K classes, TINY_T frames, kinect-v1-20) at
    ``path``; returns its :class:`SkeletonSet`."""
    from smie.features.skeletons import SkeletonSet, write_skeletons

    N, C, T, V, M = TINY_N, TINY_C, TINY_T, TINY_V, TINY_M
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(0, 0.05, (N, C, T, V, M)), axis=2) + rng.normal(0, 1, (N, C, 1, V, M))
    labels = np.arange(N) % TINY_K
    sset = SkeletonSet(
        data=walk.astype(np.float32), labels=labels.astype(np.int64), lengths=np.full(N, T, np.int32),
        sample_ids=tuple(f"seq{i:02d}" for i in range(N)), class_names=("wave", "jump", "sit", "kick"),
        layout="kinect-v1-20", dataset="synthetic", meta={},
    )
    write_skeletons(path, sset, {"test": True})
    return sset


def write_tiny_checkpoint(path, skel_path, sset, split_spec="random:1:seed=0", train_sha=None):
    """A narrow untrained ST-GCN checkpoint (D = TINY_D) for ``sset`` on ``split_spec`` at ``path``, its training
    ids those of the split's ``seen_train`` partition (or ``train_sha``); returns (split, partition codes)."""
    import torch

    from smie.features.store import file_sha256
    from smie.pipeline.data.splits import assign_partitions, resolve_split
    from smie.pipeline.visual.backbones import build_backbone, save_checkpoint
    from smie.pipeline.visual.pretrain import ids_sha256

    torch.manual_seed(0)
    model = build_backbone("stgcn", "kinect-v1-20", "small", hidden_channels=8, hidden_dim=TINY_D)  # narrow: fast
    split = resolve_split(split_spec, TINY_K)
    part = assign_partitions(sset.labels, sset.meta, split, **TINY_PARTITION)
    train = train_sha or ids_sha256(sset.sample_ids[i] for i in np.flatnonzero(part == 0))
    save_checkpoint(path, model, split=split, partition=TINY_PARTITION, class_names=sset.class_names,
                    num_frames=TINY_T, skeleton_sha256=file_sha256(skel_path), provenance={"train_ids_sha256": train})
    return split, part


# --- BVH text (test_bvh, test_custom_layout_e2e) -------------------------------------------------------------

# Hips (root, positions + ZXY), Spine (XYZ order, no positions: OFFSET), Head (YXZ), LeftLeg (positions per joint,
# ZYX order), LeftFoot (one channel); End Sites dropped.
HIERARCHY = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Spine
  {
    OFFSET 0 10 0
    CHANNELS 3 Xrotation Yrotation Zrotation
    JOINT Head
    {
      OFFSET 0 5 0
      CHANNELS 3 Yrotation Xrotation Zrotation
      End Site
      {
        OFFSET 0 3 0
      }
    }
  }
  JOINT LeftLeg
  {
    OFFSET 2 0 0
    CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
    JOINT LeftFoot
    {
      OFFSET 0 -8 0
      CHANNELS 1 Xrotation
      End Site
      {
        OFFSET 0 0 1
      }
    }
  }
}
"""


def bvh_text(frames, hierarchy: str = HIERARCHY, dt: float = 1 / 30) -> str:
    rows = "\n".join(" ".join(f"{v:g}" for v in row) for row in frames)
    return f"{hierarchy}MOTION\nFrames: {len(frames)}\nFrame Time: {dt}\n{rows}\n"


def frame(root=(0, 0, 0), root_zxy=(0, 0, 0), spine_xyz=(0, 0, 0), head=(0, 0, 0), leg_pos=(2, 0, 0),
          leg_zyx=(0, 0, 0), foot_x=0.0) -> list[float]:
    return [*root, *root_zxy, *spine_xyz, *head, *leg_pos, *leg_zyx, foot_x]


def upright(n: int, seed: int = 0) -> list[list[float]]:
    """``n`` frames of a standing rig with small swings (y up), walking along x."""
    rng = np.random.default_rng(seed)
    return [frame(root=(0.5 * t, 9, 0), root_zxy=tuple(rng.normal(0, 5, 3)), spine_xyz=tuple(rng.normal(0, 8, 3)),
                  leg_zyx=tuple(rng.normal(0, 10, 3)), foot_x=float(rng.normal(0, 10))) for t in range(n)]


# --- a custom layout as data (test_layouts_custom, test_custom_layout_e2e) -----------------------------------

# A 7-joint stick figure: pelvis centre, spine and head, two legs of two joints; bones given rooted at the head
# (re-oriented towards the centre on reading).
STICK = {"joint_names": np.array(["pelvis", "spine", "head", "left hip", "left foot", "right hip", "right foot"]),
         "bones": np.array([[0, 1], [1, 2], [3, 0], [4, 3], [5, 0], [6, 5]]), "center": np.array(0),
         "graph_center": np.array(1), "up_axis": np.array("z")}
