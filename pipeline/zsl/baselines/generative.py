"""The second stage shared by the generative baselines (CADA-VAE, SynSE, MSF): a softmax classifier in latent space.

After the VAEs are trained, ``finalize`` stores latents of the seen training samples; ``scores`` then trains (once
per distinct class set, cached) a softmax classifier over the requested classes, fed with the stored latents
for classes that were seen in training and with latents synthesised from the class texts for the others, and
classifies the mean latent of each visual feature. With only unseen classes this is SynSE's/MSF's ZSL
classifier; with all classes it is CADA-VAE's GZSL classifier.
Subclasses provide ``encode_visual(v (N, D)) -> (mu, logvar)`` and ``encode_text(s (K, E)) -> (mu, logvar)``,
and describe their classifier with a :class:`LatentClassifier`; ``sample_text`` (how a class text's latents are
drawn) may be overridden (SynSE draws one noise vector per half).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch import nn

from smie.pipeline.zsl.baselines.vae import reparameterize, train_latent_classifier
from smie.pipeline.zsl.method import BaseMethod, MethodContext


@dataclass(frozen=True)
class LatentClassifier:
    """The second stage of one method: ``latent`` width; per class, ``seen_per_class`` encoded training samples
    and ``unseen_per_class`` text latents (``zsl_unseen_per_class`` when only unseen classes are scored); the
    classifier trained ``epochs`` epochs (full-batch steps when ``batch`` is 0) at ``lr``, ``relu`` after its
    linear layer (SynSE/MSF), seeded by ``seed``."""

    latent: int
    seen_per_class: int
    unseen_per_class: int
    epochs: int
    lr: float
    batch: int
    relu: bool
    seed: int
    zsl_unseen_per_class: int | None = None


class LatentClassifierStage(BaseMethod):
    """Base class of the generative baselines. Scoring retrains the latent classifier, which costs far more than
    a training epoch: their specs evaluate them every few epochs (``eval_every``), or once per cycle."""

    def __init__(self, visual_dim: int, sem_dim: int, hparams, context: MethodContext | None,
                 classifier: LatentClassifier):
        super().__init__(visual_dim, sem_dim, hparams, context)
        c = classifier
        self.latent = c.latent
        self.seen_per_class = c.seen_per_class
        self.unseen_per_class = c.unseen_per_class
        self.zsl_unseen_per_class = c.unseen_per_class if c.zsl_unseen_per_class is None else c.zsl_unseen_per_class
        self.cls_epochs, self.cls_lr, self.cls_batch, self.cls_relu = c.epochs, c.lr, c.batch, c.relu
        self.seed = c.seed
        self.register_buffer("seen_z", torch.zeros(0, c.latent))
        self.register_buffer("seen_y", torch.zeros(0, dtype=torch.long))
        self.register_buffer("seen_sem", torch.zeros(0, 0))
        self._classifiers: dict[str, nn.Module] = {}

    def encode_visual(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def encode_text(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def sample_text(self, row: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
        """``n`` latents (n, L) synthesised from one class text ``row`` (1, E): one noise draw (n, 1) from ``gen``
        shared over the latent (:func:`~smie.pipeline.zsl.baselines.vae.reparameterize`)."""
        mu, lv = self.encode_text(row)
        return reparameterize(mu.expand(n, -1), lv.expand(n, -1), gen)

    @torch.no_grad()
    def finalize(self, train, class_sem: torch.Tensor) -> None:
        """Store ``seen_per_class`` noisy latents per training class (repeating samples as CADA-VAE does; each
        sample is encoded once and its latent Gaussian repeated, the noise drawn per copy)."""
        was = self.training
        self.eval()
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        dev = class_sem.device
        visual, labels = train.visual.to(dev), train.labels.to(dev)
        zs, ys = [], []
        if self.seen_per_class > 0:
            for k in labels.unique().tolist():
                mu, lv = self.encode_visual(visual[labels == k])
                reps = -(-self.seen_per_class // mu.shape[0])
                mu, lv = mu.repeat(reps, 1)[: self.seen_per_class], lv.repeat(reps, 1)[: self.seen_per_class]
                zs.append(reparameterize(mu, lv, gen))
                ys.append(torch.full((mu.shape[0],), k, dtype=torch.long, device=dev))
        self.seen_z = torch.cat(zs) if zs else torch.zeros(0, self.latent, device=dev)
        self.seen_y = torch.cat(ys) if ys else torch.zeros(0, dtype=torch.long, device=dev)
        self.seen_sem = class_sem.detach().clone()
        self._classifiers.clear()
        self.train(was)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("seen_z", "seen_y", "seen_sem"):
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        self._classifiers.clear()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _seen_row(self, row: torch.Tensor) -> int | None:
        """Index into the stored training classes of a class whose text equals ``row``, else None."""
        if self.seen_sem.numel() == 0 or self.seen_sem.shape[1] != row.shape[0]:
            return None
        hit = (self.seen_sem == row.view(1, -1)).all(1).nonzero()
        return int(hit[0]) if len(hit) else None

    @torch.no_grad()
    def _classifier(self, class_sem: torch.Tensor) -> nn.Module:
        key = hashlib.sha256(class_sem.detach().float().cpu().numpy().tobytes()).hexdigest()
        if key in self._classifiers:
            return self._classifiers[key]
        gen = torch.Generator(device="cpu").manual_seed(self.seed + 1)
        seen_rows = [self._seen_row(class_sem[k]) for k in range(class_sem.shape[0])]
        per_unseen = self.unseen_per_class if any(r is not None for r in seen_rows) else self.zsl_unseen_per_class
        zs, ys = [], []
        for k, seen in enumerate(seen_rows):
            if seen is not None and self.seen_per_class > 0 and bool((self.seen_y == seen).any()):
                z = self.seen_z[self.seen_y == seen]
            else:
                z = self.sample_text(class_sem[k: k + 1], per_unseen, gen)
            zs.append(z)
            ys.append(torch.full((z.shape[0],), k, dtype=torch.long, device=z.device))
        clf = train_latent_classifier(torch.cat(zs), torch.cat(ys), class_sem.shape[0], self.cls_epochs,
                                      self.cls_lr, self.cls_batch, self.seed, relu_output=self.cls_relu)
        self._classifiers[key] = clf
        return clf

    @torch.no_grad()
    def scores(self, visual: torch.Tensor, class_sem: torch.Tensor) -> torch.Tensor:
        """(N, D), (K, E) -> (N, K) log-softmax scores of the latent classifier on the visual means."""
        was = self.training
        self.eval()
        clf = self._classifier(class_sem)
        mu, _ = self.encode_visual(visual)
        self.train(was)
        return torch.log_softmax(clf(mu), dim=1)
