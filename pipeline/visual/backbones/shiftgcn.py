"""Shift-GCN (Cheng et al., CVPR 2020), joint stream, in plain PyTorch: (N, C, T, V, M) -> (N, 256).

Each block is a *non-local spatial shift graph convolution* (channel j of joint i is read from joint
(i + j) mod V, scaled by a learnable mask, mixed by a point-wise linear map and shifted back by -j joints) and an
*adaptive temporal shift* unit (per-channel learnable, fractional shifts along time with linear interpolation,
around a point-wise convolution). The released code needs a CUDA extension for the temporal shift; here it is a
gather over the time axis, and the extension's gradient rule for the shift (sign of the gradient times 0.01,
0.0001 where it is zero) is kept through a custom autograd step, so training behaves like the original. The
extension also shifts each channel along the joint axis by its ``xpos`` (bilinearly, like ``ypos`` in time);
initialised within 1e-8 of zero, that shift moves values by less than 1e-6 of a neighbour's and is skipped,
but a checkpoint whose ``xpos`` moved gets the extension's exact sampling (``import-backbone`` loads published
ones).

Sizes: ``standard`` is the paper's 64 -> 128 -> 256 plan; ``small`` (16 -> 32 -> 64 -> 256) mirrors SMIE's
small ST-GCN and is smie's own, not from the Shift-GCN paper. Parameter names follow the released code
(``l1`` .. ``l10``, ``gcn1``, ``tcn1``, ``Linear_weight``, ``Feature_Mask``, ``shift_in``/``shift_out``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from smie.pipeline.data.layouts import resolve_layout

SIZES = {"small": {"hidden_channels": 16, "hidden_dim": 256}, "standard": {"hidden_channels": 64, "hidden_dim": 256}}


class _ShiftGrad(torch.autograd.Function):
    """Identity forward; backward applies the released kernel's constraint to the shift gradient."""

    @staticmethod
    def forward(ctx, pos: torch.Tensor) -> torch.Tensor:
        return pos.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return torch.where(grad != 0, torch.sign(grad) * 0.01, torch.full_like(grad, 1e-4))


class TemporalShift(nn.Module):
    """Shift every channel along time by its own learnable fractional offset; (N, C, T, V) -> (N, C, ceil(T/s), V).

    The released kernel outputs floor(T/s) frames, which breaks its own strided residual (ceil(T/s) frames) for
    odd T, e.g. the 25 frames that 50-frame input has before the second stride; ceil keeps both aligned.
    """

    def __init__(self, channels: int, stride: int = 1, init_scale: float = 1.0):
        super().__init__()
        self.stride = stride
        self.xpos = nn.Parameter(torch.empty(channels).uniform_(-1e-8, 1e-8))
        self.ypos = nn.Parameter(torch.empty(channels).uniform_(-init_scale, init_scale))
        self._still = (None, True)  # (xpos version it was computed for, whether the joint shift is the identity)

    def _joint_shift(self, x: torch.Tensor) -> torch.Tensor:
        """The extension's per-channel shift along joints: ``out[..., w] = (1 - dx) x[..., w + x1] + dx
        x[..., w + x1 + 1]`` with ``x1 = floor(xpos)``, ``dx = xpos - x1`` (float32, as the kernel), zero outside;
        the identity (returned as is) when every channel's ``xpos`` is within 1e-6 of 0 (the kernel then moves
        values by at most 1e-6 of a neighbour's; the released initialisation is within 1e-8)."""
        pos = self.xpos.float()
        base = pos.detach().floor()
        frac = pos - base
        version = (self.xpos._version, self.xpos.data_ptr())
        if self._still[0] != version:  # decided once per value of xpos, not at every call (no device sync)
            self._still = (version, bool((pos.detach().abs() < 1e-6).all()))
        if self._still[1]:
            return x
        N, C, T, V = x.shape
        out = 0
        for offset, weight in ((0, 1 - frac), (1, frac)):
            idx = torch.arange(V, device=x.device)[None, :] + base.long()[:, None] + offset  # (C, V) source joint
            valid = ((idx >= 0) & (idx < V)).to(x.dtype).view(1, C, 1, V)
            src = torch.gather(x, 3, idx.clamp(0, V - 1).view(1, C, 1, V).expand(N, C, T, V))
            out = out + src * valid * weight.to(x.dtype).view(1, C, 1, 1)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._joint_shift(x)
        N, C, T, V = x.shape
        shift = _ShiftGrad.apply(self.ypos) + (0.5 if self.stride > 1 else 0.0)
        base = shift.detach().floor()
        frac = (shift - base).to(x.dtype).view(1, C, 1, 1)
        T_out = -(-T // self.stride)
        start = torch.arange(T_out, device=x.device) * self.stride
        channel_offset = torch.arange(C, device=x.device)[:, None] * T
        flat = x.reshape(N, C * T, V)
        out = 0
        for offset, weight in ((0, 1 - frac), (1, frac)):
            idx = start[None, :] + base.long()[:, None] + offset  # (C, T_out) source frame per output frame
            valid = ((idx >= 0) & (idx < T)).to(x.dtype).view(1, C, T_out, 1)
            rows = (idx.clamp(0, T - 1) + channel_offset).flatten()
            out = out + flat.index_select(1, rows).view(N, C, T_out, V) * (valid * weight)
        return out


class ShiftTCN(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shift_in = TemporalShift(in_channels, 1)
        self.shift_out = TemporalShift(out_channels, stride)
        self.temporal_linear = nn.Conv2d(in_channels, out_channels, 1)
        nn.init.kaiming_normal_(self.temporal_linear.weight, mode="fan_out")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.temporal_linear(self.shift_in(self.bn(x))))
        return self.bn2(self.shift_out(x))


class ShiftGCNUnit(nn.Module):
    """Non-local spatial shift graph convolution; (N, C_in, T, V) -> (N, C_out, T, V)."""

    def __init__(self, in_channels: int, out_channels: int, num_joints: int):
        super().__init__()
        V = num_joints
        self.out_channels = out_channels
        self.down = (
            nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
            if in_channels != out_channels else nn.Identity()
        )
        if in_channels != out_channels:
            nn.init.kaiming_normal_(self.down[0].weight, mode="fan_out")
            nn.init.zeros_(self.down[0].bias)
        self.Linear_weight = nn.Parameter(torch.randn(in_channels, out_channels) * math.sqrt(1.0 / out_channels))
        self.Linear_bias = nn.Parameter(torch.zeros(1, 1, out_channels))
        self.Feature_Mask = nn.Parameter(torch.zeros(1, V, in_channels))
        self.bn = nn.BatchNorm1d(V * out_channels)
        joint = torch.arange(V)[:, None]
        self.register_buffer("shift_in", (((joint + torch.arange(in_channels)) % V) * in_channels
                                          + torch.arange(in_channels)).flatten())
        self.register_buffer("shift_out", (((joint - torch.arange(out_channels)) % V) * out_channels
                                           + torch.arange(out_channels)).flatten())

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        N, C, T, V = x0.shape
        x = x0.permute(0, 2, 3, 1).reshape(N * T, V * C)
        x = x.index_select(1, self.shift_in).view(N * T, V, C)
        x = x * (torch.tanh(self.Feature_Mask) + 1)
        x = torch.einsum("nwc,cd->nwd", x, self.Linear_weight.to(x.dtype)) + self.Linear_bias
        x = x.reshape(N * T, V * self.out_channels).index_select(1, self.shift_out)
        x = self.bn(x).view(N, T, V, self.out_channels).permute(0, 3, 1, 2)
        return F.relu(x + self.down(x0))


class ShiftBlock(nn.Module):
    """Spatial shift GCN, temporal shift unit, residual; (N, C_in, T, V) -> (N, C_out, ceil(T / stride), V)."""

    def __init__(self, in_channels: int, out_channels: int, num_joints: int, stride: int = 1, residual: bool = True):
        super().__init__()
        self.gcn1 = ShiftGCNUnit(in_channels, out_channels, num_joints)
        self.tcn1 = ShiftTCN(out_channels, out_channels, stride)
        self.use_residual = residual
        if residual and (in_channels != out_channels or stride != 1):
            self.residual = nn.Module()
            self.residual.conv = nn.Conv2d(in_channels, out_channels, 1, stride=(stride, 1))
            self.residual.bn = nn.BatchNorm2d(out_channels)
            nn.init.kaiming_normal_(self.residual.conv.weight, mode="fan_out")
            nn.init.zeros_(self.residual.conv.bias)
        else:
            self.residual = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.tcn1(self.gcn1(x))
        if self.residual is not None:
            out = out + self.residual.bn(self.residual.conv(x))
        elif self.use_residual:
            out = out + x
        return F.relu(out)


class ShiftGCN(nn.Module):
    """Shift-GCN backbone; ``forward`` maps (N, C, T, V, M) to (N, hidden_dim). ``config`` rebuilds it."""

    def __init__(self, layout: str, hidden_channels: int = 64, hidden_dim: int = 256, in_channels: int = 3,
                 num_person: int = 2, layout_spec: dict | None = None):
        super().__init__()
        self.config = dict(layout=layout, hidden_channels=hidden_channels, hidden_dim=hidden_dim,
                           in_channels=in_channels, num_person=num_person)
        if layout_spec is not None:  # a custom layout (as STGCN)
            self.config["layout_spec"] = layout_spec
        self.feature_dim = hidden_dim
        V = resolve_layout(layout, layout_spec).num_joints
        self.data_bn = nn.BatchNorm1d(num_person * in_channels * V)
        h = hidden_channels
        plan = [(in_channels, h, 1), (h, h, 1), (h, h, 1), (h, h, 1), (h, 2 * h, 2), (2 * h, 2 * h, 1),
                (2 * h, 2 * h, 1), (2 * h, 4 * h, 2), (4 * h, 4 * h, 1), (4 * h, hidden_dim, 1)]
        for i, (c_in, c_out, stride) in enumerate(plan):
            self.add_module(f"l{i + 1}", ShiftBlock(c_in, c_out, V, stride, residual=i > 0))
        self.num_blocks = len(plan)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V, M) -> (N, hidden_dim): mean over the last block's frames, joints and bodies."""
        N, C, T, V, M = x.shape
        x = self.data_bn(x.permute(0, 4, 3, 1, 2).reshape(N, M * V * C, T))
        x = x.view(N, M, V, C, T).permute(0, 1, 3, 4, 2).reshape(N * M, C, T, V)
        for i in range(self.num_blocks):
            x = getattr(self, f"l{i + 1}")(x)
        return x.mean(dim=(2, 3)).view(N, M, -1).mean(dim=1)
