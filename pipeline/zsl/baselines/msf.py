"""MSF, multi-semantic fusion for generalized zero-shot skeleton action recognition (Li et al., 2023).

Following the authors' code (EHZ9NIWI7/MSF-GZSSAR ``train.py``, itself built on the SynSE code): the class
semantics of several kinds (action label, action description, motion description) are concatenated and
L2-normalised into one vector (E); a visual VAE (D -> L) and a text VAE (E -> L) with single linear encoders
and ``Linear + ReLU`` decoders are aligned by MSE self- and cross-reconstruction and KL terms, on the code's
per-iteration schedule (:func:`smie.pipeline.zsl.baselines.vae.cycle_weights`): 10 cycles of 1700 steps with
cross-reconstruction after step 1400 of each cycle (NTU-60), text KL from the third cycle; Adam lr 1e-4 at a
constant rate, batches of 64. Its spec's budget is :class:`~smie.pipeline.zsl.spec.Cycles`: training stops
after exactly cycles x cycle_length steps and the model is evaluated at cycle ends only, as in the code.
The ZSL classifier is a softmax classifier (``Linear + ReLU``, 300 full-batch Adam steps, lr 1e-3) on 500
latents synthesised per unseen class from the text encoder, applied to the visual mean.

SynSE's repository trains its CADA-VAE baseline with this model on label semantics, with one difference in the
schedule: its text-KL weight is the visual one times ``[e > 1400]`` in every cycle (``--option
text_kl='synse-cadavae'``; the default ``'msf'`` is MSF's: from the third cycle, counted from step 1400).

NTU-120: on a 120-class table the code's ``run120.sh`` settings apply (latent 200, cycles of 1900 steps, whose
constants are unscaled: KL from step 1000 over 3000, cross-reconstruction from step 1500); elsewhere they are
``--option latent=200 --option cycle_length=1900``. When a small data set forces a shorter cycle (at most 200
epochs), the step constants are rescaled from the full cycle (``cycle_base``).

GZSL, two variants. Default (ours, not MSF's): when the scored classes include seen ones, one latent classifier
also takes 200 encoded training samples per seen class (CADA-VAE's recipe) and ``smie.pipeline.zsl.evaluate``'s
calibrated stacking, entropy gate or plain arg-max split seen from unseen (``gzsl.stacking``, ``gzsl.gate``,
``gzsl.uncalibrated``). ``--option gate='msf'`` adds MSF's own gate (``gzsl.msf_gate``; :class:`MSFGate`, the
method's ``gzsl_gate()``): the unseen expert is the ZSL classifier over the unseen classes only, the seen expert
the backbone's own softmax at temperature ``gate_temperature`` (2, the released setting) from its classifier
head, which ``extract-visual`` stores in the visual cache (the validation backbone's head for the validation
view; the run gives both in the method's context); a logistic regression on the top-k sorted probabilities of
both (k = number of unseen classes) is fitted on 4/5 of the validation phase's GZSL rows and routes a sample to
the seen expert when P(seen) > 0.5.

Which kinds are fused is the run's ``kinds`` (default label, action and motion descriptions).
Deviations (docs/evaluation.md, "MSF: faithful vs ours"): the cycle is selected on validation ZSL accuracy, not
on test accuracy (the gate is fitted on validation rows in both); the text encoder and the descriptions are the text cache's (the code: CLIP ViT-B/32 on
one sentence per class and kind, without per-kind normalisation before the concatenation: ``--combine concat-raw``); our batches are
taken from successive permutations, not a fresh random batch per step; the backbone's softmax covers only the
classes its head was trained on (the code's head has a column for every class of the data set).
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from smie.features.store import SmieError
from smie.pipeline.zsl.baselines.generative import LatentClassifier, LatentClassifierStage
from smie.pipeline.zsl.baselines.vae import (TEXT_KL, CycleParams, GaussianEncoder, cycle_weights, decoder,
                                               kl_divergence, reparameterize, weighted_sum)
from smie.pipeline.zsl.evaluate import fit_msf_gate, msf_gate_predict, softmax
from smie.pipeline.zsl.method import GateRows, MethodContext
from smie.pipeline.zsl.spec import Cycles, MethodSpec, RunFacts

GATES = (None, "msf")


@dataclass(frozen=True)
class MSFParams(CycleParams):
    """SynSE's hyper-parameters, plus ``gate`` (``'msf'``: MSF's GZSL gate) and its seen expert's temperature, and
    ``text_kl``, the text-KL weight of the cycle schedule (:func:`~smie.pipeline.zsl.baselines.vae.cycle_weights`):
    ``'msf'`` (MSF's code) or ``'synse-cadavae'`` (the SynSE repository's CADA-VAE, which this method trains with
    label semantics: ``--kind label --option text_kl='synse-cadavae'``)."""

    gate: str | None = None
    gate_temperature: float = 2.0
    text_kl: str = "msf"

    def __post_init__(self):
        if self.text_kl not in TEXT_KL:
            raise SmieError(f"msf: option text_kl must be one of {', '.join(TEXT_KL)}, got {self.text_kl!r}")
        if self.gate not in GATES:
            raise SmieError(f"msf: option gate must be 'msf' (MSF's gating model) or None, got {self.gate!r}")
        if self.gate_temperature <= 0:
            raise SmieError(f"msf: option gate_temperature must be > 0, got {self.gate_temperature}")


class MSF(LatentClassifierStage):
    def __init__(self, visual_dim: int, sem_dim: int, hparams: MSFParams = MSFParams(),
                 context: MethodContext | None = None):
        h = hparams
        super().__init__(visual_dim, sem_dim, h, context, LatentClassifier(
            h.latent, h.seen_per_class, h.unseen_per_class, h.cls_steps, h.cls_lr, 0, True, h.seed))
        latent = h.latent
        self.cycle_length, self.cycles, self.cycle_base = int(h.cycle_length), int(h.cycles), h.cycle_base
        self.enc_v = GaussianEncoder(visual_dim, latent)
        self.dec_v = decoder(latent, visual_dim, out_relu=True)
        self.enc_t = GaussianEncoder(sem_dim, latent)
        self.dec_t = decoder(latent, sem_dim, out_relu=True)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def gzsl_gate(self) -> "MSFGate | None":
        """MSF's gate when ``gate='msf'``, its seen expert the backbone heads of the run's context."""
        if self.hparams.gate != "msf":
            return None
        return MSFGate(float(self.hparams.gate_temperature), self.context.heads, self.context.logits)

    def encode_visual(self, v):
        return self.enc_v(v)

    def encode_text(self, s):
        return self.enc_t(F.normalize(s, dim=-1))

    def loss(self, batch) -> torch.Tensor:
        w = cycle_weights(int(self.step), self.cycle_length, self.cycle_base, self.hparams.text_kl)
        if self.training:
            self.step += 1
        x = batch.visual
        t_k = F.normalize(batch.class_sem, dim=-1)
        t = t_k[batch.labels]
        mu_v, lv_v = self.enc_v(x)
        mu_k, lv_k = self.enc_t(t_k)  # each class text once (Kt rows), then one row per sample
        mu_t, lv_t = mu_k.index_select(0, batch.labels), lv_k.index_select(0, batch.labels)
        z_v, z_t = reparameterize(mu_v, lv_v), reparameterize(mu_t, lv_t)
        mse = F.mse_loss
        return mse(self.dec_v(z_v), x) + mse(self.dec_t(z_t), t) + weighted_sum(
            (w["kl_visual"], lambda: kl_divergence(mu_v, lv_v)), (w["kl_text"], lambda: kl_divergence(mu_t, lv_t)),
            (w["cross"], lambda: mse(self.dec_v(z_t), x) + mse(self.dec_t(z_v), t)))


class MSFGate:
    """MSF's GZSL gate (the code's ``gating_train.py``/``gating_eval.py``) as the protocol's method gate.

    Unseen expert: the softmax of the method's scores over the unseen-role classes. Seen expert
    (:meth:`seen_expert`): the backbone's own classifier softmax at ``temperature`` over the seen-role classes.
    :func:`~smie.pipeline.zsl.evaluate.fit_msf_gate` fits the logistic regression on both experts' top-k
    probabilities (k = the number of unseen classes: the code's ``ss``; the smaller count when the validation
    phase has fewer)."""

    key = "msf_gate"

    def __init__(self, temperature: float, heads: Mapping, logits: Mapping | None = None):
        self.temperature, self.heads = temperature, MappingProxyType(dict(heads))
        self.logits = MappingProxyType(dict(logits or {}))

    def seen_expert(self, rows: GateRows) -> np.ndarray:
        """The backbone's softmax over ``rows.seen`` at ``temperature``: from the view's classifier head, or, where
        the cache has none, from the stored scores of the rows (imported ``*_out.npy``, as MSF's code reads)."""
        if self.heads.get(rows.view) is None and self.logits.get(rows.view) is not None and rows.rows is not None:
            return softmax(self.logits[rows.view].at(rows.rows, rows.seen).astype(np.float64), self.temperature)
        return self._head_expert(rows)

    def _head_expert(self, rows: GateRows) -> np.ndarray:
        """The backbone's own softmax over ``rows.seen`` (N, Ks) at ``temperature``, from the classifier head of
        ``rows.view``'s backbone on the cached features; restricted to ``rows.seen``, so in the validation phase a
        main head covers the phase's training classes only."""
        head = self.heads.get(rows.view)
        if head is None:
            raise SmieError(f"the MSF gate needs the {rows.view} backbone's classifier head in the visual cache; "
                            "re-run extract-visual with this smie version, or drop the option gate='msf'")
        col = {c: i for i, c in enumerate(head.classes)}
        missing = [int(c) for c in rows.seen if int(c) not in col]
        if missing:
            raise SmieError(f"the {rows.view} backbone's classifier head has no column for classes {missing[:10]}; "
                            "the MSF gate needs every seen class of the split (use the visual cache's own split)")
        idx = [col[int(c)] for c in rows.seen]
        return softmax(head.logits(rows.features)[:, idx], self.temperature)

    def _experts(self, rows: GateRows) -> tuple[np.ndarray, np.ndarray]:
        return softmax(rows.scores), self.seen_expert(rows)

    def fit(self, unseen: GateRows, seen: GateRows, test_unseen: int, seed: int) -> dict:
        k = min(test_unseen, len(unseen.unseen), len(unseen.seen))
        return fit_msf_gate(self._experts(unseen), self._experts(seen), k=k, temperature=self.temperature, seed=seed)

    def predict(self, state: dict, rows: GateRows) -> np.ndarray:
        return msf_gate_predict(*self._experts(rows), list(rows.unseen), list(rows.seen), state)

    def report(self, state: dict) -> dict:
        return {key: state[key] for key in ("k", "temperature", "threshold")}


def check_gate(hparams: MSFParams, run: RunFacts) -> None:
    """Refuse, before training, a run whose gate cannot work: no GZSL, no classifier head in the cache (or in
    its validation view, unless validation selects on the main features), or a split whose seen classes the main
    head does not cover."""
    if hparams.gate != "msf":
        return
    where = f"{run.where}: option gate='msf'"
    if not run.gzsl:
        raise SmieError(f"{where} is a GZSL gate; add --gzsl")
    if run.heads.get("main") is None and run.logits.get("main") is not None:
        return check_stored_logits(run, where)
    if run.heads.get("main") is None:
        raise SmieError(f"{where} needs the backbone's classifier head in the visual cache; re-run extract-visual "
                        "with this smie version from a backbone checkpoint that has one")
    if run.has_validation_view and run.heads.get("validation") is None and run.val_features != "main":
        raise SmieError(f"{where} needs the validation backbone's classifier head in the cache's validation view; "
                        "re-extract it, or select on the main features (--val-features main)")
    _cover_seen(run, run.heads["main"].classes, f"{where}: the backbone's classifier head")


def _cover_seen(run: RunFacts, classes, what: str) -> None:
    """The seen expert's columns (``classes``) must cover every seen class of each split of the run."""
    for sp in run.splits:
        missing = sorted(set(sp.seen) - set(classes))
        if missing:
            raise SmieError(f"{what} has no column for the seen classes {missing[:10]} of split {sp.id}")


def check_stored_logits(run: RunFacts, where: str) -> None:
    """The gate on imported features: the stored scores must have a column for every seen class of each split,
    and the validation phase needs the validation set's scores (unless it selects on the main features)."""
    if run.logits.get("validation") is None or run.val_features == "main":
        raise SmieError(f"{where}: on imported features the gate is fitted on the validation folder's rows with its "
                        "stored backbone scores (*_out.npy), as MSF's code does; import the validation folder with "
                        "them and leave --val-features at auto or validation")
    _cover_seen(run, run.logits["main"].classes, f"{where}: the stored backbone scores")


SPEC = MethodSpec("msf", MSF, MSFParams, lr=1e-4, budget=Cycles(10, 1700), batch_size=64, schedule="constant",
                  selectable="any", kinds=("label", "action", "motion"), run_params=("seed",),
                  by_classes=MappingProxyType({120: MappingProxyType(dict(latent=200, cycle_length=1900))}),
                  check=check_gate)
