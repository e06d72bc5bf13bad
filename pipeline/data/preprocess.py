"""Per-sequence preprocessing into the fixed-length tensors of the skeleton cache, in this order:

1. **Drop invalid frames.** A frame is invalid when every body is all zeros (lost tracking, NTU frames with no
   body, MSR's zero frames) or any value is non-finite. The remaining frames keep their order; their count is
   the sample's *valid length*. A sequence with no valid frame is rejected (:class:`SmieError`).
2. **Centre** (``center="first"``, default): subtract the layout's centre joint (NTU/PKU: spine-mid, joint 2;
   MSR: spine; COCO: nose) of body 0 in its first valid frame from every present joint of every body and frame.
   Absent bodies stay exactly zero, so they remain recognisable as absent. One fixed origin per sequence removes
   where the subject stood relative to the camera while keeping the motion of the whole body (walking, jumping,
   falling, sitting down move the centre joint, and that motion is part of the action). This is the origin of
   the SGN/CTR-GCN NTU preprocessing. ``center="frame"`` instead subtracts body 0's centre joint of each frame,
   as the 2s-AGCN ``pre_normalization`` behind the CrossCLR/AimCLR data does (translation is then lost; its
   additional rotation of the hip-spine bone onto z and shoulders onto x is not applied here). ``"none"`` keeps
   camera coordinates.
3. **Resample** the valid frames to ``num_frames`` (default 50, as SMIE/CrossCLR's ``frame50`` data) by linear
   interpolation in time between neighbouring valid frames (positions ``linspace(0, L-1, num_frames)``), which
   both stretches short and shrinks long sequences; a single valid frame is repeated.
"""
from __future__ import annotations

import numpy as np

from smie.features.store import SmieError
from smie.pipeline.data.layouts import Layout

CENTERING = ("first", "frame", "none")


def valid_frames(data: np.ndarray) -> np.ndarray:
    """(C, T, V, M) -> (T,) bool: some body non-zero and every value finite."""
    finite = np.isfinite(data).all(axis=(0, 2, 3))
    nonzero = (np.nan_to_num(np.abs(data)).sum(axis=(0, 2, 3)) > 0)
    return finite & nonzero


def resample(data: np.ndarray, num_frames: int) -> np.ndarray:
    """(C, L, V, M) -> (C, num_frames, V, M) by linear interpolation along time."""
    C, L, V, M = data.shape
    if L == 1:
        return np.repeat(data, num_frames, axis=1)
    pos = np.linspace(0.0, L - 1, num_frames)
    lo = np.floor(pos).astype(int).clip(0, L - 2)
    w = (pos - lo).astype(np.float32)[None, :, None, None]
    return data[:, lo] * (1 - w) + data[:, lo + 1] * w


def preprocess_sample(
    data: np.ndarray, layout: Layout, num_frames: int = 50, center: str = "first", where: str = "sample"
) -> tuple[np.ndarray, int]:
    """(C, T, V, M) raw -> ((C, num_frames, V, M) float32, valid length); see the module docstring."""
    C, T, V, M = data.shape
    if V != layout.num_joints:
        raise SmieError(f"{where}: {V} joints, but layout {layout.name} has {layout.num_joints}")
    if center not in CENTERING:
        raise SmieError(f"unknown centring {center!r}; choose one of {', '.join(CENTERING)}")
    if num_frames < 1:
        raise SmieError(f"num_frames must be at least 1, got {num_frames}")
    x = np.asarray(data, dtype=np.float32)[:, valid_frames(data)]
    L = x.shape[1]
    if L == 0:
        raise SmieError(f"{where}: no valid frames (every frame is all zeros or non-finite); nothing to keep")
    present = np.abs(x).sum(axis=(0, 2)) > 0  # (L, M) body present in frame
    if center != "none":
        body = int(np.argmax(present.any(axis=0)))  # body 0 unless it never appears
        if center == "first":
            first = int(np.argmax(present[:, body]))
            origin = np.broadcast_to(x[:, first, layout.center, body][:, None], (C, L))
        else:
            origin = x[:, :, layout.center, body]
        x = x - origin[:, :, None, None] * present[None, :, None, :]
    return resample(x, num_frames).astype(np.float32), L
