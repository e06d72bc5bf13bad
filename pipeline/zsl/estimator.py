"""The SMIE estimator (Zhou et al. 2023): a JSD mutual-information critic over (visual, semantic) pairs.

Faithful to the official code (YujieOuO/SMIE, ``model.py`` and ``procedure.py``):

- visual features pass through ``LayerNorm(D, elementwise_affine=False)``; semantics are L2-normalised
  (the official code normalises its language embeddings once, on load);
- the critic ``T(v, s)`` is an MLP on ``concat(v, s)``: (D+E) -> 1024 -> 512 -> 1 with ReLU;
- the global MI is the Jensen-Shannon estimate ``E_P[-softplus(-T(v, s))] - E_N[softplus(T(v', s))]``, whose
  negatives ``v'`` are the visual batch rolled by one (``v'_i = v_{i+1}``);
- the temporal constraint computes the same estimate with the positive visual replaced by a keyframe-masked
  view of the same sequence, the negatives unchanged (still drawn from the unmasked batch), and adds the hinge
  ``lam * max(0, alpha - (MI_global - MI_masked))`` to ``-MI_global``.

Options beyond the code: ``negatives="roll-diff-class"`` (each sample's negative is the next sample of the
shuffled batch whose class differs: the code's one negative per positive and its cost, without same-class
negatives), ``negatives="all"`` (every off-diagonal pair of the batch) and
``negatives="all-diff-class"`` (only pairs whose classes differ, so a same-class pair is never a negative).
Scores for inference are ``T(v, s)``; the official ``get_acc`` ranks ``-softplus(-T)``, a monotone transform,
so the ranking (and every accuracy) is the same.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from smie.features.store import SmieError
from smie.pipeline.zsl.linear import ConcatLinear, Linear, linear

NEGATIVES = ("roll", "roll-diff-class", "all", "all-diff-class")


def jsd_terms(t_pos: torch.Tensor, t_neg: torch.Tensor, neg_weight: torch.Tensor | None = None):
    """Positive and negative expectations of the JSD MI estimate.

    ``t_pos`` holds critic values of joint pairs, ``t_neg`` of product-of-marginal pairs; ``neg_weight``
    (same shape as ``t_neg``, 0/1) selects which negatives count. Returns ``(E_P[-softplus(-T)],
    E_N[softplus(T)])``; an empty negative set contributes 0.
    """
    ej = -F.softplus(-t_pos).mean()
    sp = F.softplus(t_neg)
    if neg_weight is None:
        return ej, sp.mean()
    total = neg_weight.sum()
    em = (sp * neg_weight).sum() / total.clamp(min=1)
    return ej, em


def next_other_class(labels: torch.Tensor, reach: int = 32) -> torch.Tensor:
    """For each row of ``labels`` (B,), the index of the next row (cyclically, at most ``reach`` ahead) of
    another class; the next row when none is that close (a batch of one class has no true negative)."""
    B = labels.shape[0]
    rows = torch.arange(B, device=labels.device)
    cand = (rows[:, None] + torch.arange(1, min(max(B - 1, 1), reach) + 1, device=labels.device)[None, :]) % B
    diff = labels[cand] != labels[:, None]
    first = diff.to(torch.int8).argmax(dim=1)
    return torch.where(diff.any(dim=1), cand[rows, first], (rows + 1) % B)


def temporal_hinge(mi_global: torch.Tensor, mi_masked: torch.Tensor, alpha: float, lam: float) -> torch.Tensor:
    """SMIE's loss: ``-MI_global + lam * max(0, alpha - (MI_global - MI_masked))``."""
    return -mi_global + lam * torch.clamp(alpha - (mi_global - mi_masked), min=0)


class SMIEEstimator(nn.Module):
    """JSD MI critic between visual features (D) and class semantics (E).

    ``alpha`` is the temporal margin (official code 0.1; paper Table 1: 0.1 NTU-60, 0.5 NTU-120, 0.01 PKU-MMD),
    ``lam`` its weight (0.5 in the code), ``temporal=False`` gives the code's "sota" track (global MI only).
    """

    def __init__(self, visual_dim: int, sem_dim: int, hidden: tuple[int, int] = (1024, 512), alpha: float = 0.1,
                 lam: float = 0.5, temporal: bool = True, negatives: str = "roll", score_chunk: int = 1 << 24):
        super().__init__()
        if negatives not in NEGATIVES:
            raise SmieError(f"SMIE option negatives must be one of {', '.join(NEGATIVES)}, got {negatives!r}")
        if len(tuple(hidden)) != 2:
            raise SmieError(f"SMIE option hidden must be two layer widths, got {hidden!r}")
        self.config = dict(visual_dim=int(visual_dim), sem_dim=int(sem_dim), hidden=tuple(int(h) for h in hidden),
                           alpha=float(alpha), lam=float(lam), temporal=bool(temporal), negatives=negatives)
        self.alpha, self.lam, self.temporal, self.negatives = float(alpha), float(lam), bool(temporal), negatives
        self.score_chunk = int(score_chunk)
        h0, h1 = hidden
        self.l0 = ConcatLinear(visual_dim, sem_dim, h0)
        self.l1 = Linear(h0, h1)
        self.l2 = Linear(h1, 1)

    @staticmethod
    def ln(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
        """``nn.LayerNorm(D, elementwise_affine=False)`` written out: on small CPU batches the fused kernel
        stalls on its thread pool (milliseconds per call), and so does ``Tensor.var`` (160 us for 256 x 256,
        where the centred square's mean takes 19 us); same values to float rounding."""
        centred = x - x.mean(dim=-1, keepdim=True)
        var = (centred * centred).mean(dim=-1, keepdim=True)
        return centred / torch.sqrt(var + eps)

    def critic(self, visual: torch.Tensor, sem: torch.Tensor) -> torch.Tensor:
        """``T(v_i, s_i)`` for row-aligned pairs: (B, D) layer-normed, (B, E) normalised -> (B,)."""
        x = torch.cat((visual, sem), dim=-1)
        return self.l2(F.relu(self.l1(F.relu(self.l0(x))))).squeeze(-1)

    def _pairwise(self, visual: torch.Tensor, sem: torch.Tensor) -> torch.Tensor:
        """``T(v_i, s_k)`` for every pair: (N, D), (K, E) -> (N, K), chunked over N to bound memory.

        The first layer is split as ``W_v v + W_s s + b`` so the (N, K, D+E) concatenation is never built.
        """
        N, D = visual.shape
        K = sem.shape[0]
        w_v = self.l0.weight_a
        hs = linear(sem, self.l0.weight_b, self.l0.bias)
        step = max(1, self.score_chunk // max(1, K * hs.shape[1]))
        out = []
        for start in range(0, N, step):
            hv = linear(visual[start:start + step], w_v)
            h = (hv[:, None, :] + hs[None, :, :]).relu_()
            out.append(self.l2(F.relu(self.l1(h))).squeeze(-1))
        return torch.cat(out, dim=0) if out else visual.new_zeros((0, K))

    def _head(self, h0: torch.Tensor) -> torch.Tensor:
        """The critic after its first layer: pre-activations (..., H0) -> (...)."""
        return self.l2(F.relu(self.l1(F.relu(h0)))).squeeze(-1)

    def mutual_information(self, visual: torch.Tensor, sem: torch.Tensor, labels: torch.Tensor,
                           masked: torch.Tensor | None = None, sem_index: torch.Tensor | None = None):
        """JSD MI of the batch, and (if ``masked`` is given) the MI with masked views as positives.

        visual (B, D) raw features, sem (B, E) semantics of each sample's class, labels (B,), masked (B, D).
        With ``sem_index`` (B,) given, ``sem`` is instead the class table (K, E) and row i's semantics is
        ``sem[sem_index[i]]``.

        The critic's first layer is linear in ``concat(v, s)``, so it is computed as ``W_v v + (W_s s + b)``:
        each visual row and each class text passes it once (the visual and masked rows in one product), and
        the positive, negative and masked pairs are one gather of those rows plus the text rows, which go
        through the rest of the critic in one call. Same function as
        :meth:`critic` on each concatenated pair (``tests/test_stage2_fast.py``), with 40 % fewer FLOPs. Rows are
        gathered with ``index_select``, whose backward (``index_add``) costs a tenth of advanced indexing's on CPU.
        """
        B = visual.shape[0]
        s = F.normalize(sem, dim=-1)
        w_v = self.l0.weight_a
        hs = linear(s, self.l0.weight_b, self.l0.bias)  # (B or K, H0)
        if sem_index is not None:
            hs = hs.index_select(0, sem_index)
        if self.negatives in ("roll", "roll-diff-class"):
            rows = torch.arange(B, device=visual.device)
            other = torch.roll(rows, -1) if self.negatives == "roll" else next_other_class(labels)
            if masked is None:
                hv, pick = linear(self.ln(visual), w_v), (rows, other)
            else:
                hv, pick = linear(self.ln(torch.cat((visual, masked))), w_v), (rows, other, rows + B)
            h0 = hv.index_select(0, torch.cat(pick)).view(len(pick), B, -1) + hs
            t = self._head(h0)
            t_pos, t_neg, weight = t[0], t[1], None
            t_masked = t[2] if masked is not None else None
        else:
            v = self.ln(visual)
            t_pos = self._head(linear(v, w_v) + hs)
            t_neg = self._pairwise(v, s) if sem_index is None else self._pairwise(v, s).index_select(1, sem_index)
            weight = 1.0 - torch.eye(B, device=v.device, dtype=t_neg.dtype)
            if self.negatives == "all-diff-class":
                weight = weight * (labels[:, None] != labels[None, :]).to(t_neg.dtype)
            t_masked = None if masked is None else self._head(linear(self.ln(masked), w_v) + hs)
        ej, em = jsd_terms(t_pos, t_neg, weight)
        mi = ej - em
        if t_masked is None:
            return mi, None
        return mi, -F.softplus(-t_masked).mean() - em

    def loss(self, batch) -> torch.Tensor:
        """Scalar training loss of a :class:`smie.pipeline.zsl.fit.Batch`."""
        masked = batch.masked if self.temporal else None
        if self.temporal and masked is None:
            raise ValueError("the temporal constraint needs masked views (the visual cache has none); "
                             "turn it off with temporal=False")
        mi, mi_masked = self.mutual_information(batch.visual, batch.class_sem, batch.labels, masked,
                                                sem_index=batch.labels)
        if mi_masked is None:
            return -mi
        return temporal_hinge(mi, mi_masked, self.alpha, self.lam)

    def finalize(self, train, class_sem: torch.Tensor) -> None:
        """SMIE has no second stage."""

    def scores(self, visual: torch.Tensor, class_sem: torch.Tensor) -> torch.Tensor:
        """``T(v, s)`` for every sample and class: (N, D), (K, E) -> (N, K)."""
        return self._pairwise(self.ln(visual), F.normalize(class_sem, dim=-1))
