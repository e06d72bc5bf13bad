"""ST-GCN's spatial-partitioning adjacency, built from a :class:`smie.pipeline.data.layouts.Layout`.

Yan et al. (AAAI 2018) split each joint's 1-hop neighbourhood into three subsets relative to the skeleton's
centre of gravity: the root itself, the *centripetal* neighbours (closer to the centre than the root) and the
*centrifugal* ones (farther away). Each subset gets its own weights; the adjacency is normalised by in-degree
so a joint averages over its neighbours.

``distance="official"`` reproduces the released ST-GCN code (``net/utils/graph.py``, ``max_hop=1``): distances
to the centre are only known up to one hop, so two joints both two or more hops away count as equidistant and
their edge lands in the centrifugal-or-equidistant subset. SMIE, CrossCLR and AimCLR trained with that graph,
and foreign state dicts carry it, so it is the default. ``distance="geodesic"`` uses true tree distances, i.e. the
partitioning as the paper describes it.
"""
from __future__ import annotations

import numpy as np

from smie.pipeline.data.layouts import Layout

DISTANCES = ("official", "geodesic")


def hop_distance(num_joints: int, edges: list[tuple[int, int]], max_hop: int) -> np.ndarray:
    """(V, V) hop counts over the undirected ``edges``; ``inf`` beyond ``max_hop``."""
    A = np.eye(num_joints)
    for i, j in edges:
        A[i, j] = A[j, i] = 1
    dist = np.full((num_joints, num_joints), np.inf)
    reach = np.eye(num_joints)
    for d in range(max_hop + 1):
        dist[(reach > 0) & np.isinf(dist)] = d
        reach = reach @ A
    return dist


def spatial_adjacency(layout: Layout, distance: str = "official") -> np.ndarray:
    """(3, V, V) float32; ``A[k, v, w]`` weighs joint ``v``'s input to root joint ``w``.

    Subsets in the released code's order (foreign weights depend on it): 0 the root itself, 1 neighbours at
    least as far from the centre as the root (centrifugal, plus equidistant ones), 2 neighbours closer to the
    centre (centripetal). Column-normalised like ST-GCN's ``normalize_digraph``: each column of the 1-hop
    adjacency with self-loops sums to one before the split.
    """
    if distance not in DISTANCES:
        raise ValueError(f"graph distance must be one of {DISTANCES}, got {distance!r}")
    V = layout.num_joints
    center = getattr(layout, "graph_center", layout.center)
    edges = [(int(c), int(p)) for c, p in layout.bones]
    hop = hop_distance(V, edges, max_hop=1)
    to_center = (hop if distance == "official" else hop_distance(V, edges, max_hop=V))[:, center]
    adjacency = (hop <= 1).astype(np.float64)
    normalized = adjacency / adjacency.sum(axis=0, keepdims=True)

    neighbour = hop == 1
    d_from = to_center[:, None]  # distance of the sending joint v
    d_to = to_center[None, :]  # distance of the receiving (root) joint w
    root = np.where(hop == 0, normalized, 0.0)
    centrifugal = np.where(neighbour & (d_from >= d_to), normalized, 0.0)
    centripetal = np.where(neighbour & (d_from < d_to), normalized, 0.0)
    return np.stack([root, centrifugal, centripetal]).astype(np.float32)
