"""ReViSE (Tsai et al., ICCV 2017) on cached skeleton features, at the scale of the SynSE authors' re-implementation.

Two autoencoders: visual D -> 500 -> 100 (decoder mirrored) and text E -> 100; from each hidden code a
``Linear + tanh`` head gives a 50-d embedding. The loss (skelemoa/synse-zsl ``zsl_revise.py``) is

    hinge(vis_emb, text_emb, training-class embeddings; margin 0.3)
    + contractive visual reconstruction (MSE + gamma * ||d h / d x||, gamma 1e-4) + text reconstruction (MSE)
    + MMD(hidden_visual, hidden_text) (Gaussian kernel, k = 32)

and a class scores ``<vis_emb, text_emb(class)>``. The class embeddings used by the hinge are computed without
gradient, as in that code.
Choices: the visual input is ``sign(x) log(1 + |x|)`` (the code applies ``log(1 + x)`` to non-negative
post-ReLU features; the signed form is the same there and defined for any cache); decoders have no output
ReLU for the same reason; the contractive term is differentiated (the code computes it from a detached
gradient, so it never trains); Adam lr 1e-4, 100 epochs (code: 300 epochs with plateau decay).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from smie.pipeline.zsl.baselines.losses import gaussian_mmd, multi_class_hinge
from smie.pipeline.zsl.compute import Linear
from smie.pipeline.zsl.method import BaseMethod, MethodContext
from smie.pipeline.zsl.spec import Epochs, MethodSpec


class _AE(nn.Module):
    def __init__(self, dims: tuple[int, ...], out: int):
        super().__init__()
        enc, dec = [], []
        for a, b in zip(dims[:-1], dims[1:]):
            enc += [Linear(a, b), nn.ReLU()]
        rev = dims[::-1]
        for i, (a, b) in enumerate(zip(rev[:-1], rev[1:])):
            dec += [Linear(a, b)] + ([nn.ReLU()] if i < len(rev) - 2 else [])
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)
        self.head = nn.Sequential(Linear(dims[-1], out), nn.Tanh())

    def forward(self, x: torch.Tensor):
        h = self.encoder(x)
        return h, self.decoder(h), self.head(h)


@dataclass(frozen=True)
class ReViSEParams:
    visual_hidden: int = 500
    hidden: int = 100
    out: int = 50
    margin: float = 0.3
    gamma: float = 1e-4
    mmd_k: float = 32.0


class ReViSE(BaseMethod):
    def __init__(self, visual_dim: int, sem_dim: int, hparams: ReViSEParams = ReViSEParams(),
                 context: MethodContext | None = None):
        super().__init__(visual_dim, sem_dim, hparams, context)
        h = hparams
        self.margin, self.gamma, self.mmd_k = float(h.margin), float(h.gamma), float(h.mmd_k)
        self.vis = _AE((visual_dim, h.visual_hidden, h.hidden), h.out)
        self.att = _AE((sem_dim, h.hidden), h.out)

    @staticmethod
    def _prep(visual: torch.Tensor) -> torch.Tensor:
        return torch.sign(visual) * torch.log1p(visual.abs())

    def loss(self, batch) -> torch.Tensor:
        x = self._prep(batch.visual).detach().requires_grad_(True)
        vh, vrec, vemb = self.vis(x)
        jac = torch.autograd.grad(vh.sum(), x, create_graph=True)[0]
        vis_rec = ((vrec - x) ** 2).mean() + self.gamma * jac.pow(2).sum().sqrt()
        t = batch.class_sem[batch.labels]
        th_k, trec_k, temb_k = self.att(batch.class_sem)  # each class text once (Kt rows), then one row per sample
        th, trec, temb = (k.index_select(0, batch.labels) for k in (th_k, trec_k, temb_k))
        att_rec = ((trec - t) ** 2).mean()
        class_emb = temb_k.detach()
        return multi_class_hinge(vemb, temb, class_emb, self.margin) + vis_rec + att_rec + gaussian_mmd(
            vh, th, self.mmd_k)

    def scores(self, visual: torch.Tensor, class_sem: torch.Tensor) -> torch.Tensor:
        """(N, D), (K, E) -> (N, K) dot products of the 50-d embeddings."""
        return self.vis(self._prep(visual))[2] @ self.att(class_sem)[2].T


SPEC = MethodSpec("revise", ReViSE, ReViSEParams, lr=1e-4, budget=Epochs(100))
