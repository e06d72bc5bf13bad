"""The lockstep driver shared by the cycle-scheduled methods: MSF (``train.py``), SynSE (``synse_training.py``) and
the SynSE repository's CADA-VAE (``cada_vae_training.py``), three scripts with the same skeleton.

Each script builds its VAEs, ``optimizer`` and loaders at import, trains with ``train_one_cycle(cycle, length)``,
which takes ``next(iter(train_loader))`` as the batch of every step and computes its schedule weights as local
variables, and scores with ``train_classifier()``, which trains ``MLP([latent, ss])`` on text latents. The bench
imports the script (``standins.official_import``), replaces ``train_loader`` by a :class:`StepLoader` that hands
out the bench's batches, and hooks ``optimizer.step`` (:class:`Lockstep`): at every official step smie's model
takes the same step on the same batch with the same noise, and the loss, the gradients, the parameters and the
schedule weights (read from the official step's locals) are compared. :func:`classifier_check` runs the official
``train_classifier`` with the classifier smie will start from and the same synthesised-latent noise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

import smie_side as S
from standins import Draws, OfficialRuntime, hook_step, quiet
from table import MaxDiff, Row, Sampled, agreement_row, dtype_name, fmt, grads_row, same_row

CYCLE = 1700

LAYERS = {"mu_transformation.0": "mu", "logvar_transformation.0": "logvar", "model.0": "out"}


def official_tensors(parts: dict[str, nn.Module], grad: bool = False) -> dict[str, torch.Tensor]:
    """The official Encoders/Decoders' parameters (or gradients) by neutral name (``smie_side``)."""
    out = {}
    for part, module in parts.items():
        for name, prm in module.named_parameters():
            layer, _, kind = name.rpartition(".")
            value = prm.grad if grad else prm
            out[f"{part}.{LAYERS[layer]}.{kind}"] = None if value is None else value.detach()
    return out


def random_batches(seed: int, n: int, steps: int, batch: int = 64) -> list[np.ndarray]:
    """The official loaders' batches: a fresh shuffle per step, its first ``batch`` rows."""
    g = np.random.default_rng(seed)
    return [g.permutation(n)[:batch] for _ in range(steps)]


class StopCycle(Exception):
    """Raised by :class:`StepLoader` when its plan is used up: a step budget shorter than the cycle ends the
    official ``train_one_cycle`` there (an interruption, as a user's Ctrl-C would be)."""


class StepLoader:
    """Stand-in for the scripts' ``train_loader``: ``next(iter(loader))`` is the plan's next batch
    ``(features (B, D), labels (B,))``; ``current`` is its row indices."""

    def __init__(self, visual: torch.Tensor, labels: np.ndarray, plan: list[np.ndarray]):
        self.visual, self.labels, self.plan, self.k = visual, labels, plan, 0
        self.current: np.ndarray | None = None

    def __iter__(self):
        if self.k >= len(self.plan):
            raise StopCycle
        self.current = self.plan[self.k]
        self.k += 1
        return iter([(self.visual[self.current], torch.as_tensor(self.labels[self.current]))])


def test_batches(visual: torch.Tensor, labels: np.ndarray, size: int = 64) -> list:
    """The scripts' ``zsl_loader``/``val_loader`` (no shuffling, batches of 64)."""
    return [(visual[s:s + size], torch.as_tensor(labels[s:s + size])) for s in range(0, len(labels), size)]


class Lockstep:
    """smie's model stepping inside the official optimiser's ``step`` (``standins.hook_step``).

    ``rows`` (N,) maps each training sample to its row of ``class_sem`` (smie's labels); ``weights`` maps each
    official local holding a schedule weight to smie's weight of the same role (``S.cycle_weights``; ``None``: a
    term smie does not have, whose weight must be 0). Noise: both sides draw from equal seeded
    :class:`standins.Draws` sources.
    """

    def __init__(self, runtime: OfficialRuntime, parts: dict[str, nn.Module], optimizer, model, loader: StepLoader,
                 class_sem: torch.Tensor, rows: torch.Tensor, weights: dict[str, str], noise_seed: int, lr: float,
                 cycle_length: int = 1700, trace_seed: int = 0):
        self.runtime, self.parts, self.model, self.loader = runtime, parts, model, loader
        self.class_sem, self.rows, self.weights, self.cycle_length = class_sem, rows, weights, cycle_length
        self.opt = S.optimizer(model, lr)
        runtime.draws, self.draws = Draws(noise_seed), Draws(noise_seed)
        self.d_loss, self.d_grad, self.d_param = MaxDiff(), MaxDiff(), MaxDiff()
        self.after_loss, self.after_param = MaxDiff(), MaxDiff()  # from the first step whose weights differ on
        self.off_losses, self.smie_losses = [], []
        self.off_grads, self.smie_grads = Sampled(seed=trace_seed), Sampled(seed=trace_seed)
        self.weight_steps, self.weight_diffs = 0, {k: 0 for k in weights}
        self.first_diff: dict[str, int] = {}
        hook_step(optimizer, self.before, self.after)

    def before(self) -> None:
        frame, idx = self.runtime.frames[-1], self.loader.current
        step = int(frame["epoch"])
        S.set_step(self.model, step)
        with self.runtime.suspended():
            value = S.step(self.model, self.opt, self.loader.visual[idx], self.rows[idx], self.class_sem,
                           draws=self.draws)
            ours = S.cycle_weights(step, self.cycle_length)
        self.weight_steps += 1
        for local, name in self.weights.items():
            if (0.0 if name is None else ours[name]) != frame[local]:
                self.weight_diffs[local] += 1
                self.first_diff.setdefault(local, step)
        (self.after_loss if self.first_diff else self.d_loss).update(self.runtime.last_loss, value)
        self.off_losses.append(float(self.runtime.last_loss))
        self.smie_losses.append(float(value))
        g_off, g_smie = official_tensors(self.parts, grad=True), S.grads(self.model)
        if not self.first_diff:
            self.d_grad.update_dicts(g_off, g_smie)
            self.off_grads.add(g_off)
            self.smie_grads.add(g_smie)

    def after(self) -> None:
        with self.runtime.suspended():
            self.opt.step()
        (self.after_param if self.first_diff else self.d_param).update_dicts(official_tensors(self.parts),
                                                                             S.params(self.model))


def run_cycles(mod, runtime: OfficialRuntime, steps: int, cycle_length: int, on_cycle_end) -> None:
    """The official ``train_one_cycle(c, cycle_length)`` for c = 0, 1, ... until ``steps`` steps have run (the
    loader's plan holds exactly that many), ``on_cycle_end(c)`` after each (also after a cut-short one)."""
    for c in range(-(-steps // cycle_length)):
        try:
            with runtime, quiet():
                mod.train_one_cycle(c, cycle_length)
        except StopCycle:
            pass
        on_cycle_end(c)


def scan_schedule(mod, runtime: OfficialRuntime, visual: torch.Tensor, labels: np.ndarray, cycles: int,
                  weights: dict[str, str], cycle_length: int = 1700, smie=S.cycle_weights) -> dict:
    """Run the official ``train_one_cycle`` for cycles 0..cycles-1 on one-sample batches without gradients
    (``runtime.record_only``: only the schedule is read); count the steps where each of smie's weights
    (``smie(step)``) differs from the official local."""
    mod.train_loader = StepLoader(visual, labels, [np.array([i % len(labels)]) for i in range(cycles * cycle_length)])
    runtime.record_only = True
    with runtime, quiet(), torch.no_grad():
        for c in range(cycles):
            mod.train_one_cycle(c, cycle_length)
    diffs, first = {k: 0 for k in weights}, {}
    for frame in runtime.frames:
        step = int(frame["epoch"])
        ours = smie(step)
        for local, name in weights.items():
            if (0.0 if name is None else ours[name]) != frame[local]:
                diffs[local] += 1
                first.setdefault(local, step)
    return dict(steps=len(runtime.frames), diffs=diffs, first=first)


def init_mlp(cls: type, weight: torch.Tensor, bias: torch.Tensor, dtype: torch.dtype) -> type:
    """The scripts' ``MLP`` starting from smie's classifier initialisation (same initial weights), in ``dtype``."""

    class InitMLP(cls):
        def __init__(self, layer_sizes):
            super().__init__(layer_sizes)
            self.to(dtype)
            with torch.no_grad():
                self.model[0].weight.copy_(weight)
                self.model[0].bias.copy_(bias)

    return InitMLP


def classifier_check(mod, runtime: OfficialRuntime, model, official_draws: list[torch.Tensor],
                     smie_draws: list[torch.Tensor], zsl_visual: torch.Tensor, gzsl_visual: torch.Tensor,
                     unseen_sem: torch.Tensor, unseen_inds: np.ndarray, dtype: torch.dtype,
                     encoder_name: str = "sequence_encoder") -> dict:
    """The official ``train_classifier()`` and smie's latent classifier, from the same initial classifier and the
    same noise (``official_draws``/``smie_draws``, the same numbers in each side's order). Returns the classifier
    weights of both, ZSL predictions on ``zsl_visual`` and unseen-expert probabilities on ``gzsl_visual``."""
    weight, bias = S.latent_classifier_init(model, len(unseen_inds))
    saved_mlp, saved_draws = mod.MLP, runtime.draws
    mod.MLP = init_mlp(saved_mlp, weight, bias, dtype)
    runtime.draws = Draws(tensors=official_draws)
    try:
        with runtime, quiet():
            zsl_acc, val_out, cls = mod.train_classifier()
            with torch.no_grad():
                off_pred = unseen_inds[cls(getattr(mod, encoder_name)(zsl_visual)[0]).argmax(-1).numpy()]
    finally:
        mod.MLP, runtime.draws = saved_mlp, saved_draws
    ours = S.latent_classify(model, torch.cat([zsl_visual, gzsl_visual]), unseen_sem, Draws(tensors=smie_draws))
    n = len(zsl_visual)
    probs = np.exp(ours["scores"][n:])
    return dict(off_weight=cls.model[0].weight.detach().clone(), off_bias=cls.model[0].bias.detach().clone(),
                weight=ours["weight"], bias=ours["bias"], off_pred=off_pred,
                pred=unseen_inds[ours["scores"][:n].argmax(1)], off_acc=zsl_acc, off_probs=np.asarray(val_out),
                probs=probs / probs.sum(1, keepdims=True))


@dataclass
class Variant:
    """One way of feeding the classifier's noise: ``official``/``smie`` draws in each side's order; ``same``: the
    two sides are expected to agree (else the row shows the difference); ``model``: another smie model (an option
    of the method, the setup's trained state loaded into it) to classify with."""

    label: str
    official: list[torch.Tensor]
    smie: list[torch.Tensor]
    same: bool = True
    model: nn.Module | None = None  # smie's model to classify with (None: the setup's)


@dataclass
class Setup:
    """An imported official script and the smie model facing it: ``parts`` (neutral part name -> official
    module), training features/labels, ``rows`` (smie's label of each training sample), the seen classes' and the
    unseen classes' semantics as smie takes them, ``unseen`` class indices, ZSL and GZSL test features."""

    mod: object
    runtime: OfficialRuntime
    parts: dict
    model: nn.Module
    train: torch.Tensor
    train_labels: np.ndarray
    rows: torch.Tensor
    seen_sem: torch.Tensor
    unseen_sem: torch.Tensor
    unseen: np.ndarray
    ztest: torch.Tensor
    ztest_labels: np.ndarray
    gtest: torch.Tensor
    gtest_labels: np.ndarray
    weights: dict
    lr: float
    encoder_name: str = "sequence_encoder"


def lockstep_run(setup: Setup, steps: int, seed: int, variants: Callable[[torch.Generator], list[Variant]]) -> dict:
    """``steps`` lockstep steps and, after each cycle, the classifier comparison of every noise variant. Returns
    the trackers and the official traces the float32 rows compare against."""
    mod, runtime = setup.mod, setup.runtime
    loader = StepLoader(setup.train, setup.train_labels, random_batches(seed, len(setup.rows), steps))
    mod.train_loader = loader
    mod.zsl_loader = test_batches(setup.ztest, setup.ztest_labels)
    mod.val_loader = test_batches(setup.gtest, setup.gtest_labels)
    lock = Lockstep(runtime, setup.parts, mod.optimizer, setup.model, loader, setup.seen_sem, setup.rows,
                    setup.weights, seed, setup.lr)
    g = torch.Generator().manual_seed(seed + 7)
    found: dict[str, dict] = {}
    dtype = setup.train.dtype

    def on_cycle_end(c):
        for v in variants(g):
            check = classifier_check(mod, runtime, v.model or setup.model, v.official, v.smie, setup.ztest, setup.gtest,
                                     setup.unseen_sem, setup.unseen, dtype, setup.encoder_name)
            f = found.setdefault(v.label, dict(same=v.same, d_w=MaxDiff(), d_p=MaxDiff(), agree=[], accs=[],
                                               official=dict(weights=[], probs=[], preds=[])))
            f["d_w"].update_dicts({"w": check["off_weight"], "b": check["off_bias"]},
                                  {"w": check["weight"], "b": check["bias"]})
            f["d_p"].update(check["off_probs"], check["probs"])
            f["agree"].append(check["off_pred"] == check["pred"])
            f["accs"].append((check["off_acc"], float((check["pred"] == setup.ztest_labels).mean())))
            f["official"]["weights"].append(torch.cat([check["off_weight"].ravel(), check["off_bias"]]))
            f["official"]["probs"].append(check["off_probs"])
            f["official"]["preds"].append(check["off_pred"])

    run_cycles(mod, runtime, steps, CYCLE, on_cycle_end)
    return dict(lock=lock, classifier=found, off_losses=lock.off_losses, off_params=official_tensors(setup.parts),
                same_draws=runtime.draws.shapes == lock.draws.shapes, n_draws=len(lock.draws.shapes))


def drift(a, b) -> float:
    a = a.double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, dtype=np.float64)
    b = b.double().numpy() if isinstance(b, torch.Tensor) else np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)))


def lockstep_rows(method: str, label: str, runs: dict, expect_weights: bool = True) -> list[Row]:
    """The rows of a :func:`lockstep_run` per precision: loss, gradients, parameters, schedule weights, noise,
    and the classifier of each noise variant. With ``expect_weights=False`` a schedule difference is a known one:
    the rows before it are judged as usual, the steps from it on are shown as DIFFERENT."""
    rows, ref = [], runs.get(torch.float64)
    for dt, r in runs.items():
        lock, is32 = r["lock"], dt == torch.float32 and ref is not None
        loss_drift = drift(r["off_losses"], ref["off_losses"]) if is32 else None
        param_drift = max(drift(r["off_params"][k], ref["off_params"][k]) for k in r["off_params"]) if is32 else None
        steps = lock.weight_steps
        span = f"{steps // CYCLE} x {CYCLE} steps" if steps % CYCLE == 0 else f"{steps} steps"
        first = min(lock.first_diff.values()) if lock.first_diff else None
        upto = "" if first is None else f", up to step {first}"
        if first is not None and not is32:
            param_drift = None
        rows += [same_row(method, f"{label}loss per step ({span}{upto})", dt, lock.d_loss, loss_drift),
                 grads_row(method, f"{label}gradients per step{upto}", dt, lock.d_grad, lock.smie_grads,
                           lock.off_grads, ref["lock"].off_grads if is32 else None),
                 same_row(method, f"{label}parameters after each step{upto}", dt, lock.d_param,
                          param_drift if first is None else None)]
        differing = {k: v for k, v in lock.weight_diffs.items() if v}
        if not differing:
            rows.append(Row(method, f"{label}schedule weights ({', '.join(lock.weights)}) vs smie cycle_weights",
                            dtype_name(dt), f"identical on {steps}/{steps} steps", "SAME"))
        else:
            rows.append(Row(method, f"{label}schedule weights vs smie's msf cycle_weights", dtype_name(dt),
                            "differ on " + ", ".join(f"{k} {v}/{steps} (first at step {lock.first_diff[k]})"
                                                     for k, v in differing.items()),
                            "MISMATCH" if expect_weights else "DIFFERENT"))
            rows.append(Row(method, f"{label}loss / parameters from step {first} on", dtype_name(dt),
                            f"max |Δ| {fmt(lock.after_loss.diff)} / {fmt(lock.after_param.diff)} over "
                            f"{lock.after_loss.count} steps", "MISMATCH" if expect_weights else "DIFFERENT"))
        rows.append(Row(method, f"{label}noise: vectors drawn, shapes", dtype_name(dt),
                        f"{r['n_draws']} draws, same shapes" if r["same_draws"] else "draw sequences differ",
                        "SAME" if r["same_draws"] else "MISMATCH"))
        for name, found in r["classifier"].items():
            more = classifier_rows(method, label + name, dt, found, ref["classifier"][name] if is32 else None)
            if first is not None and not expect_weights:  # trained past the known schedule difference
                for row in more:
                    row.check += f" (VAEs differ from step {first})"
                    row.status = "DIFFERENT" if row.status == "MISMATCH" else row.status
            rows += more
    return rows


def classifier_rows(method: str, label: str, dt: torch.dtype, f: dict, ref: dict | None) -> list[Row]:
    """The latent classifier after each cycle: weights, ZSL predictions, GZSL unseen-expert probabilities; a
    variant not expected to agree reports its agreement and the two ZSL accuracies instead."""
    agree = np.concatenate(f["agree"])
    if not f["same"]:
        off_acc = 100 * np.mean([a for a, _ in f["accs"]])
        our_acc = 100 * np.mean([b for _, b in f["accs"]])
        return [Row(method, f"{label}: ZSL classifier weights", dtype_name(dt), f"max |Δ| {fmt(f['d_w'].diff)}",
                    "DIFFERENT"),
                agreement_row(method, f"{label}: ZSL test predictions", dt, agree, np.ones_like(agree), False),
                Row(method, f"{label}: ZSL accuracy, code vs smie (mean over cycles)", dtype_name(dt),
                    f"{off_acc:.1f} vs {our_acc:.1f} %", "DIFFERENT" if off_acc != our_acc else "SAME")]
    off, ref_off = f["official"], ref["official"] if ref is not None else None
    dr = (lambda key: max(drift(a, b) for a, b in zip(off[key], ref_off[key]))) if ref_off else (lambda key: None)
    flips = int(sum((a != b).sum() for a, b in zip(off["preds"], ref_off["preds"]))) if ref_off else None
    sep = ": " if label and not label.endswith(": ") else ""
    return [same_row(method, f"{label}{sep}ZSL classifier after each cycle (300 steps, same init and noise)", dt,
                     f["d_w"], dr("weights")),
            agreement_row(method, f"{label}{sep}ZSL test predictions after each cycle", dt, agree,
                          np.ones_like(agree), expect_same=True, drift_flips=flips),
            same_row(method, f"{label}{sep}GZSL unseen-expert softmax on the test rows", dt, f["d_p"], dr("probs"))]
