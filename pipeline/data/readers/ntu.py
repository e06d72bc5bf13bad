"""NTU RGB+D 60/120 raw ``.skeleton`` files (Kinect v2, 25 joints), as the official release lays them out.

Each file: ``num_frames``; per frame ``num_bodies``; per body one line of 10 body values, ``num_joints`` (25)
and 25 lines of 12 joint values (x y z depthX depthY colorX colorY orientation(4) trackingState).
We keep x y z in metres.

Bodies, as the 2s-AGCN/CrossCLR/AimCLR ``ntu_gendata`` used by SMIE does: a frame's k-th body fills body slot k
(up to 4 slots, the Kinect maximum); a frame with no body is all zeros (preprocessing drops it); then the
``max_bodies`` slots with the largest motion energy (sum over x, y, z of the standard deviation over the slot's
non-zero frames) are kept, most active first. Samples on the official missing-skeleton lists
(``pipeline/data/ntu_missing_skeletons.json``) are skipped and reported, as the usual preprocessing drops them.

The file name ``SsssCcccPpppRrrrAaaa`` gives setup, camera, subject (performer), replication and label A-1.
The data set is ntu60 when every action is A001-A060, else ntu120 (or as ``dataset`` says).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from smie.features.store import SmieError
from smie.pipeline.data.readers.base import RawSample, RawSource, check_finite, class_names_for, list_files, ntu_meta

KINECT_MAX_BODIES = 4
NTU_JOINTS = 25


@lru_cache(maxsize=1)
def missing_skeleton_samples() -> frozenset[str]:
    """Names of the NTU samples on the official missing-skeleton lists."""
    with open(Path(__file__).parents[1] / "ntu_missing_skeletons.json", encoding="utf-8") as fh:
        return frozenset(json.load(fh)["samples"])


def _int(lines: list[str], i: int, path: Path, what: str) -> int:
    if i >= len(lines):
        raise SmieError(f"{path}: line {i + 1}: file ends early (truncated?), expected {what}")
    try:
        return int(lines[i].split()[0])
    except (ValueError, IndexError):
        raise SmieError(f"{path}: line {i + 1}: expected {what}, found {lines[i].strip()[:60]!r}") from None


def parse_skeleton_file(path: Path) -> np.ndarray:
    """The file's bodies as (3, T, 25, 4) float32, body slot k = the k-th body listed in each frame."""
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (UnicodeDecodeError, OSError) as exc:
        raise SmieError(f"{path}: cannot be read as an NTU .skeleton text file ({exc})") from None
    T = _int(lines, 0, path, "the frame count")
    data = np.zeros((3, T, NTU_JOINTS, KINECT_MAX_BODIES), np.float32)
    i = 1
    for t in range(T):
        bodies = _int(lines, i, path, f"the body count of frame {t + 1}")
        i += 1
        for m in range(bodies):
            i += 1  # the body-info line
            joints = _int(lines, i, path, "the joint count")
            if joints != NTU_JOINTS:
                raise SmieError(f"{path}: line {i + 1}: {joints} joints, but NTU skeletons have {NTU_JOINTS}")
            i += 1
            if i + joints > len(lines):
                raise SmieError(f"{path}: line {len(lines)}: file ends inside frame {t + 1} (truncated?)")
            try:
                xyz = np.array([ln.split()[:3] for ln in lines[i : i + joints]], dtype=np.float32)
            except ValueError:
                raise SmieError(f"{path}: lines {i + 1}-{i + joints}: malformed joint values in frame {t + 1}") from None
            if xyz.shape != (joints, 3):
                raise SmieError(f"{path}: lines {i + 1}-{i + joints}: a joint line has fewer than 3 values")
            check_finite(xyz, f"{path}: lines {i + 1}-{i + joints}")
            if m < KINECT_MAX_BODIES:
                data[:, t, :, m] = xyz.T
            i += joints
    return data


def body_energy(data: np.ndarray) -> np.ndarray:
    """(C, T, V, M) -> (M,): sum over coordinates of the std over each body's non-zero frames (0 if none)."""
    C, T, V, M = data.shape
    out = np.zeros(M)
    for m in range(M):
        body = data[..., m]
        present = np.abs(body).sum(axis=(0, 2)) != 0
        if present.any():
            out[m] = body[:, present].reshape(C, -1).std(axis=1).sum()
    return out


def select_bodies(data: np.ndarray, max_bodies: int) -> np.ndarray:
    """Keep the ``max_bodies`` most active body slots (stable order on ties), (C, T, V, max_bodies)."""
    order = np.argsort(-body_energy(data), kind="stable")[:max_bodies]
    out = np.zeros(data.shape[:3] + (max_bodies,), np.float32)
    out[..., : len(order)] = data[..., order]
    return out


_JOINT_LINE = "%.9g %.9g %.9g %.5g %.5g %.6g %.6g %.7g %.7g %.7g %.7g 2\n"


def format_skeleton_file(data: np.ndarray) -> str:
    """The ``.skeleton`` text of (3, T, 25, M) joints, the inverse of :func:`parse_skeleton_file`.

    Per frame, the bodies listed are the slots that are non-zero in that frame, in slot order (so data whose
    present bodies fill the first slots round-trips exactly, to float32 precision); depth/colour coordinates are a
    pinhole projection of x y z, orientations a fixed unit quaternion, every joint tracked (state 2).
    """
    C, T, V, M = data.shape
    block = _JOINT_LINE * V
    out = [f"{T}\n"]
    for t in range(T):
        bodies = [m for m in range(M) if np.any(data[:, t, :, m])]
        out.append(f"{len(bodies)}\n")
        for m in bodies:
            x, y, z = (data[c, t, :, m].astype(np.float64) for c in range(3))
            zz = np.where(z > 0.1, z, 0.1)
            cols = [x, y, z, 256 + 366 * x / zz, 212 - 366 * y / zz, 960 + 1066 * x / zz, 540 - 1066 * y / zz,
                    np.full(V, 0.2), np.full(V, 0.1), np.full(V, 0.9), np.full(V, 0.3)]
            out.append(f"{72057594037927936 + m} 0 1 1 1 1 0 0.1 0.1 2\n{V}\n")
            out.append(block % tuple(np.stack(cols, axis=1).ravel()))
    return "".join(out)


def write_skeleton_file(path: Path, data: np.ndarray) -> None:
    """Write (3, T, 25, M) joints as an NTU ``.skeleton`` file (see :func:`format_skeleton_file`)."""
    Path(path).write_text(format_skeleton_file(data), encoding="ascii")


def read_ntu(path: Path, *, max_bodies: int = 2, dataset: str | None = None, **_: object) -> RawSource:
    """A directory of ``.skeleton`` files (or one file) -> :class:`RawSource` (see the module docstring)."""
    files = list_files(Path(path), "*.skeleton", "NTU .skeleton")
    parsed = []
    for f in files:
        info = ntu_meta(f.stem)
        if info is None:
            raise SmieError(f"{f}: not an NTU sample name (expected SsssCcccPpppRrrrAaaa.skeleton)")
        parsed.append((f, *info))
    if dataset is None:
        dataset = "ntu60" if all(label < 60 for _, _, label in parsed) else "ntu120"
    class_names = class_names_for(dataset, [label for _, _, label in parsed], str(path))
    missing = missing_skeleton_samples()
    skipped = [(f.stem, f"{f}: on the NTU missing-skeleton list") for f, _, _ in parsed if f.stem in missing]

    def loader(f: Path, meta: dict[str, int], label: int):
        return lambda: [RawSample(select_bodies(parse_skeleton_file(f), max_bodies), label, f.stem, meta, str(f))]

    items = [(f.stem, loader(f, meta, label)) for f, meta, label in parsed if f.stem not in missing]
    return RawSource(class_names, "ntu-25", dataset, items, skipped,
                     meta_columns=("setup", "camera", "subject", "replication"))
