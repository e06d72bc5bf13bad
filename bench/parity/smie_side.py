"""Every call the parity bench makes into smie, in one place.

smie's stage-two API (``smie.pipeline.zsl``) is being redesigned; the method modules of this bench
(``smie_parity.py``, ``msf_parity.py``, ...) never import smie themselves, so after a change of that API only this
adapter needs to follow. It speaks plain tensors and arrays, and names parameters by *neutral* names shared with
the official side:

- SMIE's critic: ``l0.weight`` (H0, D + E) acting on ``concat(v, s)``, ``l0.bias``, ``l1.*``, ``l2.*``;
- a VAE part (``enc_v``, ``dec_v``, ``enc_t``, ``dec_t``; SynSE: ``enc_s``, ``dec_s``, ``enc_verb``, ``dec_verb``,
  ``enc_noun``, ``dec_noun``): an encoder's ``hidden`` (CADA-VAE only), ``mu`` and ``logvar`` layers, a
  decoder's ``hidden`` (CADA-VAE only) and ``out`` layers, each ``.weight``/``.bias``.

Noise: smie draws its reparameterisation noise with ``torch.randn`` (``smie.pipeline.zsl.baselines.vae``);
:func:`feed_noise` hands those calls prepared draws instead, so smie and the official code see the same noise.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from smie.pipeline.zsl import evaluate
from smie.pipeline.zsl.baselines.vae import cycle_weights as _cycle_weights
from smie.pipeline.zsl.baselines.vae import train_latent_classifier
from smie.pipeline.zsl.compute import matmul_backend
from smie.pipeline.zsl.fit import FitOptions, lr_factor, semantic_matrix, train_method
from smie.pipeline.zsl.method import Batch, MethodContext, TrainSet
from smie.pipeline.zsl.spec import Cycles, method_spec

MATMUL = matmul_backend()  # resolved now: its self-check draws with torch.randn, which feed_noise replaces later

LOCATIONS = {
    "smie": "pipeline/zsl/estimator.py",
    "msf": "pipeline/zsl/baselines/msf.py",
    "synse": "pipeline/zsl/baselines/synse.py",
    "cadavae": "pipeline/zsl/baselines/cadavae.py",
}


# --- models, parameters, optimiser ---------------------------------------------------------------------------

def make(method: str, visual_dim: int, sem_dim: int, dtype: torch.dtype, steps_per_epoch: int = 1,
         **options) -> nn.Module:
    """smie's model of ``method`` (``smie``, ``msf``, ``synse``, ``cadavae``) in ``dtype``, training mode: its
    spec's ``build`` with hyper-parameters ``options`` (``--option`` names) and a run context of
    ``steps_per_epoch`` optimiser steps per epoch (CADA-VAE's warm-ups)."""
    context = MethodContext(steps_per_epoch=steps_per_epoch)
    return method_spec(method).build(visual_dim, sem_dim, context, **options).to(dtype).train()


def _linears(seq: nn.Module) -> list[str]:
    return [name for name, m in seq.named_children() if isinstance(m, nn.Linear)]


def _names(model: nn.Module) -> dict[str, str]:
    """neutral name -> smie parameter name (for the joined SMIE first layer, the state-dict name)."""
    if hasattr(model, "l0"):
        return {f"{layer}.{p}": f"{layer}.{p}" for layer in ("l0", "l1", "l2") for p in ("weight", "bias")}
    out = {}
    for part, mod in model.named_children():
        if not (part.startswith("enc") or part.startswith("dec")):
            continue
        if part.startswith("enc"):
            layers = {"mu": "mu", "logvar": "logvar"}
            if isinstance(mod.body, nn.Sequential):
                layers["hidden"] = "body." + _linears(mod.body)[0]
        else:
            lin = _linears(mod)
            layers = {"out": lin[-1]} if len(lin) == 1 else {"hidden": lin[0], "out": lin[-1]}
        for neutral, local in layers.items():
            for p in ("weight", "bias"):
                out[f"{part}.{neutral}.{p}"] = f"{part}.{local}.{p}"
    return out


def load_neutral(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy ``state`` (neutral names, any dtype) into ``model``'s parameters (its dtype)."""
    names = _names(model)
    missing = sorted(set(names) - set(state))
    if missing:
        raise KeyError(f"no value for smie parameters {missing}")
    current = model.state_dict()
    dtype = next(model.parameters()).dtype
    current.update({names[k]: v.detach().to(dtype) for k, v in state.items() if k in names})
    model.load_state_dict(current)


def _tensors(model: nn.Module, grad: bool) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    out = {}
    for neutral, local in _names(model).items():
        if local.endswith("l0.weight") and "l0.weight_a" in params:
            a, b = params["l0.weight_a"], params["l0.weight_b"]
            parts = (a.grad, b.grad) if grad else (a, b)
            out[neutral] = None if parts[0] is None else torch.cat([t.detach() for t in parts], 1)
        else:
            p = params[local]
            out[neutral] = (p.grad if grad else p)
            out[neutral] = None if out[neutral] is None else out[neutral].detach()
    return out


def params(model: nn.Module) -> dict[str, torch.Tensor]:
    return _tensors(model, grad=False)


def grads(model: nn.Module) -> dict[str, torch.Tensor]:
    """Gradients after ``backward`` (None where a parameter got none)."""
    return _tensors(model, grad=True)


def optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """The optimiser smie's loop builds for ``model`` (the method's ``optimizer(lr)``: fused Adam, or its own)."""
    opt = model.optimizer(lr)
    for group in opt.param_groups:
        group.setdefault("initial_lr", group["lr"])
    return opt


def set_epoch_lr(opt: torch.optim.Optimizer, epoch: int, epochs: int, warmup: int, schedule: str) -> float:
    """smie's per-epoch learning rate (``lr_factor``: warm-up then cosine or constant); returns the factor."""
    factor = lr_factor(epoch, epochs, warmup, schedule)
    for group in opt.param_groups:
        group["lr"] = group["initial_lr"] * factor
    return factor


def set_step(model: nn.Module, step: int) -> None:
    """Position a step-scheduled method (SynSE, MSF, CADA-VAE) at optimiser step ``step``."""
    model.step.fill_(int(step))


# --- one training step --------------------------------------------------------------------------------------

@contextlib.contextmanager
def feed_noise(draws) -> Iterator[None]:
    """Inside, every ``torch.randn`` (smie's reparameterisation noise) returns ``draws.next(shape)`` in the
    requested dtype instead of a fresh draw."""
    real = torch.randn

    def randn(*size, generator=None, dtype=None, device=None, **_):
        shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)) else size
        return draws.next(shape).to(dtype=dtype or torch.get_default_dtype(), device=device or "cpu")

    torch.randn = randn
    try:
        yield
    finally:
        torch.randn = real


def loss(model: nn.Module, visual: torch.Tensor, labels: torch.Tensor, class_sem: torch.Tensor,
         masked: torch.Tensor | None = None) -> torch.Tensor:
    """``model.loss`` of one batch: visual (B, D), labels (B,) rows of class_sem (Kt, E), masked (B, D) or None."""
    return model.loss(Batch(visual, masked, labels, class_sem))


def step(model: nn.Module, opt: torch.optim.Optimizer, visual, labels, class_sem, masked=None, draws=None):
    """Zero the gradients, compute the loss (noise from ``draws``), backward. Returns the loss; the caller
    compares gradients, then calls ``opt.step()``."""
    opt.zero_grad(set_to_none=True)
    with feed_noise(draws) if draws is not None else contextlib.nullcontext():
        value = loss(model, visual, labels, class_sem, masked)
    value.backward()
    return value.detach()


def cycle_weights(step_index: int, cycle_length: int = 1700, text_kl: str = "msf") -> dict[str, float]:
    """SynSE/MSF's per-step weights as smie computes them: ``kl_visual``, ``cross``, ``kl_text`` (``text_kl``:
    ``msf``, or ``synse-cadavae``, the SynSE repository's CADA-VAE)."""
    return _cycle_weights(step_index, cycle_length, text_kl=text_kl)


def cadavae_weights(model: nn.Module, step_index: int, steps_per_epoch: int) -> dict[str, float]:
    """CADA-VAE's warm-up factors (``beta``, ``cross``, ``distance``) at optimiser step ``step_index``."""
    model.steps_per_epoch = steps_per_epoch
    set_step(model, step_index)
    return model.weights()


# --- smie's own loop ----------------------------------------------------------------------------------------

def train_loop(model: nn.Module, visual, masked, labels, class_sem, epochs: int, batch_size: int, lr: float,
               warmup: int, seed: int, schedule: str = "cosine", cycle_steps: int | None = None, draws=None
               ) -> tuple[list[float], list[tuple[np.ndarray, np.ndarray | None]]]:
    """Train with smie's loop (``fit.train_method``); return its per-epoch mean losses and the batches it drew,
    each ``(sample indices (B,), masked-view indices (B,) or None)``, recovered from the rows it fed. With
    ``cycle_steps`` an epoch is a cycle of that many full batches (``FitOptions.cycle_steps``). ``draws`` feeds its
    reparameterisation noise (``feed_noise``)."""
    where = {visual[i].numpy().tobytes(): i for i in range(len(visual))}
    views = {} if masked is None else {masked[i, w].numpy().tobytes(): (i, w) for i in range(masked.shape[0])
                                       for w in range(masked.shape[1])}
    fed: list[tuple[np.ndarray, np.ndarray | None]] = []
    real = model.loss

    def recording(batch):
        idx = np.array([where[r.numpy().tobytes()] for r in batch.visual])
        if batch.masked is None:
            fed.append((idx, None))
        else:
            picked = [views[r.numpy().tobytes()] for r in batch.masked]
            assert all(i == j for i, (j, _) in zip(idx, picked)), "a masked view of another sample"
            fed.append((idx, np.array([w for _, w in picked])))
        return real(batch)

    model.loss = recording
    try:
        opts = FitOptions(epochs=epochs, batch_size=batch_size, lr=lr, warmup=warmup, seed=seed, device="cpu",
                          schedule=schedule, cycle_steps=cycle_steps)
        with feed_noise(draws) if draws is not None else contextlib.nullcontext():
            losses = train_method(model, TrainSet(visual, masked, labels, class_sem), opts)
    finally:
        del model.loss
    return losses, fed


# --- scoring ------------------------------------------------------------------------------------------------

@torch.no_grad()
def smie_scores(model: nn.Module, visual: torch.Tensor, class_sem: torch.Tensor) -> np.ndarray:
    """SMIE's test scores as smie computes them now: ``T(LayerNorm(v), s)`` (N, K)."""
    model.eval()
    out = model.scores(visual, class_sem).numpy()
    model.train()
    return out


@torch.no_grad()
def smie_critic_on_raw(model: nn.Module, visual: torch.Tensor, class_sem: torch.Tensor) -> np.ndarray:
    """``T(v, s)`` on the raw visual feature (N, K): the ranking the official ``get_acc`` uses, smie's scores with
    ``score_on="raw"`` (a model built with that option from the same state)."""
    raw = make("smie", model.visual_dim, model.sem_dim, next(model.parameters()).dtype, score_on="raw")
    raw.load_state_dict(model.state_dict())
    return smie_scores(raw, visual, class_sem)


def zsl_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """smie's ZSL top-1: per sample over the whole test set."""
    return evaluate.zsl_metrics(scores, labels)["acc"]


def select_epoch(curve: list[float], first_eligible: int) -> int:
    return evaluate.select_epoch(curve, first_eligible)


def latent_classifier_init(model: nn.Module, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The initial (weight (K, L), bias (K,)) of the latent classifier ``model`` trains (its seed), in the model's
    dtype: smie's ``train_latent_classifier`` with zero epochs."""
    dtype = next(model.parameters()).dtype
    z = torch.zeros(1, model.latent, dtype=dtype)
    clf = train_latent_classifier(z, torch.zeros(1, dtype=torch.long), num_classes, 0, model.cls_lr,
                                  model.cls_batch, model.seed, relu_output=model.cls_relu)
    return clf[0].weight.detach().clone(), clf[0].bias.detach().clone()


@torch.no_grad()
def latent_classify(model: nn.Module, visual: torch.Tensor, class_sem: torch.Tensor, draws) -> dict:
    """Score ``visual`` (N, D) against ``class_sem`` (K, E) with the latent classifier (trained here, in the
    model's dtype, its synthesised latents' noise from ``draws``). Returns ``scores`` (N, K) log-softmax and the
    classifier's ``weight``/``bias``."""
    model._classifiers.clear()
    with feed_noise(draws):
        scores = model.scores(visual, class_sem).numpy()
    clf = next(iter(model._classifiers.values()))
    model.train()
    return dict(scores=scores, weight=clf[0].weight.detach().clone(), bias=clf[0].bias.detach().clone())


# --- MSF's gate and fusion ------------------------------------------------------------------------------------

def softmax(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return evaluate.softmax(scores, temperature)


def gate_features(p_unseen: np.ndarray, p_seen: np.ndarray, k: int) -> np.ndarray:
    return evaluate.gate_features(p_unseen, p_seen, k)


def gate_fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """smie's logistic regression of the gate (C = 1, the multinomial two-class optimum)."""
    return evaluate.fit_logistic(x, y)


def gate_proba(x: np.ndarray, coef: np.ndarray, intercept: float) -> np.ndarray:
    return evaluate.logistic_proba(x, coef, intercept)


def gate_predict(p_unseen, p_seen, unseen_cols, seen_cols, coef, intercept, k: int, threshold: float = 0.5):
    gate = dict(coef=list(coef), intercept=float(intercept), k=int(k), threshold=float(threshold))
    return evaluate.msf_gate_predict(p_unseen, p_seen, unseen_cols, seen_cols, gate)


def fit_gate(unseen: tuple[np.ndarray, np.ndarray], seen: tuple[np.ndarray, np.ndarray], k: int,
             temperature: float, seed: int) -> dict:
    """smie's whole gate fit (``evaluate.fit_msf_gate``): its own seeded 4/5 of each group, then the logistic
    regression; ``unseen``/``seen`` are ``(p_unseen, p_seen)`` of the two groups' rows."""
    return evaluate.fit_msf_gate(unseen, seen, k, temperature, seed)


def seen_expert(logits: np.ndarray, seen_cols, temperature: float) -> np.ndarray:
    """smie's seen expert from the backbone's logits (N, K_all): softmax at ``temperature`` over the seen
    columns only (``LatentClassifierStage.seen_expert``)."""
    return evaluate.softmax(np.asarray(logits)[:, list(seen_cols)], temperature)


def fused_semantics(per_kind: list[np.ndarray], combine: str = "concat") -> np.ndarray:
    """smie's class semantics from several kinds, one text per class each (K, E_k): ``semantic_matrix`` of a text
    cache holding them (``combine``: ``concat``, each kind L2-normalised then concatenated; ``concat-raw``, the
    code's raw concatenation and one norm), then MSF's own L2 norm (``encode_text``). ``semantic_matrix`` returns
    float32 (the caches' precision)."""
    from smie.features.text import TextCache, TextKind

    K = per_kind[0].shape[0]
    groups = {f"kind{i}": TextKind(np.asarray(e, np.float32)[:, None, :], tuple((f"t{k}",) for k in range(K)),
                                   np.ones(K, np.int32)) for i, e in enumerate(per_kind)}
    cache = TextCache(tuple(f"class{k}" for k in range(K)), np.arange(K), groups, "parity", "parity", "", 0, False)
    fused = torch.from_numpy(semantic_matrix(cache, tuple(groups), combine).astype(np.float64))
    return F.normalize(fused, dim=-1).numpy()


# --- stage one's keyframe masking ---------------------------------------------------------------------------

def keyframe_remaining(x: torch.Tensor, k: int) -> torch.Tensor:
    """Frames left after smie removes the ``k`` highest-motion frames of each clip (N, C, T, V, M) -> (N, T - k),
    ascending (``keyframes.kept_frames``, variant ``paper``)."""
    from smie.pipeline.visual.keyframes import kept_frames

    return kept_frames(x, "paper", k=k)[:, 0]


def defaults(method: str, num_classes: int | None = None, num_unseen: int | None = None) -> dict:
    """smie's defaults for ``method`` from its spec: learning rate, batch size, schedule, cycles and cycle length
    (a :class:`Cycles` budget) and the hyper-parameters' defaults (``latent`` ...), with the spec's settings for a
    class table of ``num_classes`` with ``num_unseen`` unseen classes applied (``fit-baseline``'s
    ``data_defaults_of``: ``by_classes``, then ``by_split``)."""
    import dataclasses

    spec = method_spec(method)
    out = {f.name: f.default for f in dataclasses.fields(spec.params) if f.default is not dataclasses.MISSING}
    out.update(lr=spec.lr, batch_size=spec.batch_size, schedule=spec.schedule)
    if isinstance(spec.budget, Cycles):
        out.update(cycles=spec.budget.cycles, cycle_length=spec.budget.length)
    if num_classes is not None:
        from smie.pipeline.zsl.baselines.run import data_defaults_of

        out.update(data_defaults_of(spec, num_classes, num_unseen if num_unseen is not None else 0))
    return out
