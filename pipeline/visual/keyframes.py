"""Bidirectional motion attention and keyframe masking (SMIE §3.4, eqs. 6-8), on batches (N, C, T, V, M).

SMIE's temporal constraint asks the estimator to find *less* mutual information in a sequence whose most
informative frames are gone than in the whole sequence. The informative frames are the ones that move most:

* eq. 6: forward displacement ``x[t+1] - x[t]`` and backward displacement ``x[t-1] - x[t]`` per coordinate,
  joint and body; the missing neighbour at either end counts as zero displacement (as in the released code);
* eq. 7: a frame's motion is the mean over coordinates, joints and bodies of the sum of both squared
  displacements -- :func:`motion_attention`;
* eq. 8: the ``k`` frames with the highest motion are the keyframes -- :func:`keyframe_indices`.

Two masking variants, both *removing* frames (never zeroing them): removing is what the released code does
(``gather`` on the kept frames), and a zeroed frame inside a sequence would itself look like a burst of
motion to the backbone's temporal convolutions. ST-GCN pools over time, so a shorter sequence passes as is.

* ``paper``: the keyframes are removed, every other frame is kept in order: ``T - k`` frames. Deterministic,
  so it yields one view whatever number of views is asked for.
* ``official`` (YujieOuO/SMIE ``model.motion_att_temp_mask2``): remove the ``k`` highest-motion frames, then
  drop ``drop`` frames uniformly at random from the remaining ``T - k``, keep temporal order: ``T - k - drop``
  frames (20 of 50 with the defaults). The released code redraws the random part at every training step and
  uses one draw for the whole batch; a cache cannot redraw, so each sample gets ``views`` independent draws,
  each from a counter-based hash of ``(seed, sample index, view)``. Results therefore do not depend on batch
  size, chunking or sharding (a deviation from one-draw-per-batch, which no cache can reproduce anyway).

Ties in motion are broken towards the earlier frame (the released code leaves them to ``torch.topk``).
"""
from __future__ import annotations

import numpy as np
import torch

VARIANTS = ("paper", "official")
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def motion_attention(x: torch.Tensor) -> torch.Tensor:
    """Per-frame motion of ``x`` (N, C, T, V, M) -> (N, T) float32: mean over C, V, M of squared forward plus
    squared backward displacement (zero displacement past either end)."""
    N, C, T, V, M = x.shape
    x = x.float()
    step = torch.zeros_like(x)
    step[:, :, :-1] = x[:, :, 1:] - x[:, :, :-1]
    sq = step.pow(2)
    backward = torch.zeros_like(sq)
    backward[:, :, 1:] = sq[:, :, :-1]
    return (sq + backward).mean(dim=(1, 3, 4))


def keyframe_indices(motion: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` highest-motion frames of ``motion`` (N, T) -> (N, k) int64, ties to the earlier frame."""
    order = torch.sort(motion, dim=1, descending=True, stable=True).indices
    return order[:, :k]


def _splitmix(h: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays: a cheap counter-based hash with good avalanche."""
    with np.errstate(over="ignore"):
        h = (h + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        h = ((h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        h = ((h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return h ^ (h >> np.uint64(31))


def random_keys(seed: int, sample_index: np.ndarray, views: int, length: int) -> np.ndarray:
    """Reproducible uniform keys (n, views, length) uint64 for samples ``sample_index`` (n,) (global row numbers).

    Key ``[i, v, j]`` depends only on ``(seed, sample_index[i], v, j)``, never on how samples are batched.
    """
    idx = np.asarray(sample_index, dtype=np.int64).astype(np.uint64)
    h = _splitmix(np.full(1, np.uint64(seed % (1 << 64)), dtype=np.uint64))
    h = _splitmix(h[:, None, None] ^ idx[:, None, None])
    h = _splitmix(h ^ np.arange(views, dtype=np.uint64)[None, :, None])
    return _splitmix(h ^ np.arange(length, dtype=np.uint64)[None, None, :])


def kept_frames(
    x: torch.Tensor,
    variant: str = "official",
    k: int = 15,
    drop: int = 15,
    views: int = 4,
    seed: int = 0,
    sample_index: np.ndarray | None = None,
) -> torch.Tensor:
    """Frame indices each masked view keeps, ascending: (N, V', T') int64 on ``x``'s device.

    ``x`` is (N, C, T, V, M); ``sample_index`` (N,) are the samples' global row numbers (default 0..N-1) and
    seed the random part. ``paper``: V' = 1, T' = T - k. ``official``: V' = ``views``, T' = T - k - drop.
    """
    N, C, T, V, M = x.shape
    if variant not in VARIANTS:
        raise ValueError(f"unknown masking variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    rest = T - k - (drop if variant == "official" else 0)
    if k < 0 or drop < 0 or rest < 1:
        raise ValueError(f"cannot remove {k} keyframes and drop {drop} more from {T} frames")
    motion = motion_attention(x)
    removed = keyframe_indices(motion, k)
    keep = torch.ones(N, T, dtype=torch.bool, device=x.device)
    keep.scatter_(1, removed, False)
    remaining = torch.nonzero(keep)[:, 1].view(N, T - k)
    if variant == "paper":
        return remaining[:, None, :]
    if sample_index is None:
        sample_index = np.arange(N)
    keys = random_keys(seed, sample_index, views, T - k)
    chosen = np.sort(np.argsort(keys, axis=2, kind="stable")[:, :, drop:], axis=2)
    pos = torch.from_numpy(chosen).to(x.device)
    return torch.gather(remaining[:, None, :].expand(N, views, T - k), 2, pos)


def gather_frames(x: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Select ``frames`` (N, V', T') from ``x`` (N, C, T, V, M) -> (N, V', C, T', V, M)."""
    N, C, T, V, M = x.shape
    n, views, t = frames.shape
    idx = frames[:, :, None, :, None, None].expand(N, views, C, t, V, M)
    return torch.gather(x[:, None].expand(N, views, C, T, V, M), 3, idx)


def masked_views(
    x: torch.Tensor,
    variant: str = "official",
    k: int = 15,
    drop: int = 15,
    views: int = 4,
    seed: int = 0,
    sample_index: np.ndarray | None = None,
) -> torch.Tensor:
    """Keyframe-masked views of ``x`` (N, C, T, V, M) -> (N, V', C, T', V, M); see :func:`kept_frames`."""
    return gather_frames(x, kept_frames(x, variant, k, drop, views, seed, sample_index))


def num_views(variant: str, views: int) -> int:
    """How many views a variant yields: ``paper`` is deterministic, so always one."""
    return 1 if variant == "paper" else views
