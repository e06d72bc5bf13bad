"""Joint layouts: joint names, bones and the centre joint of each skeleton format smie reads.

A :class:`Layout` is the single source of truth for the skeleton graph. ``bones`` are 0-based ``(child, parent)``
pairs forming a tree rooted at ``center`` (every joint but the centre appears exactly once as a child), so the
ST-GCN adjacency can be built from them and hop distances to the centre are well defined.

``center`` is the joint that preprocessing subtracts (see :mod:`smie.pipeline.data.preprocess`).
``graph_center`` is the joint the original ST-GCN graph uses for its spatial (centripetal/centrifugal)
partition; it differs from ``center`` for NTU (ST-GCN uses spine-shoulder, joint 21) and is given so that a
faithful ST-GCN graph can be built. Its undirected edge set is exactly ST-GCN's for ``ntu-25``.

- ``ntu-25``: Kinect v2 (NTU RGB+D 60/120, PKU-MMD). Centre = spine-mid (joint 2, 1-based), the joint the
  NTU preprocessing used by CrossCLR/AimCLR/SMIE (``pre_normalization``) subtracts.
- ``kinect-v1-20``: MSR Action3D joint order. Centre = spine (joint 4, 1-based): it is the Kinect v1
  counterpart of Kinect v2's spine-mid (between hip centre and shoulder centre), so NTU and MSR data are
  centred on the same body point. Hip centre (joint 7) would be the other choice; it jitters more with leg
  motion.
- ``coco-17``: COCO keypoints (2D pose estimators, PYSKL). Centre = nose (0), as PYSKL's ``coco`` graph; COCO
  has no torso joint, so there is no better single joint.
"""
from __future__ import annotations

from dataclasses import dataclass

from smie.features.store import SmieError


@dataclass(frozen=True)
class Layout:
    """A skeleton joint layout; ``bones`` are 0-based (child, parent) pairs, a tree rooted at ``center``."""

    name: str
    joint_names: tuple[str, ...]
    bones: tuple[tuple[int, int], ...]
    center: int
    graph_center: int

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def __post_init__(self) -> None:
        V = self.num_joints
        children = [c for c, _ in self.bones]
        if sorted(children) != sorted(set(range(V)) - {self.center}):
            raise ValueError(f"layout {self.name}: bones must give every joint but the centre one parent")
        for joint in range(V):
            seen, j = set(), joint
            while j != self.center:
                if j in seen:
                    raise ValueError(f"layout {self.name}: bones contain a cycle through joint {j}")
                seen.add(j)
                j = dict(self.bones)[j]


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

LAYOUTS: dict[str, Layout] = {
    "ntu-25": Layout("ntu-25", _NTU_JOINTS, _NTU_BONES, center=1, graph_center=20),
    "kinect-v1-20": Layout("kinect-v1-20", _MSR_JOINTS, _MSR_BONES, center=3, graph_center=3),
    "coco-17": Layout("coco-17", _COCO_JOINTS, _COCO_BONES, center=0, graph_center=0),
}


def get_layout(name: str) -> Layout:
    """The layout called ``name``; :class:`SmieError` listing the known names otherwise."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise SmieError(f"unknown joint layout {name!r}; known layouts: {', '.join(sorted(LAYOUTS))}") from None


def layout_for_joints(num_joints: int) -> Layout:
    """The layout with ``num_joints`` joints (25 -> ntu-25, 20 -> kinect-v1-20, 17 -> coco-17)."""
    for layout in LAYOUTS.values():
        if layout.num_joints == num_joints:
            return layout
    known = ", ".join(f"{l.num_joints} ({l.name})" for l in LAYOUTS.values())
    raise SmieError(f"no joint layout has {num_joints} joints; known joint counts: {known}")
