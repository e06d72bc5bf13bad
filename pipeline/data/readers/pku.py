"""PKU-MMD skeleton sequences (Kinect v2, 25 joints) cut into one sample per labelled action segment.

A skeleton file (``0002-L.txt``, phase 2 ``A01N01-L.txt``) has one line per frame of 150 floats: body 1's
25 joints as ``x y z``, then body 2's (zeros when absent). PKU-MMD sequences are long and untrimmed, so labels
come from a separate label file per sequence, ``action_id,start_frame,end_frame,confidence`` per line
(PKU-MMD's ``Label`` folder). Interface:

- ``input`` is one skeleton file or a directory of them (``*.txt``);
- ``labels`` (``--labels``) is the directory holding ``<same name>.txt`` label files, or, when ``input`` is one
  file, that file's label file. Without ``labels`` there is nothing to learn from, so reading fails with a
  message saying so; a skeleton file without a label file is an error (skipped and reported with
  ``skip_bad``).

Segment k of a sequence becomes sample ``<name>_<k>`` with frames ``start:end`` (Python slice, as the common
PKU-MMD gendata scripts cut them). ``action_id`` is the official PKU-MMD id (1-51), mapped to the alphabetical
51-class index the ZSL papers use (``pipeline/data/classes/pku51.tsv``). The view letter gives ``camera``
(L=1, M=2, R=3). Bodies are ranked by motion energy as for NTU.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from smie.features.store import SmieError
from smie.pipeline.data.classes import class_codes, class_table
from smie.pipeline.data.readers.base import RawSample, RawSource, list_files, numbers
from smie.pipeline.data.readers.ntu import select_bodies

VALUES_PER_FRAME = 150
VIEWS = {"L": 1, "M": 2, "R": 3}


def parse_pku_skeleton(path: Path) -> np.ndarray:
    """(3, T, 25, 2) float32 from a PKU-MMD skeleton file."""
    try:
        rows = [ln.split() for ln in path.read_text(encoding="ascii").splitlines()]
    except (UnicodeDecodeError, OSError) as exc:
        raise SmieError(f"{path}: cannot be read as a PKU-MMD skeleton text file ({exc})") from None
    rows = [r for r in rows if r]
    if not rows:
        raise SmieError(f"{path}: empty skeleton file")
    for lineno, r in enumerate(rows, start=1):
        if len(r) != VALUES_PER_FRAME:
            joints = len(r) / 6
            raise SmieError(f"{path}: line {lineno}: {len(r)} values ({joints:g} joints x 2 bodies x 3), "
                            f"expected {VALUES_PER_FRAME} (25 Kinect v2 joints x 2 bodies x 3)")
    try:
        arr = np.array(rows, dtype=np.float32)
    except ValueError:
        lineno = next(i for i, r in enumerate(rows, start=1) if not numbers(r))
        raise SmieError(f"{path}: line {lineno}: holds a value that is not a number") from None
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if bad.size:
        raise SmieError(f"{path}: line {bad[0] + 1}: contains non-finite values (NaN or inf)")
    T = arr.shape[0]
    return np.ascontiguousarray(arr.reshape(T, 2, 25, 3).transpose(3, 0, 2, 1))


def parse_pku_labels(path: Path, num_frames: int) -> list[tuple[int, int, int]]:
    """``(class index, start, end)`` per line of a PKU-MMD label file, checked against the class table."""
    to_index = {int(code): i for i, code in enumerate(class_codes("pku51"))}
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (UnicodeDecodeError, OSError) as exc:
        raise SmieError(f"{path}: cannot be read as a PKU-MMD label file ({exc})") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        try:
            action, start, end = int(parts[0]), int(parts[1]), int(parts[2])
        except (ValueError, IndexError):
            raise SmieError(f"{path}: line {lineno}: expected 'action,start,end,confidence', got {line!r}") from None
        if action not in to_index:
            raise SmieError(f"{path}: line {lineno}: action id {action} is not a PKU-MMD action (1-{len(to_index)})")
        if not 0 <= start < end <= num_frames:
            raise SmieError(f"{path}: line {lineno}: segment {start}-{end} is not inside the sequence's "
                            f"{num_frames} frames")
        out.append((to_index[action], start, end))
    if not out:
        raise SmieError(f"{path}: label file has no segments")
    return out


def _label_file(skel: Path, labels: Path, single: bool) -> Path:
    if labels.is_file() and single:
        return labels
    if not labels.is_dir():
        raise SmieError(f"{labels}: PKU-MMD labels must be a directory of label files"
                        + ("" if not single else " or the input's label file"))
    found = labels / skel.name
    if not found.is_file():
        raise SmieError(f"{skel}: no label file {found} for this PKU-MMD sequence")
    return found


def read_pku(path: Path, *, max_bodies: int = 2, labels: Path | None = None, dataset: str | None = None,
             **_: object) -> RawSource:
    """PKU-MMD skeleton file(s) plus label files -> :class:`RawSource` (see the module docstring)."""
    path = Path(path)
    files = list_files(path, "*.txt", "PKU-MMD skeleton")
    if labels is None:
        raise SmieError(f"{path}: PKU-MMD skeleton files carry no action labels; pass --labels with the directory "
                        "of label files (one '<name>.txt' of action,start,end,confidence lines per sequence)")
    if dataset not in (None, "pku51"):
        raise SmieError(f"{path}: PKU-MMD data use the pku51 class table, not {dataset}")

    def load(skel: Path):
        data = parse_pku_skeleton(skel)
        label_path = _label_file(skel, Path(labels), path.is_file())
        stem = skel.stem
        view = VIEWS.get(stem.rsplit("-", 1)[-1][:1].upper(), -1) if "-" in stem else -1
        out = []
        for k, (label, start, end) in enumerate(parse_pku_labels(label_path, data.shape[1]), start=1):
            seg = select_bodies(data[:, start:end], max_bodies)
            meta = {"camera": view, "segment_start": start}
            out.append(RawSample(seg, label, f"{stem}_{k:03d}", meta, f"{skel} (segment {k}: {label_path})"))
        return out

    items = [(f.stem, (lambda f=f: load(f))) for f in files]
    return RawSource(class_table("pku51"), "ntu-25", "pku51", items, meta_columns=("camera", "segment_start"))
