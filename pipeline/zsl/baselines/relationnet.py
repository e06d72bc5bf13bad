"""Relation Network for zero-shot learning (Sung et al., CVPR 2018) on cached skeleton features.

The semantic embedding module (E -> hidden -> D, ReLU after each layer) maps a class text into the visual
feature space; the relation module (2D -> relation_hidden -> 1, ReLU then sigmoid) scores the concatenation of
a visual feature with an embedded class. Training regresses the relation scores of every (sample, training
class) pair onto the one-hot label with mean squared error, as in the paper.
Choices: hidden 1024 and relation_hidden 400 follow the paper's attribute-based ZSL networks; the visual side is
the cached backbone feature (the paper also uses fixed pretrained CNN features); Adam with weight
decay 1e-5 and lr 1e-3 (the paper: lr 1e-5 over 500k episodes; a run over a small skeleton cache has a few hundred
steps, and at 1e-4 or below the network stays in the constant-output minimum of the MSE loss).
All training classes are scored in each batch, whereas the paper's episodes score only the classes present in
the batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from smie.pipeline.zsl.compute import adam
from smie.pipeline.zsl.compute import Linear
from smie.pipeline.zsl.method import BaseMethod, MethodContext
from smie.pipeline.zsl.spec import Epochs, MethodSpec


@dataclass(frozen=True)
class RelationNetParams:
    hidden: int = 1024
    relation_hidden: int = 400
    weight_decay: float = 1e-5


class RelationNet(BaseMethod):
    def __init__(self, visual_dim: int, sem_dim: int, hparams: RelationNetParams = RelationNetParams(),
                 context: MethodContext | None = None):
        super().__init__(visual_dim, sem_dim, hparams, context)
        hidden, relation_hidden = hparams.hidden, hparams.relation_hidden
        self.weight_decay = float(hparams.weight_decay)
        self.embed = nn.Sequential(Linear(sem_dim, hidden), nn.ReLU(), Linear(hidden, visual_dim), nn.ReLU())
        self.rel_visual = Linear(visual_dim, relation_hidden)
        self.rel_sem = Linear(visual_dim, relation_hidden, bias=False)
        self.rel_out = Linear(relation_hidden, 1)

    def optimizer(self, lr: float) -> torch.optim.Optimizer:
        """Adam with the paper's weight decay."""
        return adam(self.parameters(), lr=lr, weight_decay=self.weight_decay)

    def _relations(self, visual: torch.Tensor, class_sem: torch.Tensor) -> torch.Tensor:
        """(N, D), (K, E) -> (N, K) relation scores in [0, 1].

        The first relation layer on ``concat(v, e)`` is split as ``W_v v + W_e e + b`` so the (N, K, 2D) pair
        tensor is never built; the function is the same.
        """
        e = self.embed(class_sem)
        h = torch.relu(self.rel_visual(visual)[:, None, :] + self.rel_sem(e)[None, :, :])
        return torch.sigmoid(self.rel_out(h).squeeze(-1))

    def loss(self, batch) -> torch.Tensor:
        r = self._relations(batch.visual, batch.class_sem)
        target = torch.nn.functional.one_hot(batch.labels, r.shape[1]).to(r.dtype)
        return ((r - target) ** 2).mean()

    def scores(self, visual: torch.Tensor, class_sem: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
        """(N, D), (K, E) -> (N, K) relation scores, in chunks of samples to bound the (N, K, hidden) memory."""
        return torch.cat([self._relations(v, class_sem) for v in visual.split(chunk)]) if len(visual) else \
            visual.new_zeros(0, class_sem.shape[0])


SPEC = MethodSpec("relationnet", RelationNet, RelationNetParams, lr=1e-3, budget=Epochs(100))
