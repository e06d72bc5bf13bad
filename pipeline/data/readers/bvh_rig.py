"""The joint layout of a BVH rig (:mod:`smie.pipeline.data.readers.bvh`), and the length unit its size suggests.

- Joints: the hierarchy's ``ROOT``/``JOINT`` s in file order (End Sites are not joints); bones: the parent links.
- Centre: the first joint named like the hips (``hips``, ``pelvis``), else the root. Ancestors of the centre that
  are a bare chain above it (MotionBuilder's ``Reference``, Bandai-Namco's ``joint_Root``: a fixed anchor at the
  world origin) are reference nodes, not body joints: their transform is applied, their position is not kept.
  Were they to carry other children, nothing is dropped and the tree is oriented towards the centre instead.
- Up axis: the axis along which the body is tallest in the clip (median over frames of the extent of the kept
  joints), which must be ``y`` or ``z`` with the centre above the lowest joint.
- Unit: BVH has no unit field; a human rig's longest joint-to-joint path through the skeleton (head to toe or
  hand to hand, pose-independent: 1.4-2 m for adults) in file units says ``m``, ``cm`` or ``mm``; anything else
  (a hand, an animal, inches) is ``unknown``. Coordinates are never rescaled, the guess is only recorded.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from smie.features.store import SmieError
from smie.pipeline.data.layouts import Layout, LayoutError, tree_towards

CENTRE_NAMES = re.compile(r"hips|pelvis", re.IGNORECASE)
UNITS = (("m", 0.5, 3.0), ("cm", 50.0, 300.0), ("mm", 500.0, 3000.0))  # unit, span range of a human rig


def rig_layout(joints: Sequence, xyz: np.ndarray, name: str, where: Path) -> tuple[Layout, list[int]]:
    """The layout ``NAME-V`` of a rig and the hierarchy indices of its V joints, from its ``joints`` (the
    parsed ``Joint`` s: name, parent, offset) and their world positions ``xyz`` (F, J, 3) over a clip;
    :class:`SmieError` naming ``where`` when no up axis can be told."""
    center = next((i for i, j in enumerate(joints) if CENTRE_NAMES.search(j.name)), 0)
    above, j = [], joints[center].parent
    while j >= 0:
        above.append(j)
        j = joints[j].parent
    chain = all(sum(k.parent == a for k in joints) == 1 for a in above)
    keep = [i for i in range(len(joints)) if not (chain and i in above)]
    at = {old: new for new, old in enumerate(keep)}
    edges = [(at[i], at[joints[i].parent]) for i in keep if joints[i].parent in at]
    xyz = xyz[:, keep]  # (F, V, 3)
    extent = np.median(xyz.max(axis=1) - xyz.min(axis=1), axis=0)
    up = int(np.argmax(extent))
    height = xyz[:, at[center], up] - xyz[:, :, up].min(axis=1)
    if up == 0 or np.median(height) <= 0:
        raise SmieError(f"{where}: cannot tell the up axis: the body is tallest along {'xyz'[up]} "
                        f"(extents {np.round(extent, 2).tolist()}) with the centre {joints[center].name} "
                        f"{'below' if np.median(height) <= 0 else 'above'} the lowest joint; smie reads y-up or z-up")
    try:
        bones = tree_towards(len(keep), edges, at[center])
        layout = Layout(f"{name}-{len(keep)}", tuple(joints[i].name for i in keep), bones, at[center], at[center],
                        "xyz"[up])
    except LayoutError as exc:
        raise SmieError(f"{where}: {exc}") from None
    return layout, keep


def guess_unit(joints: Sequence, keep: list[int]) -> tuple[str, float]:
    """The length unit a human-sized rig suggests, from its longest joint-to-joint path through the skeleton
    (head to toe, or hand to hand: about 1.4-2 m for adults, pose-independent), and that span in file units."""
    length = [float(np.linalg.norm(j.offset)) if j.parent >= 0 else 0.0 for j in joints]
    depth = {}
    for i, j in enumerate(joints):  # distance from the root along the hierarchy
        depth[i] = (depth[j.parent] if j.parent >= 0 else 0.0) + length[i]
    kept = set(keep)
    leaves = [i for i in kept if not any(k.parent == i for k in joints)]
    span = 0.0
    for a in leaves:
        for b in leaves:
            x, y = a, b
            anc = set()
            while x >= 0:
                anc.add(x)
                x = joints[x].parent
            while y not in anc:
                y = joints[y].parent
            span = max(span, depth[a] + depth[b] - 2 * depth[y])
    for unit, lo, hi in UNITS:
        if lo <= span < hi:
            return unit, span
    return "unknown", span
