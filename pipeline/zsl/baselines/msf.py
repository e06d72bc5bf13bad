"""MSF, multi-semantic fusion for generalized zero-shot skeleton action recognition (Li et al., 2023).

Following the authors' code (EHZ9NIWI7/MSF-GZSSAR ``train.py``, itself built on the SynSE code): the class
semantics of several kinds (action label, action description, motion description) are concatenated and
L2-normalised into one vector (E); a visual VAE (D -> L) and a text VAE (E -> L) with single linear encoders
and ``Linear + ReLU`` decoders are aligned by MSE self- and cross-reconstruction and KL terms, on the code's
per-iteration schedule (:func:`smie.pipeline.zsl.baselines.vae.cycle_weights`): 10 cycles of 1700 steps with
cross-reconstruction after step 1400 of each cycle (NTU-60), text KL from the third cycle; Adam lr 1e-4 at a
constant rate, batches of 64. ``smie.pipeline.zsl.baselines.run`` runs one loop epoch per cycle, so training
stops after exactly cycles x cycle_length steps and the model is evaluated at cycle ends only, as in the code.
The ZSL classifier is a softmax classifier (``Linear + ReLU``, 300 full-batch Adam steps, lr 1e-3) on 500
latents synthesised per unseen class from the text encoder, applied to the visual mean.

NTU-120: on a 120-class table the code's ``run120.sh`` settings apply (latent 200, cycles of 1900 steps, whose
constants are unscaled: KL from step 1000 over 3000, cross-reconstruction from step 1500); elsewhere they are
``--option latent=200 --option cycle_length=1900``. When a small data set forces a shorter cycle (at most 200
epochs), the step constants are rescaled from the full cycle (``cycle_base``).

GZSL, two variants. Default (ours, not MSF's): when the scored classes include seen ones, one latent classifier
also takes 200 encoded training samples per seen class (CADA-VAE's recipe) and ``smie.pipeline.zsl.evaluate``'s
calibrated stacking, entropy gate or plain arg-max split seen from unseen (``gzsl.stacking``, ``gzsl.gate``,
``gzsl.uncalibrated``). ``--option gate='msf'`` adds MSF's own gate (``gzsl.msf_gate``): the unseen expert is
the ZSL classifier over the unseen classes only, the seen expert the backbone's own softmax at temperature
``gate_temperature`` (2, the released setting) from its classifier head, which ``extract-visual`` stores in the
visual cache (the validation backbone's head for the validation view); a logistic regression on the top-k
sorted probabilities of both (k = number of unseen classes) is fitted on 4/5 of the validation phase's GZSL rows
and routes a sample to the seen expert when P(seen) > 0.5.

Which kinds are fused is the run's ``kinds`` (default label, action and motion descriptions).
Deviations (docs/evaluation.md, "MSF: faithful vs ours"): the cycle is selected on validation ZSL accuracy, not
on test accuracy (the gate is fitted on validation rows in both); the text encoder and the descriptions are the text cache's (the code: CLIP ViT-B/32 on
one sentence per class and kind, without per-kind normalisation before the concatenation); our batches are
taken from successive permutations, not a fresh random batch per step; the backbone's softmax covers only the
classes its head was trained on (the code's head has a column for every class of the data set).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from smie.features.store import SmieError
from smie.pipeline.zsl.baselines.generative import GATES, LatentClassifierStage
from smie.pipeline.zsl.baselines.vae import (GaussianEncoder, cycle_weights, decoder, kl_divergence, reparameterize,
                                               weighted_sum)


class MSF(LatentClassifierStage):
    default_lr = 1e-4
    default_batch_size = 64
    default_schedule = "constant"
    default_cycles = 10
    default_cycle_length = 1700
    defaults_by_classes = {120: dict(latent=200, cycle_length=1900)}
    default_kinds = ("label", "action", "motion")
    eval_every = 1

    def __init__(self, visual_dim: int, sem_dim: int, latent: int = 100, cycle_length: int = 1700, cycles: int = 10,
                 seen_per_class: int = 200, unseen_per_class: int = 500, cls_steps: int = 300, cls_lr: float = 1e-3,
                 seed: int = 0, cycle_base: int | None = None, gate: str | None = None, gate_temperature: float = 2.0):
        super().__init__(latent, seen_per_class, unseen_per_class, cls_steps, cls_lr, 0, True, seed)
        if gate not in GATES:
            raise SmieError(f"msf: option gate must be 'msf' (MSF's gating model) or None, got {gate!r}")
        if gate_temperature <= 0:
            raise SmieError(f"msf: option gate_temperature must be > 0, got {gate_temperature}")
        self.config = dict(visual_dim=int(visual_dim), sem_dim=int(sem_dim), latent=int(latent),
                           cycle_length=int(cycle_length), cycles=int(cycles), seen_per_class=int(seen_per_class),
                           unseen_per_class=int(unseen_per_class), cls_steps=int(cls_steps), cls_lr=float(cls_lr),
                           seed=int(seed), cycle_base=None if cycle_base is None else int(cycle_base), gate=gate,
                           gate_temperature=float(gate_temperature))
        self.cycle_length, self.cycles, self.cycle_base = int(cycle_length), int(cycles), cycle_base
        self.gate, self.gate_temperature = gate, float(gate_temperature)
        self.enc_v = GaussianEncoder(visual_dim, latent)
        self.dec_v = decoder(latent, visual_dim, out_relu=True)
        self.enc_t = GaussianEncoder(sem_dim, latent)
        self.dec_t = decoder(latent, sem_dim, out_relu=True)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def encode_visual(self, v):
        return self.enc_v(v)

    def encode_text(self, s):
        return self.enc_t(F.normalize(s, dim=-1))

    def loss(self, batch) -> torch.Tensor:
        w = cycle_weights(int(self.step), self.cycle_length, self.cycle_base)
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
