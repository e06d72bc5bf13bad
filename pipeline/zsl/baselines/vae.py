"""Gaussian encoder/decoder blocks, alignment terms and the latent softmax classifier of the generative baselines.

CADA-VAE (Schonfeld et al., CVPR 2019), SynSE (Gupta et al., ICIP 2021) and MSF (Li et al., 2023) all encode
visual features and class texts into a shared latent space with VAEs, then classify visual latents with a
softmax classifier trained on latents of known samples and on latents *synthesised* from class texts.
Shapes: features (B, D) or (B, E); latents (B, L).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from smie.features.store import SmieError
from smie.pipeline.zsl.compute import Linear, mm


class GaussianEncoder(nn.Module):
    """x (B, in) -> (mu, logvar) each (B, latent); ``hidden=0`` gives the single linear map of the SynSE code."""

    def __init__(self, in_dim: int, latent: int, hidden: int = 0):
        super().__init__()
        self.body = nn.Sequential(Linear(in_dim, hidden), nn.ReLU()) if hidden else nn.Identity()
        width = hidden or in_dim
        self.mu = Linear(width, latent)
        self.logvar = Linear(width, latent)
        _xavier(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.mu(h), self.logvar(h)


def decoder(latent: int, out_dim: int, hidden: int = 0, out_relu: bool = False) -> nn.Sequential:
    """z (B, latent) -> (B, out); SynSE's decoder is Linear+ReLU (``hidden=0, out_relu=True``)."""
    layers: list[nn.Module] = [Linear(latent, hidden), nn.ReLU(), Linear(hidden, out_dim)] if hidden else [
        Linear(latent, out_dim)
    ]
    if out_relu:
        layers.append(nn.ReLU())
    net = nn.Sequential(*layers)
    _xavier(net)
    return net


def _xavier(module: nn.Module) -> None:
    """The authors' ``weights_init``: Xavier-uniform (gain 0.5) weights, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight, gain=0.5)
            nn.init.zeros_(m.bias)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """z = mu + sigma * eps with sigma = exp(logvar / 2) and one eps per sample shared over latent dims.

    The shared eps follows both reference codes (``FloatTensor(B, 1).normal_().expand``).
    """
    if gen is None:
        eps = torch.randn(mu.shape[0], 1, device=mu.device, dtype=mu.dtype)
    else:
        eps = torch.randn(mu.shape[0], 1, dtype=mu.dtype, generator=gen).to(mu.device)
    return mu + torch.exp(0.5 * logvar) * eps


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q || N(0, I)) summed over latent dims, averaged over the batch."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / mu.shape[0]


def weighted_sum(*terms: tuple[float, Callable[[], torch.Tensor]]) -> torch.Tensor | float:
    """``sum(weight * term())`` over ``(weight, term)`` pairs, calling only the terms whose weight is not 0.

    The schedules keep most terms at weight 0 for long stretches (SynSE/MSF's cross-reconstruction over the
    first 1400 of each 1700 steps, CADA-VAE's warm-ups); a skipped term would only have added zeros to the
    loss and its gradients, so the result is the same without its forward and backward passes."""
    total: torch.Tensor | float = 0.0
    for weight, term in terms:
        if weight:
            total = total + weight * term()
    return total


def wasserstein(mu1: torch.Tensor, lv1: torch.Tensor, mu2: torch.Tensor, lv2: torch.Tensor) -> torch.Tensor:
    """CADA-VAE's distribution alignment: 2-Wasserstein distance between diagonal Gaussians, per sample (B,)."""
    return torch.sqrt(
        ((mu1 - mu2) ** 2).sum(1) + ((torch.exp(0.5 * lv1) - torch.exp(0.5 * lv2)) ** 2).sum(1) + 1e-12
    )


def ramp(value: float, start: float, end: float, factor: float) -> float:
    """CADA-VAE's warm-up: 0 before ``start``, rising linearly to ``factor`` at ``end``, then constant."""
    if end <= start:
        return factor if value >= start else 0.0
    return min(max(factor * (value - start) / (end - start), 0.0), factor)


def train_latent_classifier(
    z: torch.Tensor, y: torch.Tensor, num_classes: int, epochs: int, lr: float, batch_size: int, seed: int,
    relu_output: bool = False,
) -> nn.Module:
    """Fit a linear softmax classifier on latents ``z`` (M, L) with targets ``y`` (M,) in [0, num_classes).

    ``batch_size <= 0`` means full-batch steps (the SynSE/MSF code: 300 full-batch Adam steps); ``relu_output``
    reproduces their ``MLP([latent, K])``, a Linear followed by ReLU. The classifier is built in ``z``'s dtype
    (a float64 model scores in float64); its initial weights are float32 draws, cast, whatever that dtype.

    The loop is the codes' (cross-entropy, Adam with beta1 0.5 for minibatches, else 0.9), with the gradient
    of the softmax layer written out instead of taken by autograd: ``(softmax - onehot) / B`` times the
    inputs, and Adam's update on one (K, L + 1) tensor holding weight and bias. The logits are kept as (K, B):
    a softmax over a handful of classes along the rows of a (B, K) tensor costs 30x one along its columns. A scoring of the generative
    baselines trains one such classifier (thousands of 32-sample steps), where autograd's and the optimiser's
    per-step overhead is 20x the arithmetic; ``tests/test_stage2_fast.py`` checks it against the autograd loop.
    """
    gen = torch.Generator(device="cpu").manual_seed(seed)
    fc = nn.Linear(z.shape[1], num_classes, dtype=z.dtype)  # the latents' precision (float64 runs stay float64)
    bound = 0.5 * (6.0 / (fc.in_features + fc.out_features)) ** 0.5
    # drawn in float32 whatever z's dtype, so a float64 run starts from the float32 run's classifier (cast)
    init = torch.empty(fc.weight.shape, dtype=torch.float32).uniform_(-1, 1, generator=gen) * bound
    zb = torch.cat((z.detach(), torch.ones(z.shape[0], 1, dtype=z.dtype, device=z.device)), dim=1)  # (M, L+1)
    param = torch.cat((init.to(z), torch.zeros(num_classes, 1, dtype=z.dtype, device=z.device)), dim=1)
    exp_avg, exp_avg_sq = torch.zeros_like(param), torch.zeros_like(param)
    beta1, beta2, eps = (0.5 if batch_size > 0 else 0.9), 0.999, 1e-8
    M, step = z.shape[0], 0
    cols = torch.arange(M, device=z.device)
    for _ in range(epochs):
        chunks = torch.randperm(M, generator=gen).to(z.device).split(batch_size) if batch_size > 0 else [None]
        for idx in chunks:
            x, target = (zb, y) if idx is None else (zb[idx], y[idx])
            pre = mm(param, x.T)  # (K, B): classes on the rows, so the softmax runs along contiguous memory
            grad = torch.softmax(torch.relu(pre) if relu_output else pre, dim=0)
            grad[target, cols[: len(target)]] -= 1
            if relu_output:
                grad *= pre > 0
            g = mm(grad, x) / len(target)  # (K, L+1)
            step += 1
            exp_avg.lerp_(g, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = (exp_avg_sq.sqrt() / (1 - beta2 ** step) ** 0.5).add_(eps)
            param.addcdiv_(exp_avg, denom, value=-lr / (1 - beta1 ** step))
    with torch.no_grad():
        fc.weight.copy_(param[:, :-1])
        fc.bias.copy_(param[:, -1])
    clf: nn.Module = nn.Sequential(fc, nn.ReLU()) if relu_output else nn.Sequential(fc)
    clf = clf.to(z.device).eval()
    for p in clf.parameters():
        p.requires_grad_(False)
    return clf


@dataclass(frozen=True)
class CycleParams:
    """SynSE's and MSF's shared hyper-parameters: the latent width, the cycle schedule (``cycle_length`` steps a
    cycle, ``cycles`` of them; ``cycle_base`` the length the code's step constants are rescaled from, set when a
    small data set shortens the cycle) and the latent classifier (``seen_per_class`` encoded samples per seen class
    in GZSL, ``unseen_per_class`` text latents per unseen class, ``cls_steps`` full-batch Adam steps at ``cls_lr``),
    seeded by ``seed``."""

    latent: int = 100
    cycle_length: int = 1700
    cycles: int = 10
    seen_per_class: int = 200
    unseen_per_class: int = 500
    cls_steps: int = 300
    cls_lr: float = 1e-3
    seed: int = 0
    cycle_base: int | None = None


TEXT_KL = ("msf", "synse-cadavae")


def cycle_weights(step: int, cycle_length: int = 1700, base: int | None = None,
                  text_kl: str = "msf") -> dict[str, float]:
    """The SynSE/MSF code's per-iteration schedule inside cycles of ``cycle_length`` steps.

    ``base`` is the cycle length the code's constants belong to (None: ``max(cycle_length, 1700)``). The code
    uses KL start 1000 and divisor 3000 for any cycle, and a cross-reconstruction start ``x = 1400`` when the
    cycle is 1700 steps (NTU-60), else ``x = 1500`` (NTU-120's 1900). With ``e`` the step within cycle ``c``
    and ``r = cycle_length / base`` (1 unless the cycle was shortened for a small data set): visual KL weight
    ``max(0.1 (e - 1000 r) / (3000 r), 0)``; every cross-reconstruction term weighs 1 once ``e > x r``. The text
    KL weight, ``text_kl``:

    - ``"msf"``: ``max(0.1 (e - x r) / (3000 r), 0)`` only from the third cycle on (``c > 1``), as in the MSF
      code (``train.py``) and SynSE's ``synse_training.py``;
    - ``"synse-cadavae"``: the visual KL weight times ``[e > x r]`` in every cycle, as the SynSE repository's
      CADA-VAE computes it (``cada_vae/cada_vae_training.py:172-173``: ``k_fact2 = k_fact * (epoch > s_epoch +
      cr_fact_epoch)``).
    """
    if text_kl not in TEXT_KL:
        raise SmieError(f"text_kl must be one of {', '.join(TEXT_KL)}, got {text_kl!r}")
    base = max(int(cycle_length), 1700) if base is None else int(base)
    c, e = divmod(int(step), max(1, int(cycle_length)))
    r = cycle_length / base
    x = 1400 if base == 1700 else 1500
    kl_visual = max(0.1 * (e - 1000 * r) / (3000 * r), 0.0)
    cross = 1.0 if e > x * r else 0.0
    if text_kl == "synse-cadavae":
        kl_text = kl_visual * cross
    else:
        kl_text = max(0.1 * (e - x * r) / (3000 * r), 0.0) * (1.0 if c > 1 else 0.0)
    return {"kl_visual": kl_visual, "cross": cross, "kl_text": kl_text}
