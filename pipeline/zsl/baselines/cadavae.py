"""CADA-VAE (Schonfeld et al., CVPR 2019) on cached skeleton features.

Two VAEs, one for visual features (D) and one for class texts (E), share a latent space (L). The loss is the
paper's (edgarschnfld/CADA-VAE-PyTorch ``vaemodel.py``): L1 reconstruction (summed) of both modalities
+ beta * KL of both + gamma * cross-reconstruction (each decoder from the other modality's latent)
+ delta * 2-Wasserstein distance between the two latent Gaussians, with the paper's warm-up schedules by
epoch: beta 0 -> 0.25 over epochs 0-93, gamma 0 -> 2.37 over epochs 21-75, delta 0 -> 8.13 over epochs 6-22.
Encoders have one hidden layer (visual 1560, text 1450), decoders one (visual 1660, text 665), latent 64,
Adam (amsgrad) lr 1.5e-4, 100 epochs: the paper's settings. ``finalize`` then prepares a linear softmax
classifier on 200 latents per seen class (encoded training samples) plus 400 latents per unseen class
(sampled from the text encoder) for GZSL, or 200 per unseen class when only unseen classes are scored (ZSL),
Adam lr 1e-3 (beta1 0.5), batch 32, 25 epochs (the paper tunes 21-39 per data set on validation); test samples
are classified by their latent means.
Choices: the batch size is the run's (default 128; the paper's is 50: ``--batch-size 50``); sigma =
exp(logvar / 2) (the reference code samples with exp(logvar)); the epoch for the warm-ups is counted from
training steps (``MethodContext.steps_per_epoch``, given at construction), since the shared loop has no epoch
hook. SynSE's skeleton re-run of CADA-VAE (skelemoa/synse-zsl ``cada_vae/cada_vae_training.py``: single-layer
encoders, MSE, a step-based schedule, no distribution alignment) is not this module: it is
:mod:`smie.pipeline.zsl.baselines.msf` on label semantics with that code's text-KL weight (the visual KL weight
times ``[step in cycle > 1400]``, every cycle), ``smie fit-baseline msf --kind label --option
text_kl='synse-cadavae'``; ``msf``'s default text-KL weight (MSF's, from the third cycle on) differs from it on
2,990 of 17,000 steps (docs/fidelity.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from smie.pipeline.zsl.baselines.generative import LatentClassifier, LatentClassifierStage
from smie.pipeline.zsl.baselines.vae import (GaussianEncoder, decoder, kl_divergence, ramp, reparameterize,
                                               wasserstein, weighted_sum)
from smie.pipeline.zsl.compute import adam
from smie.pipeline.zsl.method import MethodContext
from smie.pipeline.zsl.spec import Epochs, MethodSpec

WARMUP = {"beta": (0.25, 0, 93), "cross": (2.37, 21, 75), "distance": (8.13, 6, 22)}


@dataclass(frozen=True)
class CADAVAEParams:
    latent: int = 64
    visual_hidden: tuple[int, int] = (1560, 1660)
    text_hidden: tuple[int, int] = (1450, 665)
    seen_per_class: int = 200
    unseen_per_class: int = 400
    zsl_unseen_per_class: int = 200
    cls_epochs: int = 25
    cls_lr: float = 1e-3
    cls_batch: int = 32
    seed: int = 0


class CADAVAE(LatentClassifierStage):
    def __init__(self, visual_dim: int, sem_dim: int, hparams: CADAVAEParams = CADAVAEParams(),
                 context: MethodContext | None = None):
        h = hparams
        super().__init__(visual_dim, sem_dim, h, context, LatentClassifier(
            h.latent, h.seen_per_class, h.unseen_per_class, h.cls_epochs, h.cls_lr, h.cls_batch, False, h.seed,
            h.zsl_unseen_per_class))
        latent, visual_hidden, text_hidden = h.latent, h.visual_hidden, h.text_hidden
        self.enc_v = GaussianEncoder(visual_dim, latent, visual_hidden[0])
        self.dec_v = decoder(latent, visual_dim, visual_hidden[1])
        self.enc_t = GaussianEncoder(sem_dim, latent, text_hidden[0])
        self.dec_t = decoder(latent, sem_dim, text_hidden[1])
        self.steps_per_epoch = self.context.steps_per_epoch
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def optimizer(self, lr: float) -> torch.optim.Optimizer:
        """Adam with AMSGrad, as the paper's code."""
        return adam(self.parameters(), lr=lr, amsgrad=True)

    def encode_visual(self, v):
        return self.enc_v(v)

    def encode_text(self, s):
        return self.enc_t(s)

    def weights(self) -> dict[str, float]:
        """Warm-up factors at the current epoch."""
        epoch = int(self.step) // max(1, self.steps_per_epoch)
        return {k: ramp(epoch, start, end, f) for k, (f, start, end) in WARMUP.items()}

    def loss(self, batch) -> torch.Tensor:
        x, s = batch.visual, batch.class_sem[batch.labels]
        w = self.weights()
        if self.training:
            self.step += 1
        mu_v, lv_v = self.enc_v(x)
        mu_k, lv_k = self.enc_t(batch.class_sem)  # each class text once (Kt rows), then one row per sample
        mu_t, lv_t = mu_k.index_select(0, batch.labels), lv_k.index_select(0, batch.labels)
        z_v, z_t = reparameterize(mu_v, lv_v), reparameterize(mu_t, lv_t)
        l1 = nn.functional.l1_loss
        rec = l1(self.dec_v(z_v), x, reduction="sum") + l1(self.dec_t(z_t), s, reduction="sum")
        return rec + weighted_sum(
            (w["beta"], lambda: (kl_divergence(mu_v, lv_v) + kl_divergence(mu_t, lv_t)) * x.shape[0]),
            (w["cross"], lambda: l1(self.dec_v(z_t), x, reduction="sum") + l1(self.dec_t(z_v), s, reduction="sum")),
            (w["distance"], lambda: wasserstein(mu_v, lv_v, mu_t, lv_t).sum()))


SPEC = MethodSpec("cadavae", CADAVAE, CADAVAEParams, lr=1.5e-4, budget=Epochs(100), schedule="constant",
                  eval_every=5, run_params=("seed",))
