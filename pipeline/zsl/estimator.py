"""The SMIE estimator (Zhou et al. 2023): a JSD mutual-information critic over (visual, semantic) pairs.

The model, as the official code (YujieOuO/SMIE, ``model.py`` and ``procedure.py``) computes it, for a batch of
B samples with visual features v_i (D), keyframe-masked views m_i (D) and class texts s_{y_i} (E):

    v = LayerNorm(v)                     LayerNorm(D, elementwise_affine=False); m likewise
    s = s / |s|                          semantics L2-normalised (the code normalises its embeddings on load)
    T(v, s) = l2(relu(l1(relu(l0([v; s])))))     the critic: (D+E) -> 1024 -> 512 -> 1
    P: pairs (v_i, s_{y_i})              the joint distribution
    N: pairs (v_{i+1}, s_{y_i})          the product of marginals: the visual batch rolled by one
    MI   = E_P[-softplus(-T)] - E_N[softplus(T)]                       Jensen-Shannon MI estimate
    MI_m = E_P[-softplus(-T(m_i, s_{y_i}))] - E_N[softplus(T)]         masked views as positives, same negatives
    loss = -MI + lam * max(0, alpha - (MI - MI_m))                     the temporal constraint (hinge)

:meth:`SMIEEstimator.loss` is these lines. The critic's first layer is linear in ``[v; s]``, so it is computed
as ``W_v v + (W_s s + b)``: each visual row and each class text passes it once, and a pair is the sum of its two
rows (``tests/test_stage2_fast.py`` checks this against the critic on every concatenated pair).

Options beyond the code: ``negatives="roll-diff-class"`` (each sample's negative is the next sample of the
shuffled batch whose class differs: the code's one negative per positive and its cost, without same-class
negatives), ``negatives="all"`` (every off-diagonal pair of the batch) and
``negatives="all-diff-class"`` (only pairs whose classes differ, so a same-class pair is never a negative).
Scores for inference (``score_on``): the official ``get_acc`` (model.py:67-78) ranks ``-softplus(-T(v, s))`` on
the RAW visual feature, without the LayerNorm that training applies (``score_on="raw"``: the same ranking, since
``-softplus(-x)`` is monotone). smie's default ranks ``T(LayerNorm(v), s)``, the inputs the critic was trained on
(``score_on="layernorm"``). The two rankings differ: in bench/parity they agreed on 62 % (synthetic) and 67.5 %
(an ST-GCN cache) of the samples (docs/fidelity.md).

``score_center="seen-mean"`` (ours, off by default) subtracts from each class's scores their mean over (at most
512 of) the seen training samples, kept by :meth:`~SMIEEstimator.finalize` in the ``center_visual`` buffer: a
class text whose critic value is high for every visual feature (a per-text bias; the predictions collapse onto
it, docs/evaluation.md) no longer wins every sample. Non-transductive: it reads training features only.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from smie.features.store import SmieError
from smie.pipeline.zsl.budget import NTU60_55_5_ROWS
from smie.pipeline.zsl.compute import ConcatLinear, Linear, layer_norm, linear
from smie.pipeline.zsl.method import BaseMethod, MethodContext
from smie.pipeline.zsl.spec import Epochs, MethodSpec

NEGATIVES = ("roll", "roll-diff-class", "all", "all-diff-class")
SCORE_ON = ("layernorm", "raw")
SCORE_CENTER = ("none", "seen-mean")
CENTER_ROWS = 512


@dataclass(frozen=True)
class SMIEParams:
    """``hidden``: the critic's two hidden widths (official 1024, 512); ``alpha``: the temporal margin (official
    code 0.1; paper Table 1: 0.1 NTU-60, 0.5 NTU-120, 0.01 PKU-MMD); ``lam``: its weight (0.5 in the code);
    ``temporal=False``: the code's "sota" track (global MI only); ``negatives``: which pairs are negatives;
    ``score_on``: the visual input of the test scores, ``layernorm`` (smie) or ``raw`` (the official ``get_acc``;
    module docstring); ``score_center``: ``none`` (the code) or ``seen-mean`` (module docstring)."""

    hidden: tuple[int, int] = (1024, 512)
    alpha: float = 0.1
    lam: float = 0.5
    temporal: bool = True
    negatives: str = "roll"
    score_on: str = "layernorm"
    score_center: str = "none"

    def __post_init__(self):
        if self.score_center not in SCORE_CENTER:
            raise SmieError(f"SMIE option score_center must be one of {', '.join(SCORE_CENTER)}, "
                            f"got {self.score_center!r}")
        if self.score_on not in SCORE_ON:
            raise SmieError(f"SMIE option score_on must be one of {', '.join(SCORE_ON)}, got {self.score_on!r}")
        if self.negatives not in NEGATIVES:
            raise SmieError(f"SMIE option negatives must be one of {', '.join(NEGATIVES)}, got {self.negatives!r}")
        if len(tuple(self.hidden)) != 2:
            raise SmieError(f"SMIE option hidden must be two layer widths, got {self.hidden!r}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))


@dataclass(frozen=True)
class NoTemporalParams(SMIEParams):
    """SMIE without the temporal constraint: ``temporal`` is False and stays so."""

    temporal: bool = False

    def __post_init__(self):
        if self.temporal:
            raise SmieError("method smie-notemporal is SMIE without the temporal constraint: temporal must be False")
        super().__post_init__()


def jsd_terms(t_pos: torch.Tensor, t_neg: torch.Tensor, neg_weight: torch.Tensor | None = None):
    """The two expectations of the JSD MI estimate: ``(E_P[-softplus(-T)], E_N[softplus(T)])``.

    ``t_pos`` holds critic values of joint pairs, ``t_neg`` of product-of-marginal pairs; ``neg_weight`` (same
    shape as ``t_neg``, 0/1) selects which negatives count (an empty set contributes 0).
    """
    ej = -F.softplus(-t_pos).mean()
    sp = F.softplus(t_neg)
    if neg_weight is None:
        return ej, sp.mean()
    total = neg_weight.sum()
    em = (sp * neg_weight).sum() / total.clamp(min=1)
    return ej, em


def temporal_hinge(mi_global: torch.Tensor, mi_masked: torch.Tensor, alpha: float, lam: float) -> torch.Tensor:
    """SMIE's loss: ``-MI_global + lam * max(0, alpha - (MI_global - MI_masked))``."""
    return -mi_global + lam * torch.clamp(alpha - (mi_global - mi_masked), min=0)


def next_other_class(labels: torch.Tensor, reach: int = 32) -> torch.Tensor:
    """For each row of ``labels`` (B,), the index of the next row (cyclically, at most ``reach`` ahead) of
    another class; the next row when none is that close (a batch of one class has no true negative)."""
    B = labels.shape[0]
    rows = torch.arange(B, device=labels.device)
    cand = (rows[:, None] + torch.arange(1, min(max(B - 1, 1), reach) + 1, device=labels.device)[None, :]) % B
    diff = labels[cand] != labels[:, None]
    first = diff.to(torch.int8).argmax(dim=1)
    return torch.where(diff.any(dim=1), cand[rows, first], (rows + 1) % B)


class SMIEEstimator(BaseMethod):
    """JSD MI critic between visual features (D) and class semantics (E); hyper-parameters :class:`SMIEParams`."""

    def __init__(self, visual_dim: int, sem_dim: int, hparams: SMIEParams = SMIEParams(),
                 context: MethodContext | None = None):
        super().__init__(visual_dim, sem_dim, hparams, context)
        h = hparams
        self.alpha, self.lam, self.temporal, self.negatives = float(h.alpha), float(h.lam), bool(h.temporal), \
            h.negatives
        self.score_on, self.score_center = h.score_on, h.score_center
        if self.score_center == "seen-mean":  # saved with the model, so a reloaded run scores the same way
            self.register_buffer("center_visual", torch.zeros(0, visual_dim))
        self.score_chunk = 1 << 24  # scoring evaluates at most this many (sample, class, unit) activations at once
        h0, h1 = h.hidden
        self.l0 = ConcatLinear(visual_dim, sem_dim, h0)  # on [v; s]: W_v v + W_s s + b
        self.l1 = Linear(h0, h1)
        self.l2 = Linear(h1, 1)

    # --- the critic T -----------------------------------------------------------------------------------------

    def critic(self, visual: torch.Tensor, sem: torch.Tensor) -> torch.Tensor:
        """``T(v_i, s_i)`` for row-aligned pairs: (B, D) layer-normed, (B, E) normalised -> (B,)."""
        x = torch.cat((visual, sem), dim=-1)
        return self.l2(F.relu(self.l1(F.relu(self.l0(x))))).squeeze(-1)

    def _head(self, h0: torch.Tensor) -> torch.Tensor:
        """The critic after its first layer: pre-activations ``W_v v + W_s s + b`` (..., H0) -> T (...)."""
        return self.l2(F.relu(self.l1(F.relu(h0)))).squeeze(-1)

    def _pairwise(self, visual: torch.Tensor, sem: torch.Tensor) -> torch.Tensor:
        """``T(v_i, s_k)`` for every pair: (N, D) layer-normed, (K, E) normalised -> (N, K), chunked over N."""
        N = visual.shape[0]
        K = sem.shape[0]
        w_v, w_s, b = self.l0.blocks()
        hs = linear(sem, w_s, b)                                           # (K, H0)   W_s s_k + b
        step = max(1, self.score_chunk // max(1, K * hs.shape[1]))
        out = []
        for start in range(0, N, step):
            hv = linear(visual[start:start + step], w_v)                   # (n, H0)   W_v v_i
            h = (hv[:, None, :] + hs[None, :, :]).relu_()                  # (n, K, H0)
            out.append(self.l2(F.relu(self.l1(h))).squeeze(-1))            # (n, K)
        return torch.cat(out, dim=0) if out else visual.new_zeros((0, K))

    # --- the mutual information and the loss ------------------------------------------------------------------

    def mutual_information(self, visual: torch.Tensor, sem: torch.Tensor, labels: torch.Tensor,
                           masked: torch.Tensor | None = None, sem_index: torch.Tensor | None = None):
        """``MI`` of the batch and, when ``masked`` is given, ``MI_m`` (module docstring); else ``(MI, None)``.

        visual (B, D) raw features, sem (B, E) semantics of each sample's class, labels (B,), masked (B, D). With
        ``sem_index`` (B,), ``sem`` is the class table (K, E) instead and row i's semantics ``sem[sem_index[i]]``.
        Rows are gathered with ``index_select``, whose backward (``index_add``) costs a tenth of advanced
        indexing's on CPU.
        """
        B = visual.shape[0]
        s = F.normalize(sem, dim=-1)                                       # s / |s|
        w_v, w_s, b = self.l0.blocks()
        hs = linear(s, w_s, b)                                             # (B or K, H0)   W_s s + b
        if sem_index is not None:
            hs = hs.index_select(0, sem_index)                             # (B, H0)        s_{y_i}
        weight = None
        if self.negatives in ("roll", "roll-diff-class"):
            rows = torch.arange(B, device=visual.device)
            other = torch.roll(rows, -1) if self.negatives == "roll" else next_other_class(labels)
            if masked is None:                                             # W_v v, W_v m: (B or 2B, H0)
                hv, pick = linear(layer_norm(visual), w_v), (rows, other)
            else:
                hv, pick = linear(layer_norm(torch.cat((visual, masked))), w_v), (rows, other, rows + B)
            h0 = hv.index_select(0, torch.cat(pick)).view(len(pick), B, -1) + hs   # (2 or 3, B, H0)
            t = self._head(h0)                                             # (2 or 3, B)
            t_pos, t_neg = t[0], t[1]                                      # T(v_i, s_i), T(v_{i+1}, s_i)
            t_masked = t[2] if masked is not None else None                # T(m_i, s_i)
        else:
            v = layer_norm(visual)
            t_pos = self._head(linear(v, w_v) + hs)                        # (B,)
            t_neg = self._pairwise(v, s) if sem_index is None else self._pairwise(v, s).index_select(1, sem_index)
            weight = 1.0 - torch.eye(B, device=v.device, dtype=t_neg.dtype)          # (B, B): every j != i
            if self.negatives == "all-diff-class":
                weight = weight * (labels[:, None] != labels[None, :]).to(t_neg.dtype)
            t_masked = None if masked is None else self._head(linear(layer_norm(masked), w_v) + hs)
        ej, em = jsd_terms(t_pos, t_neg, weight)                          # E_P[-softplus(-T)], E_N[softplus(T)]
        mi = ej - em
        if t_masked is None:
            return mi, None
        return mi, -F.softplus(-t_masked).mean() - em                     # MI_m: masked positives, same negatives

    def loss(self, batch) -> torch.Tensor:
        """``-MI + lam * max(0, alpha - (MI - MI_m))`` of a :class:`~smie.pipeline.zsl.method.Batch`; ``-MI``
        without the temporal constraint."""
        masked = batch.masked if self.temporal else None
        if self.temporal and masked is None:
            raise ValueError("the temporal constraint needs masked views (the visual cache has none); "
                             "turn it off with temporal=False")
        mi, mi_masked = self.mutual_information(batch.visual, batch.class_sem, batch.labels, masked,
                                                sem_index=batch.labels)
        if mi_masked is None:
            return -mi
        return temporal_hinge(mi, mi_masked, self.alpha, self.lam)

    def scores(self, visual: torch.Tensor, class_sem: torch.Tensor) -> torch.Tensor:
        """``T(LayerNorm(v), s / |s|)`` (or ``T(v, s / |s|)`` with ``score_on="raw"``, as the official
        ``get_acc``) for every sample and class: (N, D), (K, E) -> (N, K); with ``score_center="seen-mean"``
        each column minus its mean over the kept seen training samples."""
        sem = F.normalize(class_sem, dim=-1)
        out = self._pairwise(self._score_input(visual), sem)
        if self.score_center == "seen-mean" and len(self.center_visual):
            out = out - self._pairwise(self._score_input(self.center_visual), sem).mean(dim=0)
        return out

    def _score_input(self, visual: torch.Tensor) -> torch.Tensor:
        return visual if self.score_on == "raw" else layer_norm(visual)

    def finalize(self, train, class_sem: torch.Tensor) -> None:
        """With ``score_center="seen-mean"``: keep (at most 512, evenly spaced) training features (M, D)."""
        if self.score_center == "seen-mean":
            rows = torch.linspace(0, len(train.visual) - 1, min(CENTER_ROWS, len(train.visual))).long()
            self.center_visual = train.visual.index_select(0, rows.to(train.visual.device)).detach().clone()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "center_visual"
        if self.score_center == "seen-mean" and key in state_dict:  # its row count is the training set's
            self.center_visual = torch.empty_like(state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


SPEC = MethodSpec("smie", SMIEEstimator, SMIEParams, lr=1e-5, budget=Epochs(100), warmup=15, uses_masked=True,
                  reference_rows=NTU60_55_5_ROWS, max_compression=30.0, points=25)
"""The official code's recipe: Adam lr 1e-5, 100 epochs of batch 128, 15 warm-up epochs then cosine decay, set on
NTU-60 55/5 (28,700 steps). By default (``--budget paper-steps``) a smaller data set runs the paper's steps
compressed at most 30 times at a proportionally larger rate (MSR: 957 steps at 3e-4; bench/smie_budget.py shows
it ends at the training MI of 2,870 steps at 1e-4, which the paper's 28,700 at 1e-5 reach, docs/smie-study.md),
evaluated at 25 points; ``--budget code-epochs`` is the code's 100 passes at 1e-5."""

NOTEMPORAL_SPEC = MethodSpec("smie-notemporal", SMIEEstimator, NoTemporalParams, lr=1e-5, budget=Epochs(100),
                             warmup=15, reference_rows=NTU60_55_5_ROWS, max_compression=30.0, points=25)
"""SMIE without the temporal constraint: global mutual information only (the paper's Table 5 ablation)."""
