"""Motion attention and keyframe masking (SMIE §3.4) on tiny hand-made and seeded sequences."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from smie.pipeline.visual.keyframes import gather_frames, keyframe_indices, kept_frames, masked_views, motion_attention


def _tiny() -> torch.Tensor:
    """(N=1, C=2, T=4, V=1, M=1): coordinate 0 goes 0,1,3,3; coordinate 1 goes 0,0,0,2."""
    x = torch.zeros(1, 2, 4, 1, 1)
    x[0, 0, :, 0, 0] = torch.tensor([0.0, 1.0, 3.0, 3.0])
    x[0, 1, :, 0, 0] = torch.tensor([0.0, 0.0, 0.0, 2.0])
    return x


def test_motion_attention_by_hand():
    # coordinate 0: forward steps 1,2,0,(0) -> squares 1,4,0,0; backward squares 0,1,4,0 -> 1,5,4,0
    # coordinate 1: forward steps 0,0,2,(0) -> squares 0,0,4,0; backward squares 0,0,0,4 -> 0,0,4,4
    # mean over the two coordinates: 0.5, 2.5, 4, 2
    motion = motion_attention(_tiny())
    assert motion.shape == (1, 4)
    assert torch.allclose(motion, torch.tensor([[0.5, 2.5, 4.0, 2.0]]))
    assert keyframe_indices(motion, 2).tolist() == [[2, 1]]
    assert kept_frames(_tiny(), "paper", k=2).tolist() == [[[0, 3]]]


def test_motion_attention_averages_joints_and_bodies():
    x = _tiny().repeat(1, 1, 1, 3, 2)
    x[..., 1] = 0  # the second body stands still: its zero motion halves the mean
    assert torch.allclose(motion_attention(x), torch.tensor([[0.25, 1.25, 2.0, 1.0]]))


def test_remaining_frames_match_released_code_first_stage():
    """The released code keeps the T-k frames of largest negative motion (torch.topk); same set here."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, 50, 7, 2, generator=g)
    n, c, t, v, m = x.shape
    pre, nex = torch.zeros_like(x), torch.zeros_like(x)
    pre[:, :, :-1] = x[:, :, 1:] - x[:, :, :-1]
    nex[:, :, 1:] = x[:, :, :-1] - x[:, :, 1:]
    att = (-(pre**2 + nex**2)).mean((1, 3, 4))
    reference = torch.sort(torch.topk(att, t - 15).indices, dim=1).values
    assert torch.equal(kept_frames(x, "paper", k=15)[:, 0], reference)


def test_official_variant_keeps_t_minus_30_in_order_without_keyframes():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 3, 50, 5, 2, generator=g)
    frames = kept_frames(x, "official", k=15, drop=15, views=4, seed=3)
    assert frames.shape == (6, 4, 20)
    assert (frames[..., 1:] > frames[..., :-1]).all()
    keys = keyframe_indices(motion_attention(x), 15)
    for i in range(6):
        assert not set(frames[i].flatten().tolist()) & set(keys[i].tolist())
    assert masked_views(x, "official", views=4, seed=3).shape == (6, 4, 3, 20, 5, 2)


def test_views_differ_and_are_reproducible_independent_of_batching():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(8, 3, 50, 5, 1, generator=g)
    idx = np.arange(100, 108)
    a = kept_frames(x, views=4, seed=7, sample_index=idx)
    assert torch.equal(a, kept_frames(x, views=4, seed=7, sample_index=idx))
    assert torch.equal(a[3:], kept_frames(x[3:], views=4, seed=7, sample_index=idx[3:]))
    for i in range(8):
        assert len({tuple(v) for v in a[i].tolist()}) == 4
    assert not torch.equal(a, kept_frames(x, views=4, seed=8, sample_index=idx))
    assert not torch.equal(a, kept_frames(x, views=4, seed=7, sample_index=idx + 1))


def test_gather_frames_picks_the_listed_frames():
    x = torch.arange(2 * 3 * 10 * 4 * 2, dtype=torch.float32).reshape(2, 3, 10, 4, 2)
    frames = torch.tensor([[[0, 4, 9]], [[1, 2, 3]]])
    out = gather_frames(x, frames)
    assert out.shape == (2, 1, 3, 3, 4, 2)
    assert torch.equal(out[1, 0], x[1][:, [1, 2, 3]])


def test_ties_go_to_the_earlier_frame_and_bad_sizes_are_refused():
    x = torch.zeros(1, 3, 10, 2, 1)
    assert keyframe_indices(motion_attention(x), 3).tolist() == [[0, 1, 2]]
    with pytest.raises(ValueError):
        kept_frames(x, "official", k=5, drop=5)
    with pytest.raises(ValueError):
        kept_frames(x, "zeroed")
