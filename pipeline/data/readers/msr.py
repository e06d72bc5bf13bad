"""MSR Action3D skeletons (Kinect v1 "Real3D" version, 20 joints): ``aAA_sSS_eEE_skeleton3D.txt``.

Each file is plain text, 4 floats ``x y z c`` per line, 20 consecutive lines per frame (joint order of the
``kinect-v1-20`` layout). x, y, z are metres in camera space with y up, the same axes as NTU; the per-joint
confidence ``c`` is dropped. One body, so M = 1 (padded to ``max_bodies`` with zeros). The name gives the label
(AA-1), subject (SS) and repetition (EE, stored as ``replication``).

Known defects of the public copy (all-zero sequence ``a13_s09_e02``, all-zero frames) are left to
preprocessing, which drops zero frames and rejects a sequence with none left.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from smie.features.store import SmieError
from smie.pipeline.data.classes import class_table
from smie.pipeline.data.readers.base import RawSample, RawSource, list_files, numbers, pad_bodies

MSR_JOINTS = 20
MSR_NAME = re.compile(r"^a(\d\d)_s(\d\d)_e(\d\d)_skeleton3D$")


def parse_msr_file(path: Path) -> np.ndarray:
    """(3, T, 20, 1) float32 from one MSR Action3D skeleton file."""
    try:
        rows = [ln.split() for ln in path.read_text(encoding="ascii").splitlines()]
    except (UnicodeDecodeError, OSError) as exc:
        raise SmieError(f"{path}: cannot be read as an MSR Action3D text file ({exc})") from None
    while rows and not rows[-1]:
        rows.pop()
    if not rows:
        raise SmieError(f"{path}: empty skeleton file")
    for lineno, r in enumerate(rows, start=1):
        if len(r) != 4:
            raise SmieError(f"{path}: line {lineno}: {len(r)} values, expected 4 (x y z confidence)")
    if len(rows) % MSR_JOINTS:
        raise SmieError(f"{path}: {len(rows)} lines is not a whole number of {MSR_JOINTS}-joint frames "
                        "(truncated file, or a skeleton with another joint count?)")
    try:
        arr = np.array(rows, dtype=np.float32)
    except ValueError:
        lineno = next(i for i, r in enumerate(rows, start=1) if not numbers(r))
        raise SmieError(f"{path}: line {lineno}: holds a value that is not a number") from None
    bad = np.flatnonzero(~np.isfinite(arr[:, :3]).all(axis=1))
    if bad.size:
        raise SmieError(f"{path}: line {bad[0] + 1}: contains non-finite values (NaN or inf)")
    T = len(rows) // MSR_JOINTS
    return np.ascontiguousarray(arr[:, :3].reshape(T, MSR_JOINTS, 3).transpose(2, 0, 1)[..., None])


def read_msr(path: Path, *, max_bodies: int = 2, dataset: str | None = None, **_: object) -> RawSource:
    """A directory of MSR Action3D skeleton files (or one file) -> :class:`RawSource`."""
    files = list_files(Path(path), "*_skeleton3D.txt", "MSR Action3D skeleton")
    if dataset not in (None, "msr"):
        raise SmieError(f"{path}: MSR Action3D data use the msr class table, not {dataset}")
    names = class_table("msr")
    items = []
    for f in files:
        m = MSR_NAME.match(f.name[: -len(".txt")])
        if not m:
            raise SmieError(f"{f}: not an MSR Action3D file name (expected aAA_sSS_eEE_skeleton3D.txt)")
        action, subject, rep = (int(g) for g in m.groups())
        if not 1 <= action <= len(names):
            raise SmieError(f"{f}: action a{action:02d} is outside the {len(names)} MSR Action3D classes")
        sample_id = f.name[: -len("_skeleton3D.txt")]
        meta = {"subject": subject, "replication": rep}
        items.append((sample_id, (lambda f=f, a=action, sid=sample_id, meta=meta: [
            RawSample(pad_bodies(parse_msr_file(f), max_bodies), a - 1, sid, meta, str(f))])))
    return RawSource(names, "kinect-v1-20", "msr", items, meta_columns=("subject", "replication"))
