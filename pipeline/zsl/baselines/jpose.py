"""JPoSE, joint part-of-speech embeddings (Wray et al., ICCV 2019), as re-implemented for skeletons by the SynSE
authors (skelemoa/synse-zsl ``jpose/zsl_fgar.py``, ``alignment_module.py``).

``class_sem`` is the concatenation of each class's verb-phrase and noun-phrase embeddings (kinds ``verb`` and
``noun``, split in halves here). One embedding space per part of speech: visual ``Linear(D, 50) + tanh``, text
``Linear(E', 512) + tanh + Linear(512, 50) + ReLU`` (the code's branch for wide language embeddings); a joint
space maps the concatenated 100-d PoS embeddings of each side through ``Linear(100, 50) + tanh``. All embeddings
are L2-normalised, and visual inputs too. Loss per PoS: the multi-class hinge against the training classes'
text embeddings (margin 0.3, class embeddings without gradient, as in the code) + 0.01 x a batch-hard triplet
loss grouping samples that share the verb (resp. noun); plus the joint-space hinge. Classes score by the dot
product in the joint space.
Choices: Adam lr 1e-4 (code: 1e-4 with plateau decay, weight decay 1e-3 on the joint module), 100 epochs (code:
up to 2000 with early stopping); text widths other than 1024 use the same two-layer text branch (the code
switches to one layer for 300-d word2vec).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from smie.pipeline.zsl.baselines.losses import hardest_triplet, multi_class_hinge
from smie.pipeline.zsl.baselines.synse import split_pos
from smie.pipeline.zsl.compute import adam
from smie.pipeline.zsl.compute import Linear
from smie.pipeline.zsl.method import BaseMethod, MethodContext
from smie.pipeline.zsl.spec import Epochs, MethodSpec


class _PosSpace(nn.Module):
    def __init__(self, visual_dim: int, text_dim: int, out: int, text_hidden: int):
        super().__init__()
        self.vis = nn.Sequential(Linear(visual_dim, out), nn.Tanh())
        self.text = nn.Sequential(Linear(text_dim, text_hidden), nn.Tanh(), Linear(text_hidden, out), nn.ReLU())


@dataclass(frozen=True)
class JPoSEParams:
    out: int = 50
    text_hidden: int = 512
    margin: float = 0.3
    triplet_weight: float = 0.01
    joint_weight_decay: float = 1e-3


class JPoSE(BaseMethod):
    def __init__(self, visual_dim: int, sem_dim: int, hparams: JPoSEParams = JPoSEParams(),
                 context: MethodContext | None = None):
        super().__init__(visual_dim, sem_dim, hparams, context)
        E = sem_dim // 2
        out, text_hidden = hparams.out, hparams.text_hidden
        self.margin, self.triplet_weight = float(hparams.margin), float(hparams.triplet_weight)
        self.joint_wd = hparams.joint_weight_decay
        self.verb = _PosSpace(visual_dim, E, out, text_hidden)
        self.noun = _PosSpace(visual_dim, E, out, text_hidden)
        self.joint_vis = nn.Sequential(Linear(2 * out, out), nn.Tanh())
        self.joint_text = nn.Sequential(Linear(2 * out, out), nn.Tanh())

    def optimizer(self, lr: float) -> torch.optim.Optimizer:
        """Adam, with the code's weight decay on the joint module only."""
        joint = list(self.joint_vis.parameters()) + list(self.joint_text.parameters())
        pos = list(self.verb.parameters()) + list(self.noun.parameters())
        return adam([{"params": pos}, {"params": joint, "weight_decay": self.joint_wd}], lr=lr)

    def _text(self, class_sem: torch.Tensor):
        verb, noun = split_pos(class_sem)
        tv = F.normalize(self.verb.text(verb), dim=-1)
        tn = F.normalize(self.noun.text(noun), dim=-1)
        return tv, tn, F.normalize(self.joint_text(torch.cat([tv, tn], 1)), dim=-1)

    def _visual(self, visual: torch.Tensor):
        x = F.normalize(visual, dim=-1)
        vv = F.normalize(self.verb.vis(x), dim=-1)
        vn = F.normalize(self.noun.vis(x), dim=-1)
        return vv, vn, F.normalize(self.joint_vis(torch.cat([vv, vn], 1)), dim=-1)

    def loss(self, batch) -> torch.Tensor:
        kv, kn, kj = self._text(batch.class_sem)  # each class text once (Kt rows), then one row per sample
        cv, cn, cj = kv.detach(), kn.detach(), kj.detach()
        with torch.no_grad():
            verb_ids = torch.unique(batch.class_sem[:, : batch.class_sem.shape[1] // 2], dim=0,
                                    return_inverse=True)[1][batch.labels]
            noun_ids = torch.unique(batch.class_sem[:, batch.class_sem.shape[1] // 2:], dim=0,
                                    return_inverse=True)[1][batch.labels]
        tv, tn, tj = (k.index_select(0, batch.labels) for k in (kv, kn, kj))
        vv, vn, vj = self._visual(batch.visual)
        m = self.margin
        loss = multi_class_hinge(vv, tv, cv, m) + multi_class_hinge(vn, tn, cn, m)
        loss = loss + self.triplet_weight * (hardest_triplet(vv, verb_ids, m) + hardest_triplet(vn, noun_ids, m))
        return loss + multi_class_hinge(vj, tj, cj, m)

    def scores(self, visual: torch.Tensor, class_sem: torch.Tensor) -> torch.Tensor:
        """(N, D), (K, 2E') -> (N, K) dot products in the joint space."""
        return self._visual(visual)[2] @ self._text(class_sem)[2].T


SPEC = MethodSpec("jpose", JPoSE, JPoSEParams, lr=1e-4, budget=Epochs(100), kinds=("verb", "noun"))
