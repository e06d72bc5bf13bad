"""SynSE, syntactically guided generative embeddings (Gupta et al., ICIP 2021), on cached skeleton features.

Each class has two texts, its verb phrase and its noun phrase (kinds ``verb`` and ``noun``; see
:mod:`smie.pipeline.zsl.baselines.pos`), so ``class_sem`` is their concatenation (K, 2E') and is split in halves here.
As in the authors' code (skelemoa/synse-zsl ``synse_training.py``): a visual VAE (D -> L) and one VAE per part of
speech (E' -> L/2), single linear encoders, ``Linear + ReLU`` decoders. The noun decoder reconstructs the noun
text from the first half of the visual latent, the verb decoder the verb text from the second half, and the
visual decoder the visual feature from the concatenated text latents ``[z_noun, z_verb]``. MSE self- and
cross-reconstruction and KL terms follow the code's per-iteration schedule
(:func:`smie.pipeline.zsl.baselines.vae.cycle_weights`). The ZSL classifier is a ``Linear + ReLU`` softmax trained for 300
full-batch Adam steps (lr 1e-3) on 500 latents per class synthesised from the two text VAEs.
GZSL: when the scored classes include seen ones, the classifier also takes 200 encoded training samples per seen
class (CADA-VAE's recipe) and ``smie.pipeline.zsl.evaluate``'s gate (or calibrated stacking) splits seen from unseen.
The authors gate between this ZSL classifier and the backbone's own seen-class softmax with a logistic regression
whose temperature and threshold they grid-search on a held-out fifth (``gating_synse_model_training.py``); that
gate is MSF's (``msf --option gate='msf'``, with MSF's fixed T = 2 and threshold 0.5) and is not offered here.
Defaults: latent 100 (the code's NTU-60 setting), 10 cycles of 1700 steps, Adam lr 1e-4 at a constant rate,
batches of 64, as in the code (its spec); a :class:`~smie.pipeline.zsl.spec.Cycles` budget, one unit per cycle, so
training stops after exactly 10 x 1700 steps and is evaluated at cycle ends. The code keeps the cycle with the best test
accuracy; here selection is on validation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from smie.features.store import SmieError
from smie.pipeline.zsl.baselines.generative import LatentClassifier, LatentClassifierStage
from smie.pipeline.zsl.baselines.vae import (CycleParams, GaussianEncoder, cycle_weights, decoder, kl_divergence,
                                               reparameterize, weighted_sum)
from smie.pipeline.zsl.method import MethodContext
from smie.pipeline.zsl.spec import Cycles, MethodSpec


def split_pos(class_sem: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, 2E') -> verb (K, E') and noun (K, E'), each L2-normalised (the code normalises both on load)."""
    K, E = class_sem.shape
    if E % 2:
        raise SmieError(f"part-of-speech methods need kinds ('verb', 'noun') concatenated; got width {E}")
    return F.normalize(class_sem[:, : E // 2], dim=-1), F.normalize(class_sem[:, E // 2:], dim=-1)


class SynSE(LatentClassifierStage):
    def __init__(self, visual_dim: int, sem_dim: int, hparams: CycleParams = CycleParams(),
                 context: MethodContext | None = None):
        h = hparams
        super().__init__(visual_dim, sem_dim, h, context, LatentClassifier(
            h.latent, h.seen_per_class, h.unseen_per_class, h.cls_steps, h.cls_lr, 0, True, h.seed))
        latent = h.latent
        if sem_dim % 2 or latent % 2:
            raise SmieError(f"SynSE needs an even semantic width (verb + noun) and latent size; got {sem_dim}, "
                            f"{latent}")
        self.cycle_length, self.cycles, self.cycle_base = int(h.cycle_length), int(h.cycles), h.cycle_base
        half, E = latent // 2, sem_dim // 2
        self.enc_s = GaussianEncoder(visual_dim, latent)
        self.dec_s = decoder(latent, visual_dim, out_relu=True)
        self.enc_verb, self.dec_verb = GaussianEncoder(E, half), decoder(half, E, out_relu=True)
        self.enc_noun, self.dec_noun = GaussianEncoder(E, half), decoder(half, E, out_relu=True)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def encode_visual(self, v):
        return self.enc_s(v)

    def encode_text(self, s):
        """Latent of a class: ``[noun latent, verb latent]`` (the code's order), means and log-variances."""
        verb, noun = split_pos(s)
        (mu_n, lv_n), (mu_v, lv_v) = self.enc_noun(noun), self.enc_verb(verb)
        return torch.cat([mu_n, mu_v], 1), torch.cat([lv_n, lv_v], 1)

    def loss(self, batch) -> torch.Tensor:
        w = cycle_weights(int(self.step), self.cycle_length, self.cycle_base)
        if self.training:
            self.step += 1
        half = self.latent // 2
        s = batch.visual
        verb_k, noun_k = split_pos(batch.class_sem)
        verb, noun = verb_k[batch.labels], noun_k[batch.labels]
        mu_s, lv_s = self.enc_s(s)
        z_s = reparameterize(mu_s, lv_s)
        (mu_n, lv_n), (mu_v, lv_v) = self.enc_noun(noun_k), self.enc_verb(verb_k)  # each class once (Kt rows)
        mu_n, lv_n, mu_v, lv_v = (t.index_select(0, batch.labels) for t in (mu_n, lv_n, mu_v, lv_v))
        z_n, z_v = reparameterize(mu_n, lv_n), reparameterize(mu_v, lv_v)
        mse = F.mse_loss
        rec = mse(self.dec_s(z_s), s) + mse(self.dec_noun(z_n), noun) + mse(self.dec_verb(z_v), verb)
        return rec + weighted_sum(
            (w["kl_visual"], lambda: kl_divergence(mu_s, lv_s)),
            (w["kl_text"], lambda: kl_divergence(mu_n, lv_n) + kl_divergence(mu_v, lv_v)),
            (w["cross"], lambda: mse(self.dec_noun(z_s[:, :half]), noun) + mse(self.dec_verb(z_s[:, half:]), verb)
             + mse(self.dec_s(torch.cat([z_n, z_v], 1)), s)))


SPEC = MethodSpec("synse", SynSE, CycleParams, lr=1e-4, budget=Cycles(10, 1700), batch_size=64, schedule="constant",
                  selectable="any", kinds=("verb", "noun"), run_params=("seed",))
