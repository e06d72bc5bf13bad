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
Defaults, per split as the README's commands (``synse/README.md``; :func:`split_defaults`, from the class table
and the cache split's unseen classes): latent 200 on a 120-class table, else 100; cycles of 1700 steps for a
60-class table with 5 unseen classes (55/5), else 1900 (48/12, 110/10, 96/24); a user ``--option latent=...`` or
``cycle_length=...`` wins. Adam lr 1e-4 at a constant rate, batches of 64, 10 cycles, as in the code (its spec); a
:class:`~smie.pipeline.zsl.spec.Cycles` budget, one unit per cycle, so training stops after exactly 10 cycles and
is evaluated at cycle ends. The code keeps the cycle with the best test accuracy; here selection is on validation.
Noise of the synthesised classifier latents (``noise``): ``"per-half"`` (default, the code's
``synse_training.py:333-335``) draws one noise vector for the verb half, then one for the noun half, of each
class's ``[z_noun, z_verb]``; ``"shared"`` (smie before issue #23) draws one for both halves.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from smie.features.store import SmieError
from smie.pipeline.zsl.baselines.generative import LatentClassifier, LatentClassifierStage
from smie.pipeline.zsl.baselines.vae import (CycleParams, GaussianEncoder, cycle_weights, decoder, kl_divergence,
                                               reparameterize, weighted_sum)
from smie.pipeline.zsl.method import MethodContext
from smie.pipeline.zsl.spec import Cycles, MethodSpec


NOISES = ("per-half", "shared")


@dataclass(frozen=True)
class SynSEParams(CycleParams):
    """:class:`~smie.pipeline.zsl.baselines.vae.CycleParams`, plus ``noise``: how the classifier's latents of a
    class text are drawn, ``"per-half"`` (the code's: a draw for the verb half, then one for the noun half) or
    ``"shared"`` (one draw for both halves)."""

    noise: str = "per-half"

    def __post_init__(self):
        if self.noise not in NOISES:
            raise SmieError(f"synse: option noise must be one of {', '.join(NOISES)}, got {self.noise!r}")


def split_defaults(num_classes: int, num_unseen: int) -> dict:
    """The README's per-split settings: ``latent`` 200 on a 120-class table (NTU-120) else 100; ``cycle_length``
    1700 for a 60-class table with 5 unseen classes (NTU-60 55/5) else 1900."""
    return dict(latent=200 if num_classes == 120 else 100,
                cycle_length=1700 if (num_classes, num_unseen) == (60, 5) else 1900)


def split_pos(class_sem: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, 2E') -> verb (K, E') and noun (K, E'), each L2-normalised (the code normalises both on load)."""
    K, E = class_sem.shape
    if E % 2:
        raise SmieError(f"part-of-speech methods need kinds ('verb', 'noun') concatenated; got width {E}")
    return F.normalize(class_sem[:, : E // 2], dim=-1), F.normalize(class_sem[:, E // 2:], dim=-1)


class SynSE(LatentClassifierStage):
    def __init__(self, visual_dim: int, sem_dim: int, hparams: SynSEParams = SynSEParams(),
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

    def sample_text(self, row: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
        """``n`` latents ``[z_noun, z_verb]`` (n, L) of one class text ``row`` (1, 2E'); with ``noise="per-half"``
        the verb half's noise (n, 1) is drawn first, then the noun half's, as the code does; ``"shared"``: one."""
        if self.hparams.noise == "shared":
            return super().sample_text(row, n, gen)
        verb, noun = split_pos(row)
        (mu_n, lv_n), (mu_v, lv_v) = self.enc_noun(noun), self.enc_verb(verb)
        z_v = reparameterize(mu_v.expand(n, -1), lv_v.expand(n, -1), gen)
        z_n = reparameterize(mu_n.expand(n, -1), lv_n.expand(n, -1), gen)
        return torch.cat([z_n, z_v], 1)

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


SPEC = MethodSpec("synse", SynSE, SynSEParams, lr=1e-4, budget=Cycles(10, 1700), batch_size=64, schedule="constant",
                  selectable="any", kinds=("verb", "noun"), run_params=("seed",), by_split=split_defaults)
