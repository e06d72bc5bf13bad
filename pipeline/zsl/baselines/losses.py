"""Embedding-alignment losses shared by the projection baselines (DeViSE, ReViSE, JPoSE).

All inputs are plain tensors: ``scores`` (B, K) compatibilities of B samples with K classes, ``labels`` (B,)
column indices of the true class; embeddings are (B, F). These follow the losses of the SynSE authors' code
(skelemoa/synse-zsl, ``alignment_module.py``/``ReViSE.py``), rewritten vectorised.
"""
from __future__ import annotations

import torch


def ranking_hinge(scores: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """DeViSE's hinge rank loss: mean over samples of sum_{j != y} max(0, margin - s_y + s_j)."""
    B, K = scores.shape
    true = scores.gather(1, labels.view(B, 1))
    viol = (margin - true + scores).clamp(min=0)
    viol = viol.masked_fill(torch.nn.functional.one_hot(labels, K).bool(), 0.0)
    return viol.sum(1).mean()


def multi_class_hinge(vis: torch.Tensor, text: torch.Tensor, class_emb: torch.Tensor, margin: float) -> torch.Tensor:
    """The SynSE-code hinge: sum_k max(0, <v, c_k> - <v, t> + margin) / B, where t is the sample's own text.

    ``vis`` (B, F) visual embeddings, ``text`` (B, F) the embeddings of each sample's class text, ``class_emb``
    (K, F) all training-class text embeddings (the true class included, as in the authors' code).
    """
    B = vis.shape[0]
    gt = (vis * text).sum(1, keepdim=True)
    return (vis @ class_emb.T - gt + margin).clamp(min=0).sum() / B


def gaussian_mmd(a: torch.Tensor, b: torch.Tensor, k: float = 32.0) -> torch.Tensor:
    """Maximum mean discrepancy between two equally sized batches (B, F) with kernel exp(-k ||x - y||^2)."""
    x = torch.cat([a, b], 0)
    kern = torch.exp(-k * torch.cdist(x, x).pow(2))
    n = a.shape[0]
    return (kern[:n, :n] + kern[n:, n:] - kern[:n, n:] - kern[n:, :n]).mean()


def hardest_triplet(emb: torch.Tensor, groups: torch.Tensor, margin: float) -> torch.Tensor:
    """Batch-hard triplet loss on dot products, as JPoSE's PoS-level term in the SynSE code.

    For each anchor i: the hardest positive p(i) is the least similar sample of its group, the hardest negative
    n(i) the most similar sample of another group (both mined without gradient); the loss averages over
    anchors the sum over j of max(0, <e_j, e_n(i)> - <e_j, e_p(i)> + margin), exactly the authors' broadcast.
    Anchors whose group fills the whole batch contribute nothing (no negative exists).
    """
    with torch.no_grad():
        sim = emb @ emb.T
        same = groups.view(-1, 1) == groups.view(1, -1)
        pos = sim.masked_fill(~same, float("inf")).argmin(1)
        neg_sim = sim.masked_fill(same, float("-inf"))
        neg = neg_sim.argmax(1)
        valid = torch.isfinite(neg_sim.max(1).values)
    if not bool(valid.any()):
        return emb.sum() * 0.0
    pos_s = emb @ emb[pos].T
    neg_s = emb @ emb[neg].T
    fin = (neg_s - pos_s + margin).clamp(min=0) * valid.view(1, -1).float()
    return fin.sum(1).mean()
