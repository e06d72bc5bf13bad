"""The embedded default data set: procedurally generated (SYNTHETIC, not recorded) skeleton actions.

Why it exists: ``smie quickstart`` must run on a fresh machine with no data set downloaded, and the real
skeleton corpora (NTU, PKU-MMD) may not be redistributed. This module draws a small action set by forward
kinematics of a rest-pose Kinect v2 skeleton (the ``ntu-25`` layout: 25 joints, metres, y up, the subject facing
the camera along -z with its right side at +x) driven by per-joint angle trajectories. Classes have plain English
names and related classes share motion primitives (left/right mirrors; the same raised arm for "raise" and
"wave"; the same bent knees for "squat" and "sit"), so transferring to an unseen class through its name is
meaningful, as in zero-shot skeleton recognition on real data.

Every sample varies: its subject (10 simulated people with their own size, limb proportions, tempo and
amplitude), speed, amplitude, valid length and start offset, global rotation about the vertical axis, position
in front of the camera, idle sway of spine and arms, and Gaussian joint noise. Everything is drawn from one
seeded generator, so a seed gives the same bytes.

Output: an ``.npz`` in the generic ``npz`` format read by :mod:`smie.pipeline.data.readers`: ``data`` (N, C, T, V, M)
float32 with M = 2 (the second body all zeros) and frames past ``lengths`` zero, ``label`` (N,) int64,
``class_names`` (K,), ``layout`` ``"ntu-25"``, ``dataset`` ``"synthetic"``, ``lengths`` (N,) int32,
``subject`` (N,) int32 and ``sample_id`` (N,); plain arrays (strings as unicode arrays), loadable without pickle.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from smie.features.store import SmieError, atomic_path
from smie.pipeline.data.synthetic_motions import CLASSES, MOTIONS

NUM_SUBJECTS = 10
_D = np.pi / 180.0
# (joint, parent, rest offset in metres) in forward-kinematics order; 0-based Kinect v2 indices.
_REST = (
    (0, -1, (0.0, 0.0, 0.0)), (1, 0, (0.0, 0.25, 0.0)), (20, 1, (0.0, 0.22, 0.0)), (2, 20, (0.0, 0.08, 0.0)),
    (3, 2, (0.0, 0.14, 0.0)),
    (4, 20, (-0.18, -0.02, 0.0)), (5, 4, (0.0, -0.28, 0.0)), (6, 5, (0.0, -0.25, 0.0)), (7, 6, (0.0, -0.07, 0.0)),
    (21, 7, (0.0, -0.07, 0.0)), (22, 6, (0.02, -0.06, -0.03)),
    (8, 20, (0.18, -0.02, 0.0)), (9, 8, (0.0, -0.28, 0.0)), (10, 9, (0.0, -0.25, 0.0)), (11, 10, (0.0, -0.07, 0.0)),
    (23, 11, (0.0, -0.07, 0.0)), (24, 10, (-0.02, -0.06, -0.03)),
    (12, 0, (-0.09, -0.05, 0.0)), (13, 12, (0.0, -0.42, 0.0)), (14, 13, (0.0, -0.40, 0.0)),
    (15, 14, (0.0, -0.06, -0.10)),
    (16, 0, (0.09, -0.05, 0.0)), (17, 16, (0.0, -0.42, 0.0)), (18, 17, (0.0, -0.40, 0.0)),
    (19, 18, (0.0, -0.06, -0.10)),
)
_ARM_JOINTS = (5, 6, 7, 9, 10, 11, 21, 22, 23, 24)
_LEG_JOINTS = (13, 14, 15, 17, 18, 19)
_FEET = (14, 15, 18, 19)


@dataclass(frozen=True)
class SyntheticConfig:
    """``per_class`` samples of each class, ``num_frames`` frames each (T), joint noise std ``noise`` metres.

    ``classes`` picks a subset of :data:`smie.pipeline.data.synthetic_motions.CLASSES` by name (all when None).
    """

    out: Path
    per_class: int = 40
    num_frames: int = 60
    seed: int = 0
    noise: float = 0.02
    classes: tuple[str, ...] | None = None


def _rot(axis: int, a: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) about x (0), y (1) or z (2) by angles ``a`` (...,) radians."""
    c, s = np.cos(a), np.sin(a)
    R = np.zeros(a.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    R[..., axis, axis] = 1.0
    R[..., i, i], R[..., i, j], R[..., j, i], R[..., j, j] = c, -s, s, c
    return R


def _euler(ang: np.ndarray) -> np.ndarray:
    """(..., 3) angles (x, y, z) -> Ry @ Rx @ Rz: flex about x, then twist about z, yaw outermost."""
    return _rot(1, ang[..., 1]) @ _rot(0, ang[..., 0]) @ _rot(2, ang[..., 2])


def forward_kinematics(ang: np.ndarray, yaw: np.ndarray, lift: np.ndarray, bone_scale: np.ndarray) -> np.ndarray:
    """Joint positions (T, V, 3) with the feet grounded at y = 0.

    ``ang`` (T, V, 3) local angles in radians (at joint 0 they bend the spine only, so the hips stay level);
    ``yaw`` (T,) body heading; ``lift`` (T, 3) body translation in its own frame added after grounding (jump
    height, a step forward); ``bone_scale`` (V,) multiplies each joint's rest offset.
    """
    T = ang.shape[0]
    local = _euler(ang)
    root = _rot(1, yaw)
    G = np.zeros((T, 25, 3, 3))
    P = np.zeros((T, 25, 3))
    G[:, 0] = root
    for j, parent, off in _REST[1:]:
        frame = root @ local[:, 0] if parent == 0 and j == 1 else G[:, parent]
        P[:, j] = P[:, parent] + frame @ (np.asarray(off) * bone_scale[j])
        G[:, j] = frame @ local[:, j]
    P[:, :, 1] -= P[:, _FEET, 1].min(axis=1, keepdims=True)
    return P + (root @ lift[:, :, None])[:, None, :, 0]


def _subjects(rng: np.random.Generator) -> list[dict]:
    return [
        dict(size=rng.uniform(0.88, 1.12), arm=rng.uniform(0.93, 1.07), leg=rng.uniform(0.93, 1.07),
             tempo=rng.uniform(0.85, 1.15), amp=rng.uniform(0.9, 1.1))
        for _ in range(NUM_SUBJECTS)
    ]


def _sample(name: str, subject: dict, T: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """One sequence (C, T, V) float32 of class ``name`` and its valid length (frames past it are zero)."""
    length = int(rng.integers(int(0.75 * T), T + 1))
    dur = min(length, max(8.0, length * rng.uniform(0.55, 0.9) / subject["tempo"]))
    start = rng.uniform(0.0, length - dur)
    t = np.arange(length, dtype=np.float64)
    u = np.clip((t - start) / dur, 0.0, 1.0)
    ang = np.zeros((length, 25, 3))
    yaw = np.full(length, rng.uniform(-40.0, 40.0) * _D)
    lift = np.zeros((length, 3))
    params = dict(amp=subject["amp"] * rng.uniform(0.8, 1.1), cycles=int(rng.integers(2, 5)))
    MOTIONS[name](u, ang, yaw, lift, params)
    tt = t / max(length - 1, 1)
    for joint, scale in ((0, 3.0), (20, 2.0), (2, 4.0), (4, 5.0), (8, 5.0)):
        w, ph = rng.uniform(0.5, 2.0), rng.uniform(0, 2 * np.pi, 2)
        ang[:, joint, 0] += scale * _D * np.sin(2 * np.pi * w * tt + ph[0])
        ang[:, joint, 2] += scale * _D * 0.5 * np.sin(2 * np.pi * w * tt + ph[1])
    bone_scale = np.full(25, subject["size"] * rng.uniform(0.98, 1.02))
    bone_scale[list(_ARM_JOINTS)] *= subject["arm"]
    bone_scale[list(_LEG_JOINTS)] *= subject["leg"]
    pos = forward_kinematics(ang, yaw, lift, bone_scale)
    pos += np.array([rng.uniform(-0.4, 0.4), -rng.uniform(0.7, 1.0), rng.uniform(2.5, 3.5)])
    pos += rng.normal(0.0, noise, pos.shape)
    out = np.zeros((3, T, 25), np.float32)
    out[:, :length] = pos.transpose(2, 0, 1)
    return out, length


def generate_synthetic(cfg: SyntheticConfig) -> Path:
    """Draw the data set described by ``cfg`` and write it atomically to ``cfg.out`` (an ``.npz``); return the path."""
    names = tuple(CLASSES) if cfg.classes is None else tuple(cfg.classes)
    unknown = [n for n in names if n not in MOTIONS]
    if unknown:
        raise SmieError(f"synthetic classes {unknown} are unknown; known: {', '.join(CLASSES)}")
    if cfg.per_class < 1 or cfg.num_frames < 16:
        raise SmieError(f"synthetic data needs per_class >= 1 and num_frames >= 16 (got {cfg.per_class}, "
                        f"{cfg.num_frames})")
    rng = np.random.default_rng(cfg.seed)
    subjects = _subjects(rng)
    N, C, T, V, M = len(names) * cfg.per_class, 3, cfg.num_frames, 25, 2
    data = np.zeros((N, C, T, V, M), np.float32)
    label = np.repeat(np.arange(len(names), dtype=np.int64), cfg.per_class)
    subject = np.zeros(N, np.int32)
    lengths = np.zeros(N, np.int32)
    for i, k in enumerate(tqdm(label, desc="synthetic", unit="sample", disable=None, leave=False)):
        subject[i] = (i % cfg.per_class) % NUM_SUBJECTS
        data[i, :, :, :, 0], lengths[i] = _sample(names[k], subjects[subject[i]], T, cfg.noise, rng)
    sample_id = np.array([f"syn_a{k:02d}_s{s:02d}_r{i % cfg.per_class:03d}" for i, (k, s) in
                          enumerate(zip(label, subject))])
    out = Path(cfg.out)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh, data=data, label=label, class_names=np.array(names), layout=np.array("ntu-25"),
                dataset=np.array("synthetic"), lengths=lengths, subject=subject, sample_id=sample_id,
            )
    return out


__all__ = ["SyntheticConfig", "generate_synthetic", "forward_kinematics", "CLASSES"]
