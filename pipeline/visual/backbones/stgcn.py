"""ST-GCN (Yan et al., AAAI 2018) as a feature extractor: (N, C, T, V, M) skeletons -> (N, D) features.

Ten ST-GCN blocks (spatial graph convolution over the three partition subsets of :mod:`.graph`, then a
temporal convolution of kernel 9), a learnable edge-importance mask per block, BatchNorm over the input's
V*C channels ("data BN", as in the released code) and global average pooling over frames, joints and bodies.

Sizes (the channel plan is ``h, h, h, h, 2h(stride 2), 2h, 2h, 4h(stride 2), 4h, D``):

- ``small``: h=16, D=256, the configuration SMIE (``module/gcn/st_gcn.py``, ``hidden_channels=16,
  hidden_dim=256``, from CrossCLR/AimCLR) extracts its features with; dropout 0.5 as in SMIE's config.
- ``standard``: h=64, D=256, the original ST-GCN (64 -> 128 -> 256).

Parameter names follow the released code (``data_bn``, ``st_gcn_networks.i.gcn.conv``, ``.tcn``,
``.residual``, ``edge_importance.i``, buffer ``A``) so state dicts trained with it load unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from smie.pipeline.visual.backbones.graph import spatial_adjacency
from smie.pipeline.data.layouts import resolve_layout

SIZES = {"small": {"hidden_channels": 16, "hidden_dim": 256}, "standard": {"hidden_channels": 64, "hidden_dim": 256}}


class GraphConv(nn.Module):
    """One 1x1 convolution producing K groups of channels, each mixed over joints by its adjacency subset."""

    def __init__(self, in_channels: int, out_channels: int, num_subsets: int):
        super().__init__()
        self.num_subsets = num_subsets
        self.conv = nn.Conv2d(in_channels, out_channels * num_subsets, kernel_size=1)

    def forward(self, x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        """(N, C_in, T, V), (K, V, V) -> (N, C_out, T, V)."""
        x = self.conv(x)
        N, KC, T, V = x.shape
        x = x.view(N, self.num_subsets, KC // self.num_subsets, T, V)
        return torch.einsum("nkctv,kvw->nctw", x, A.to(x.dtype)).contiguous()


class STGCNBlock(nn.Module):
    """Graph convolution, then BN-ReLU-temporal conv-BN-dropout, plus a residual; (N, C, T, V) in and out."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_subsets: int,
        temporal_kernel: int = 9,
        stride: int = 1,
        dropout: float = 0.0,
        residual: bool = True,
    ):
        super().__init__()
        if temporal_kernel % 2 != 1:
            raise ValueError(f"temporal kernel must be odd, got {temporal_kernel}")
        self.gcn = GraphConv(in_channels, out_channels, num_subsets)
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, (temporal_kernel, 1), (stride, 1), ((temporal_kernel - 1) // 2, 0)),
            nn.BatchNorm2d(out_channels),
            nn.Dropout(dropout),
        )
        self.use_residual = residual
        if residual and (in_channels != out_channels or stride != 1):
            self.residual = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=(stride, 1)),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.residual = nn.Identity()

    def forward(self, x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        out = self.tcn(self.gcn(x, A))
        if self.use_residual:
            out = out + self.residual(x)
        return F.relu(out)


class STGCN(nn.Module):
    """ST-GCN backbone; ``forward`` maps (N, C, T, V, M) float skeletons to (N, hidden_dim) features.

    ``config`` holds the constructor arguments, so ``STGCN(**model.config)`` rebuilds the same network; ``layout``
    names a preset, or a custom layout whose data ``layout_spec`` carries (``Layout.spec()``).
    """

    def __init__(
        self,
        layout: str,
        hidden_channels: int = 16,
        hidden_dim: int = 256,
        in_channels: int = 3,
        dropout: float = 0.5,
        edge_importance: bool = True,
        temporal_kernel: int = 9,
        graph_distance: str = "official",
        num_person: int = 2,
        layout_spec: dict | None = None,
    ):
        super().__init__()
        self.config = dict(
            layout=layout, hidden_channels=hidden_channels, hidden_dim=hidden_dim, in_channels=in_channels,
            dropout=dropout, edge_importance=edge_importance, temporal_kernel=temporal_kernel,
            graph_distance=graph_distance, num_person=num_person,
        )
        if layout_spec is not None:  # a custom layout travels in the config: the graph is rebuilt from it
            self.config["layout_spec"] = layout_spec
        self.feature_dim = hidden_dim
        A = torch.from_numpy(spatial_adjacency(resolve_layout(layout, layout_spec), graph_distance))
        self.register_buffer("A", A)
        K, V, _ = A.shape
        self.data_bn = nn.BatchNorm1d(in_channels * V)
        h = hidden_channels
        plan = [(in_channels, h, 1), (h, h, 1), (h, h, 1), (h, h, 1), (h, 2 * h, 2), (2 * h, 2 * h, 1),
                (2 * h, 2 * h, 1), (2 * h, 4 * h, 2), (4 * h, 4 * h, 1), (4 * h, hidden_dim, 1)]
        self.st_gcn_networks = nn.ModuleList(
            STGCNBlock(c_in, c_out, K, temporal_kernel, stride, dropout=0.0 if i == 0 else dropout, residual=i > 0)
            for i, (c_in, c_out, stride) in enumerate(plan)
        )
        self.edge_importance = nn.ParameterList(
            nn.Parameter(torch.ones_like(A), requires_grad=edge_importance) for _ in self.st_gcn_networks
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V, M) -> (N, hidden_dim): mean over the last block's frames, joints and bodies."""
        N, C, T, V, M = x.shape
        x = x.permute(0, 4, 3, 1, 2).reshape(N * M, V * C, T)
        x = self.data_bn(x)
        x = x.view(N, M, V, C, T).permute(0, 1, 3, 4, 2).reshape(N * M, C, T, V)
        for block, importance in zip(self.st_gcn_networks, self.edge_importance):
            x = block(x, self.A * importance)
        return x.mean(dim=(2, 3)).view(N, M, -1).mean(dim=1)
