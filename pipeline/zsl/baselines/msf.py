"""MSF, multi-semantic fusion for generalized zero-shot skeleton action recognition (Li et al., 2023).

Following the authors' code (EHZ9NIWI7/MSF-GZSSAR ``train.py``, itself built on the SynSE code): the class
semantics of several kinds (action label, action description, motion description) are concatenated and
L2-normalised into one vector (E); a visual VAE (D -> L) and a text VAE (E -> L) with single linear encoders
and ``Linear + ReLU`` decoders are aligned by MSE self- and cross-reconstruction and KL terms, on the code's
per-iteration schedule (:func:`smie.pipeline.zsl.baselines.vae.cycle_weights`, cycles of 1700 steps, cross-reconstruction
after step 1400 of each cycle, text KL from the third cycle). The classification module is a softmax
classifier (``Linear + ReLU``, 300 full-batch Adam steps, lr 1e-3) on 500 latents synthesised per class from
the text encoder.
GZSL: when the scored classes include seen ones, the classifier also takes 200 encoded training samples per seen
class (CADA-VAE's recipe) and ``smie.pipeline.zsl.evaluate``'s gate (or calibrated stacking) splits seen from unseen; the
authors gate between this ZSL classifier and the backbone's own seen-class softmax, which stage two does not
have (the caches hold features, not the backbone's head).
Defaults: latent 100 (the code's NTU-60 setting; 200 for NTU-120), 10 cycles of 1700 steps (shortened by
``smie.pipeline.zsl.baselines.run`` to fit at most 200 epochs on small data sets), Adam lr 1e-4. Which kinds are fused is
the run's ``kinds`` (default label, action and motion descriptions); the code selects the best cycle on test
accuracy, here cycles are selected on validation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from smie.pipeline.zsl.baselines.generative import LatentClassifierStage
from smie.pipeline.zsl.baselines.vae import GaussianEncoder, cycle_weights, decoder, kl_divergence, reparameterize


class MSF(LatentClassifierStage):
    default_lr = 1e-4
    default_cycles = 10
    default_cycle_length = 1700
    default_kinds = ("label", "action", "motion")

    def __init__(self, visual_dim: int, sem_dim: int, latent: int = 100, cycle_length: int = 1700, cycles: int = 10,
                 seen_per_class: int = 200, unseen_per_class: int = 500, cls_steps: int = 300, cls_lr: float = 1e-3,
                 seed: int = 0):
        super().__init__(latent, seen_per_class, unseen_per_class, cls_steps, cls_lr, 0, True, seed)
        self.config = dict(visual_dim=int(visual_dim), sem_dim=int(sem_dim), latent=int(latent),
                           cycle_length=int(cycle_length), cycles=int(cycles), seen_per_class=int(seen_per_class),
                           unseen_per_class=int(unseen_per_class), cls_steps=int(cls_steps), cls_lr=float(cls_lr),
                           seed=int(seed))
        self.cycle_length, self.cycles = int(cycle_length), int(cycles)
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
        w = cycle_weights(int(self.step), self.cycle_length)
        if self.training:
            self.step += 1
        x = batch.visual
        t = F.normalize(batch.class_sem[batch.labels], dim=-1)
        mu_v, lv_v = self.enc_v(x)
        mu_t, lv_t = self.enc_t(t)
        z_v, z_t = reparameterize(mu_v, lv_v), reparameterize(mu_t, lv_t)
        mse = F.mse_loss
        loss = mse(self.dec_v(z_v), x) + mse(self.dec_t(z_t), t)
        loss = loss + w["kl_visual"] * kl_divergence(mu_v, lv_v) + w["kl_text"] * kl_divergence(mu_t, lv_t)
        return loss + w["cross"] * (mse(self.dec_v(z_t), x) + mse(self.dec_t(z_v), t))
