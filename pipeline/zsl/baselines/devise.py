"""DeViSE (Frome et al., NeurIPS 2013) on cached skeleton features.

A linear map M projects visual features (N, D) into the semantic space (E); a class scores ``<M v, s_k>`` and
training minimises the hinge rank loss ``sum_{j != y} max(0, margin - <Mv, s_y> + <Mv, s_j>)`` over the
training classes. Semantics are L2-normalised (as in the paper, whose label vectors have unit norm).
Choices: margin 0.1 (paper); Adam lr 1e-3 for 100 epochs (the paper used SGD on a pretrained visual model that
is also fine-tuned; here the visual features are frozen caches, so only M trains).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from smie.pipeline.zsl.baselines.losses import ranking_hinge
from smie.pipeline.zsl.compute import Linear
from smie.pipeline.zsl.method import BaseMethod, MethodContext
from smie.pipeline.zsl.spec import Epochs, MethodSpec


@dataclass(frozen=True)
class DeViSEParams:
    margin: float = 0.1


class DeViSE(BaseMethod):
    def __init__(self, visual_dim: int, sem_dim: int, hparams: DeViSEParams = DeViSEParams(),
                 context: MethodContext | None = None):
        super().__init__(visual_dim, sem_dim, hparams, context)
        self.margin = float(hparams.margin)
        self.proj = Linear(visual_dim, sem_dim)

    def _compat(self, visual: torch.Tensor, class_sem: torch.Tensor) -> torch.Tensor:
        return self.proj(visual) @ F.normalize(class_sem, dim=-1).T

    def loss(self, batch) -> torch.Tensor:
        return ranking_hinge(self._compat(batch.visual, batch.class_sem), batch.labels, self.margin)

    def scores(self, visual: torch.Tensor, class_sem: torch.Tensor) -> torch.Tensor:
        """(N, D), (K, E) -> (N, K) dot products in the semantic space."""
        return self._compat(visual, class_sem)


SPEC = MethodSpec("devise", DeViSE, DeViSEParams, lr=1e-3, budget=Epochs(100))
