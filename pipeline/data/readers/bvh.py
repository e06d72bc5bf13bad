"""BVH motion capture (Biovision Hierarchy): a directory of ``.bvh`` clips, one sample per file.

A file is a ``HIERARCHY`` (``ROOT``/``JOINT`` blocks with an ``OFFSET`` and ``CHANNELS``, ``End Site`` leaves)
and a ``MOTION`` block (``Frames: F``, ``Frame Time: dt``, then F lines of one value per channel). Joint
positions come from forward kinematics: a joint's local translation is its position channels where it has them
(else its ``OFFSET``); its local rotation is the product of its rotation channels in the order ``CHANNELS``
lists them (``Zrotation Xrotation Yrotation`` = Rz Rx Ry, column vectors, degrees), so any order, per joint, is
honoured; world = parent world x local. End Sites carry no channels and are dropped.

The rig becomes the cache's custom layout (:mod:`smie.pipeline.data.readers.bvh_rig`: joint names from the
hierarchy, bones from the parent links, the hips as centre, the up axis from the data). Every clip must have the
same joints with the same parents (offsets may differ: actors differ in size). Coordinates stay in the file's
units; the frame rates and the unit guessed from the rig's size are recorded in the cache's provenance.

Labels come from :mod:`smie.pipeline.data.readers.file_labels` (``--labels`` table or ``--label-pattern``);
without either the clips are unlabelled (``predict``, ``show``). Errors name the file and line.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smie.features.store import SmieError
from smie.pipeline.data.layouts import custom_spec
from smie.pipeline.data.readers.base import RawSample, RawSource, list_files, pad_bodies
from smie.pipeline.data.readers.bvh_rig import guess_unit, rig_layout
from smie.pipeline.data.readers.file_labels import label_files

CHANNELS = ("Xposition", "Yposition", "Zposition", "Xrotation", "Yrotation", "Zrotation")


@dataclass(frozen=True)
class Joint:
    """One ``ROOT``/``JOINT``: ``parent`` index (-1 for the root), ``offset`` (3,), ``channels`` in file order,
    ``first`` the column of its first channel on a frame line."""

    name: str
    parent: int
    offset: tuple[float, float, float]
    channels: tuple[str, ...]
    first: int


@dataclass(frozen=True)
class Clip:
    """A parsed file: ``joints`` in hierarchy order, ``motion`` (F, channels) float64, ``frame_time`` seconds."""

    joints: tuple[Joint, ...]
    motion: np.ndarray
    frame_time: float


def _tokens(lines: list[str]):
    for lineno, line in enumerate(lines, start=1):
        for tok in line.replace("{", " { ").replace("}", " } ").split():
            yield tok, lineno


def parse_bvh(path: Path, header_only: bool = False) -> Clip:
    """Parse ``path``; ``header_only`` stops after ``Frame Time`` (motion then has 0 rows)."""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="strict").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SmieError(f"{path}: cannot be read as a BVH text file ({exc})") from None
    toks = _tokens(lines)

    def take(what: str):
        try:
            return next(toks)
        except StopIteration:
            raise SmieError(f"{path}: line {len(lines)}: file ends inside the HIERARCHY, expected {what}") from None

    def number(what: str, kind=float):
        tok, lineno = take(what)
        try:
            value = kind(tok)
        except ValueError:
            raise SmieError(f"{path}: line {lineno}: expected {what}, got {tok!r}") from None
        if not np.isfinite(value):
            raise SmieError(f"{path}: line {lineno}: {what} is not finite ({tok})")
        return value

    tok, lineno = take("HIERARCHY")
    if tok != "HIERARCHY":
        raise SmieError(f"{path}: line {lineno}: not a BVH file (expected HIERARCHY, got {tok!r})")
    joints: list[dict] = []
    stack: list[int] = []  # open blocks: joint index, or -1 for an End Site
    width = 0
    while True:
        tok, lineno = take("ROOT, JOINT, End Site or }")
        if tok in ("ROOT", "JOINT"):
            if tok == "ROOT":
                problem = "a second ROOT, or a ROOT inside a joint (one skeleton per file)" if joints else ""
            else:
                problem = "JOINT outside the ROOT block" if not stack else "JOINT inside an End Site" \
                    if stack[-1] < 0 else ""
            if problem:
                raise SmieError(f"{path}: line {lineno}: garbled hierarchy: {problem}")
            name, lineno = take("a joint name")
            if name in ("{", "}"):
                raise SmieError(f"{path}: line {lineno}: {tok} without a name")
            if any(j["name"] == name for j in joints):
                raise SmieError(f"{path}: line {lineno}: garbled hierarchy: joint {name!r} appears twice")
            if take("{")[0] != "{":
                raise SmieError(f"{path}: line {lineno}: expected '{{' after {tok} {name}")
            joints.append(dict(name=name, parent=stack[-1] if stack else -1, offset=None, channels=(),
                               first=width, line=lineno))
            stack.append(len(joints) - 1)
        elif tok == "End":
            if take("Site")[0] != "Site" or take("{")[0] != "{" or not stack:
                raise SmieError(f"{path}: line {lineno}: garbled End Site")
            stack.append(-1)
        elif tok == "OFFSET":
            offset = tuple(number("an OFFSET value") for _ in range(3))
            if stack and stack[-1] >= 0:
                joints[stack[-1]]["offset"] = offset
        elif tok == "CHANNELS":
            if not stack or stack[-1] < 0:
                raise SmieError(f"{path}: line {lineno}: CHANNELS outside a joint")
            n = number("a channel count", int)
            names = tuple(take("a channel name")[0] for _ in range(n))
            bad = [c for c in names if c not in CHANNELS]
            if bad or not 0 < n <= 6 or len(set(names)) != n:
                raise SmieError(f"{path}: line {lineno}: unknown or repeated channel name(s) {bad or names} "
                                f"(known: {', '.join(CHANNELS)})")
            joints[stack[-1]].update(channels=names, first=width)
            width += n
        elif tok == "}":
            if not stack:
                raise SmieError(f"{path}: line {lineno}: garbled hierarchy: '}}' without an open block")
            done = stack.pop()
            if done >= 0 and joints[done]["offset"] is None:
                raise SmieError(f"{path}: line {joints[done]['line']}: joint {joints[done]['name']} has no OFFSET")
            if not stack:
                break
        elif tok == "MOTION":
            raise SmieError(f"{path}: line {lineno}: garbled hierarchy: MOTION with {len(stack)} block(s) still open "
                            "(unbalanced braces)")
        else:
            raise SmieError(f"{path}: line {lineno}: garbled hierarchy: unexpected {tok!r}")
    tok, lineno = take("MOTION")
    if tok != "MOTION":
        raise SmieError(f"{path}: line {lineno}: expected MOTION after the hierarchy, got {tok!r} (unbalanced braces?)")
    frames, dt = _motion_header(path, lines, lineno)
    joints_t = tuple(Joint(j["name"], j["parent"], j["offset"], j["channels"], j["first"]) for j in joints)
    motion = np.zeros((0, width)) if header_only else _frames(path, lines, lineno + 2, frames, width)
    return Clip(joints_t, motion, dt)


def _motion_header(path: Path, lines: list[str], at: int) -> tuple[int, float]:
    """``Frames:`` and ``Frame Time:`` on the two lines after ``MOTION`` (line ``at``)."""
    got = [lines[i].split(":", 1) if i < len(lines) else [""] for i in (at, at + 1)]
    try:
        assert got[0][0].strip() == "Frames" and got[1][0].strip() == "Frame Time"
        frames, dt = int(got[0][1]), float(got[1][1])
    except (AssertionError, IndexError, ValueError):
        raise SmieError(f"{path}: line {at + 1}: expected 'Frames: N' and 'Frame Time: seconds' after MOTION") from None
    if frames < 1 or not 0 < dt < 10:
        raise SmieError(f"{path}: line {at + 1}: {frames} frames of {dt} s: nothing to read")
    return frames, dt


def _frames(path: Path, lines: list[str], start: int, frames: int, width: int) -> np.ndarray:
    """(frames, width) float64 from the frame lines from 1-based line ``start + 1``."""
    rows = [ln.split() for ln in lines[start:]]
    while rows and not rows[-1]:
        rows.pop()
    if len(rows) < frames:
        raise SmieError(f"{path}: line {len(lines)}: truncated MOTION block: Frames says {frames} but only "
                        f"{len(rows)} frame lines follow")
    if len(rows) > frames:
        raise SmieError(f"{path}: line {start + frames + 1}: {len(rows) - frames} more lines than Frames says ({frames})")
    for i, r in enumerate(rows):
        if len(r) != width:
            raise SmieError(f"{path}: line {start + i + 1}: {len(r)} values, but the hierarchy declares {width} "
                            "channels")
    try:
        motion = np.array(rows, dtype=np.float64)
    except ValueError:
        i = next(i for i, r in enumerate(rows) if not _numbers(r))
        raise SmieError(f"{path}: line {start + i + 1}: holds a value that is not a number") from None
    bad = np.flatnonzero(~np.isfinite(motion).all(axis=1))
    if bad.size:
        raise SmieError(f"{path}: line {start + bad[0] + 1}: contains non-finite values (NaN or inf)")
    return motion


def _numbers(row: list[str]) -> bool:
    try:
        [float(v) for v in row]
    except ValueError:
        return False
    return True


def _axis_rotation(axis: str, degrees: np.ndarray) -> np.ndarray:
    """(F,) angles -> (F, 3, 3) rotations about ``axis`` (column vectors, right-handed)."""
    a = np.radians(degrees)
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    m = {"X": [[o, z, z], [z, c, -s], [z, s, c]], "Y": [[c, z, s], [z, o, z], [-s, z, c]],
         "Z": [[c, -s, z], [s, c, z], [z, z, o]]}[axis]
    return np.moveaxis(np.array(m), -1, 0)


def forward_kinematics(clip: Clip) -> np.ndarray:
    """World positions (F, J, 3) float64 of every joint of ``clip`` in every frame."""
    F = clip.motion.shape[0]
    rot = np.zeros((len(clip.joints), F, 3, 3))
    pos = np.zeros((len(clip.joints), F, 3))
    for j, joint in enumerate(clip.joints):
        local_t = np.tile(np.asarray(joint.offset, np.float64), (F, 1))
        local_r = np.broadcast_to(np.eye(3), (F, 3, 3))
        for k, ch in enumerate(joint.channels):
            values = clip.motion[:, joint.first + k]
            if ch.endswith("position"):
                local_t[:, "XYZ".index(ch[0])] = values
            else:
                local_r = local_r @ _axis_rotation(ch[0], values)
        if joint.parent < 0:
            rot[j], pos[j] = local_r, local_t
        else:
            p = joint.parent
            rot[j] = rot[p] @ local_r
            pos[j] = pos[p] + np.einsum("fij,fj->fi", rot[p], local_t)
    return pos.transpose(1, 0, 2)


def read_bvh(path: Path, *, max_bodies: int = 2, dataset: str | None = None, labels: Path | None = None,
             label_pattern: str | None = None, **_: object) -> RawSource:
    """A ``.bvh`` file or a directory of them -> :class:`RawSource` with the rig's custom layout.

    Every (labelled) file's hierarchy is read up front: the first good one gives the layout; a file whose
    hierarchy is bad or of another rig fails when its item loads, so ``--skip-bad`` can skip it."""
    path = Path(path)
    files = list_files(path, "*.bvh", "BVH")
    named = label_files([f.stem for f in files], path, labels, label_pattern)
    todo = [f for f in files if named is None or f.stem in named.label]
    heads: dict[Path, Clip] = {}
    bad: dict[Path, SmieError] = {}
    for f in todo:
        try:
            heads[f] = parse_bvh(f, header_only=True)
        except SmieError as exc:
            bad[f] = exc
    if not heads:
        raise bad[todo[0]]
    ref = next(iter(heads))
    first = parse_bvh(ref)
    layout, keep = rig_layout(first.joints, forward_kinematics(first), "bvh", ref)
    shape = [(j.name, j.parent) for j in first.joints]
    for f, clip in heads.items():
        if [(j.name, j.parent) for j in clip.joints] != shape:
            bad[f] = SmieError(f"{f}: its skeleton differs from {ref.name}'s (joint names or parents); one input "
                               "holds one rig")
    unit, span = guess_unit(first.joints, keep)
    info = {"format": "bvh", "frame_rates": sorted({round(1 / c.frame_time, 3) for c in heads.values()}),
            "units": unit, "rig_span": round(span, 3),
            "units_note": "coordinates as in the files (BVH has no unit field); unit guessed from the rig's "
                          "longest joint-to-joint path", "joints_in_file": len(first.joints),
            "joints_dropped": [first.joints[i].name for i in range(len(first.joints)) if i not in keep]}

    def load(f: Path):
        if f in bad:
            raise bad[f]
        xyz = forward_kinematics(parse_bvh(f))[:, keep].astype(np.float32)  # (T, V, 3)
        label = named.label[f.stem] if named else -1
        meta = dict(named.meta.get(f.stem, {})) if named else {}
        return [RawSample(pad_bodies(xyz.transpose(2, 0, 1)[..., None], max_bodies), label, f.stem, meta, str(f))]

    items = [(f.stem, (lambda f=f: load(f))) for f in todo]
    dataset = dataset or (path.name if path.is_dir() else path.stem)
    return RawSource(named.class_names if named else (), layout.name, dataset, items,
                     skipped=list(named.skipped) if named else [], meta_columns=named.meta_columns if named else (),
                     layout_spec=custom_spec(layout), info=info)
