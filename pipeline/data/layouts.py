"""Joint layouts: joint names, bones, the centre joint and the up axis of each skeleton smie reads, as data.

A :class:`Layout` is the single source of truth for the skeleton graph. ``bones`` are 0-based ``(child, parent)``
pairs forming a tree rooted at ``center`` (every joint but the centre appears exactly once as a child), so the
ST-GCN adjacency can be built from them and hop distances to the centre are well defined.

``center`` is the joint that preprocessing subtracts (see :mod:`smie.pipeline.data.preprocess`).
``graph_center`` is the joint the original ST-GCN graph uses for its spatial (centripetal/centrifugal)
partition; it differs from ``center`` for NTU (ST-GCN uses spine-shoulder, joint 21) and is given so that a
faithful ST-GCN graph can be built. Its undirected edge set is exactly ST-GCN's for ``ntu-25``. ``up_axis`` (``y``
or ``z``) says which coordinate points up; ``smie show`` draws it vertical.

Presets (:data:`LAYOUTS`), by name:

- ``ntu-25``: Kinect v2 (NTU RGB+D 60/120, PKU-MMD). Centre = spine-mid (joint 2, 1-based), the joint the
  NTU preprocessing used by CrossCLR/AimCLR/SMIE (``pre_normalization``) subtracts.
- ``kinect-v1-20``: MSR Action3D joint order. Centre = spine (joint 4, 1-based): it is the Kinect v1
  counterpart of Kinect v2's spine-mid (between hip centre and shoulder centre), so NTU and MSR data are
  centred on the same body point. Hip centre (joint 7) would be the other choice; it jitters more with leg
  motion.
- ``coco-17``: COCO keypoints (2D pose estimators, PYSKL). Centre = nose (0), as PYSKL's ``coco`` graph; COCO
  has no torso joint, so there is no better single joint.
- ``hand-21``: a hand as hand trackers give it (MediaPipe Hands, OpenPose's hand model, InterHand2.6M's order):
  wrist (0), then thumb, index, middle, ring and little finger, four joints each from base to tip. Centre =
  wrist; every finger hangs from the wrist (MediaPipe draws palm edges between the finger bases too; they would
  close cycles, and the tree keeps the graph a tree as ST-GCN's partition expects).

Any other skeleton is a custom layout: the same fields as data (:meth:`Layout.spec`, :meth:`Layout.from_spec`),
carried by a generic npz, derived from a BVH hierarchy, stored in the skeleton cache and the backbone checkpoint
(``layout`` name plus ``layout_spec`` dict), and rebuilt by :func:`resolve_layout` wherever a stage needs it.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from smie.features.store import SmieError

UP_AXES = ("y", "z")


class LayoutError(SmieError, ValueError):
    """A layout that is not a tree rooted at its centre, or malformed layout data (names, bones, axes)."""


@dataclass(frozen=True)
class Layout:
    """A skeleton joint layout; ``bones`` are 0-based (child, parent) pairs, a tree rooted at ``center``."""

    name: str
    joint_names: tuple[str, ...]
    bones: tuple[tuple[int, int], ...]
    center: int
    graph_center: int
    up_axis: str = "y"

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def __post_init__(self) -> None:
        V, where = self.num_joints, f"layout {self.name}"
        if not isinstance(self.name, str) or not self.name.strip():
            raise LayoutError("a layout needs a non-empty name")
        if V < 2 or any(not isinstance(n, str) or not n.strip() for n in self.joint_names):
            raise LayoutError(f"{where}: needs at least 2 joints, each with a non-empty name")
        dupes = sorted({n for n in self.joint_names if self.joint_names.count(n) > 1})
        if dupes:
            raise LayoutError(f"{where}: joint names repeat: {', '.join(dupes[:5])}")
        for field in ("center", "graph_center"):
            if not 0 <= getattr(self, field) < V:
                raise LayoutError(f"{where}: {field} {getattr(self, field)} is not a joint (0..{V - 1})")
        if self.up_axis not in UP_AXES:
            raise LayoutError(f"{where}: up_axis must be one of {', '.join(UP_AXES)}, got {self.up_axis!r}")
        bad = [b for b in self.bones if not all(0 <= j < V for j in b) or b[0] == b[1]]
        if bad:
            raise LayoutError(f"{where}: bone {bad[0]} does not join two different joints of 0..{V - 1}")
        children = [c for c, _ in self.bones]
        if sorted(children) != sorted(set(range(V)) - {self.center}):
            raise LayoutError(f"{where}: bones must give every joint but the centre one parent")
        parent = dict(self.bones)
        for joint in range(V):
            seen, j = set(), joint
            while j != self.center:
                if j in seen:
                    raise LayoutError(f"{where}: bones contain a cycle through joint {j}")
                seen.add(j)
                j = parent[j]

    def spec(self) -> dict[str, Any]:
        """The layout as plain data (JSON-able): what a skeleton cache and a backbone checkpoint store."""
        return {"joint_names": list(self.joint_names), "bones": [[int(c), int(p)] for c, p in self.bones],
                "center": int(self.center), "graph_center": int(self.graph_center), "up_axis": self.up_axis}

    @classmethod
    def from_spec(cls, name: str, spec: dict[str, Any], where: str = "") -> "Layout":
        """Build and validate a layout from :meth:`spec`-shaped data (lists or arrays); bones may form a tree
        rooted at any joint: they are re-oriented towards ``center``. :class:`LayoutError` names ``where``."""
        at = f"{where}: " if where else ""
        try:
            names = tuple(str(n) for n in np.asarray(spec["joint_names"]).reshape(-1))
            edges = np.asarray(spec["bones"])
            center = _index(spec["center"], "center")
            graph_center = _index(spec.get("graph_center", center), "graph_center")
            up = str(np.asarray(spec.get("up_axis", "y")))
        except KeyError as exc:
            raise LayoutError(f"{at}layout {name} lacks {exc.args[0]}") from None
        except (TypeError, ValueError) as exc:
            raise LayoutError(f"{at}layout {name}: {exc}") from None
        V = len(names)
        if edges.shape != (max(V - 1, 0), 2) or (edges.size and not np.issubdtype(edges.dtype, np.integer)):
            raise LayoutError(f"{at}layout {name}: bones must be ({V - 1}, 2) integer (child, parent) pairs for "
                              f"{V} joints, got {edges.dtype} {edges.shape}")
        try:
            bones = tree_towards(V, [(int(c), int(p)) for c, p in edges], center)
            return cls(name, names, bones, center, graph_center, up)
        except LayoutError as exc:
            raise LayoutError(f"{at}{exc}") from None

    def same_skeleton(self, other: "Layout") -> bool:
        """Same joints in the same order, same edges, centres and up axis (the name may differ)."""
        a, b = self.spec(), other.spec()
        a["bones"], b["bones"] = sorted(a["bones"]), sorted(b["bones"])
        return a == b

    def describe(self) -> str:
        """One line: name, joint count, centre and up axis."""
        return (f"{self.name}: {self.num_joints} joints, centre {self.center} ({self.joint_names[self.center]}), "
                f"up {self.up_axis}")


def _index(value: Any, what: str) -> int:
    arr = np.asarray(value)
    if arr.shape != () or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} must be one joint index, got {value!r}")
    return int(arr)


def tree_towards(num_joints: int, edges: list[tuple[int, int]], center: int) -> tuple[tuple[int, int], ...]:
    """The undirected ``edges`` of a tree over ``num_joints`` joints as (child, parent) pairs pointing towards
    ``center``, in the given order; :class:`LayoutError` when they do not form one tree (a cycle, a joint left
    out, an edge outside the joints)."""
    V = num_joints
    if not 0 <= center < V:
        raise LayoutError(f"center {center} is not a joint (0..{V - 1})")
    near: dict[int, list[int]] = {j: [] for j in range(V)}
    for a, b in edges:
        if not (0 <= a < V and 0 <= b < V) or a == b:
            raise LayoutError(f"bone ({a}, {b}) does not join two different joints of 0..{V - 1}")
        near[a].append(b)
        near[b].append(a)
    parent, todo = {center: -1}, deque([center])
    while todo:
        j = todo.popleft()
        for k in near[j]:
            if k == parent[j]:
                continue
            if k in parent:
                raise LayoutError(f"bones contain a cycle through joint {k}")
            parent[k] = j
            todo.append(k)
    if len(parent) != V or len(edges) != V - 1:
        lost = sorted(set(range(V)) - set(parent))
        raise LayoutError(f"bones do not connect joints {lost[:8]} to the centre {center}" if lost else
                          "bones contain a repeated edge")
    return tuple((a, b) if parent[a] == b else (b, a) for a, b in edges)


def _one_based(pairs: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    return tuple((c - 1, p - 1) for c, p in pairs)


_NTU_JOINTS = (
    "spine base", "spine mid", "neck", "head", "left shoulder", "left elbow", "left wrist", "left hand",
    "right shoulder", "right elbow", "right wrist", "right hand", "left hip", "left knee", "left ankle",
    "left foot", "right hip", "right knee", "right ankle", "right foot", "spine shoulder", "left hand tip",
    "left thumb", "right hand tip", "right thumb",
)
# ST-GCN's NTU edge set (hand tip - thumb - hand), oriented towards spine-mid (joint 2).
_NTU_BONES = _one_based([
    (1, 2), (21, 2), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (23, 8), (22, 23),
    (9, 21), (10, 9), (11, 10), (12, 11), (25, 12), (24, 25),
    (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19),
])

_MSR_JOINTS = (
    "left shoulder", "right shoulder", "shoulder centre", "spine", "left hip", "right hip", "hip centre",
    "left elbow", "right elbow", "left wrist", "right wrist", "left hand", "right hand", "left knee",
    "right knee", "left ankle", "right ankle", "left foot", "right foot", "head",
)
# The MSR Action3D body model's 19 bones, oriented towards the spine (joint 4).
_MSR_BONES = _one_based([
    (7, 4), (3, 4), (20, 3), (1, 3), (2, 3), (8, 1), (9, 2), (10, 8), (11, 9), (12, 10), (13, 11),
    (5, 7), (6, 7), (14, 5), (15, 6), (16, 14), (17, 15), (18, 16), (19, 17),
])

_COCO_JOINTS = (
    "nose", "left eye", "right eye", "left ear", "right ear", "left shoulder", "right shoulder", "left elbow",
    "right elbow", "left wrist", "right wrist", "left hip", "right hip", "left knee", "right knee",
    "left ankle", "right ankle",
)
# PYSKL's coco graph (inward edges), rooted at the nose.
_COCO_BONES = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 5), (12, 6), (9, 7), (7, 5), (10, 8), (8, 6),
    (5, 0), (6, 0), (1, 0), (3, 1), (2, 0), (4, 2),
)

# MediaPipe Hands' landmark names and order (OpenPose's hand model and InterHand2.6M use the same order).
_FINGERS = (("thumb", ("cmc", "mcp", "ip", "tip")), ("index finger", ("mcp", "pip", "dip", "tip")),
            ("middle finger", ("mcp", "pip", "dip", "tip")), ("ring finger", ("mcp", "pip", "dip", "tip")),
            ("pinky", ("mcp", "pip", "dip", "tip")))
_HAND_JOINTS = ("wrist",) + tuple(f"{finger} {part}" for finger, parts in _FINGERS for part in parts)
# Each finger a chain base -> tip, its base hanging from the wrist.
_HAND_BONES = tuple((1 + 4 * f + k, 0 if k == 0 else 4 * f + k) for f in range(5) for k in range(4))

LAYOUTS: dict[str, Layout] = {
    "ntu-25": Layout("ntu-25", _NTU_JOINTS, _NTU_BONES, center=1, graph_center=20),
    "kinect-v1-20": Layout("kinect-v1-20", _MSR_JOINTS, _MSR_BONES, center=3, graph_center=3),
    "coco-17": Layout("coco-17", _COCO_JOINTS, _COCO_BONES, center=0, graph_center=0),
    "hand-21": Layout("hand-21", _HAND_JOINTS, _HAND_BONES, center=0, graph_center=0),
}


def get_layout(name: str) -> Layout:
    """The preset called ``name``; :class:`SmieError` listing the known names otherwise."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise SmieError(f"unknown joint layout {name!r}; known layouts: {', '.join(sorted(LAYOUTS))} (any other "
                        "skeleton: give joint_names, bones and center in the npz)") from None


def resolve_layout(name: str, spec: dict[str, Any] | None = None, where: str = "") -> Layout:
    """The layout a cache, checkpoint or reader records: the preset ``name`` when ``spec`` is None, else the
    custom layout ``spec`` describes. A custom layout may not take a preset's name unless it is that preset."""
    if spec is None:
        return get_layout(name)
    layout = Layout.from_spec(name, spec, where)
    if name in LAYOUTS and not layout.same_skeleton(LAYOUTS[name]):
        raise LayoutError(f"{where + ': ' if where else ''}layout {name!r} differs from the preset of that name; "
                          "give a custom layout another name")
    return LAYOUTS[name] if name in LAYOUTS else layout


def layout_of(obj: Any, where: str = "") -> Layout:
    """The layout of anything that records one as ``layout`` (name) and ``layout_spec`` (dict or None): a
    :class:`~smie.features.skeletons.SkeletonSet`, a reader's source, a backbone's info."""
    return resolve_layout(obj.layout, getattr(obj, "layout_spec", None), where)


def custom_spec(layout: Layout) -> dict[str, Any] | None:
    """``layout.spec()`` for a custom layout, None for a preset (its name says everything)."""
    preset = LAYOUTS.get(layout.name)
    return None if preset is not None and preset.same_skeleton(layout) else layout.spec()


def layout_for_joints(num_joints: int) -> Layout:
    """The preset with ``num_joints`` joints (25 -> ntu-25, 20 -> kinect-v1-20, 17 -> coco-17, 21 -> hand-21)."""
    for layout in LAYOUTS.values():
        if layout.num_joints == num_joints:
            return layout
    known = ", ".join(f"{l.num_joints} ({l.name})" for l in LAYOUTS.values())
    raise SmieError(f"no joint layout has {num_joints} joints; known joint counts: {known}")
