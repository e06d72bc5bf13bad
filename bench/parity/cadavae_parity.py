"""CADA-VAE: smie's two CADA-VAEs against their official codes.

1. The paper's code (edgarschnfld/CADA-VAE-PyTorch ``model/vaemodel.py``) against smie's ``cadavae``. The code's own
   ``DATA_LOADER`` reads a synthetic AWA1-shaped data set written in its ``.mat`` format (2048-d features, 85-d
   attributes, 40 seen and 10 unseen classes); ``Model`` is built from ``single_experiment.py``'s hyperparameters
   (read from the file, not run) and its ``trainstep`` is driven with the bench's batches and epochs while smie
   steps in lockstep. Without noise (the code's ``reparameterize_with_noise = False``, zero draws for smie) the
   two must agree; with noise they differ by design: the code samples ``mu + exp(logvar) * eps``, smie
   ``mu + exp(logvar / 2) * eps``.
2. The SynSE repository's CADA-VAE (skelemoa/synse-zsl ``cada_vae/cada_vae_training.py``) against smie's ``msf``
   on label semantics, which ``cadavae.py``'s docstring says trains the same: in lockstep on the shared terms, and
   a scan of the code's schedule, whose text-KL weight ``k_fact2 = k_fact * [step > 1400]`` (line 173) is not
   smie's ``[cycle > 1] * max(0.1 (step - 1400) / 3000, 0)``.
"""
from __future__ import annotations

import ast
import tempfile
from pathlib import Path

import numpy as np
import torch

import cycles as C
import smie_side as S
from cycles import CYCLE
from standins import Draws, OfficialRuntime, hook_step, official_context, official_import, quiet, \
    torchvision_standin
from table import MaxDiff, Row, dtype_name, fmt, same_row

METHOD, SYNSE_CADA = "CADA-VAE", "CADA-VAE (SynSE repo)"
FEAT, ATT, CLASSES, NOVEL, BATCH = 2048, 85, 50, 10, 50
CODE_WARMUP = {"beta": "beta", "cross": "cross_reconstruction_factor", "distance": "distance_factor"}  # vaemodel:163-173
LAYERS = {"feature_encoder.0": "hidden", "_mu": "mu", "_logvar": "logvar", "feature_decoder.0": "hidden",
          "feature_decoder.2": "out"}


# --- the paper's code -------------------------------------------------------------------------------------------

def hyperparameters(repo: Path) -> dict:
    """``single_experiment.py``'s ``hyperparameters`` for AWA1, GZSL, 0 shots (its literals, read with ``ast``)."""
    tree = ast.parse((Path(repo) / "model" / "single_experiment.py").read_text())
    hp, steps, samples = None, None, None
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign):
            continue
        target = node.targets[0]
        if isinstance(target, ast.Name) and target.id == "hyperparameters":
            hp = ast.literal_eval(node.value)
        elif isinstance(target, ast.Name) and target.id == "cls_train_steps":
            steps = ast.literal_eval(node.value)
        elif (isinstance(target, ast.Subscript) and ast.unparse(target) == "hyperparameters['samples_per_class']"
              and samples is None):
            samples = ast.literal_eval(node.value)  # the first: generalized, 0 shots
    hp.update(dataset="AWA1", num_shots=0, generalized=True, device="cpu", samples_per_class=samples)
    hp["cls_train_steps"] = next(x["cls_train_steps"] for x in steps
                                 if (x["dataset"], x["num_shots"], x["generalized"]) == ("AWA1", 0, True))
    return hp


def write_mat(work: Path, seed: int, per_class: int) -> None:
    """A synthetic AWA1 in the loader's format: ``data/AWA1/res101.mat`` and ``att_splits.mat`` (1-based)."""
    from scipy.io import savemat

    g = np.random.default_rng(seed)
    att = np.abs(g.normal(size=(CLASSES, ATT)))
    centre = np.abs(att @ g.normal(size=(ATT, FEAT)) / np.sqrt(ATT))
    seen, novel = np.arange(CLASSES - NOVEL), np.arange(CLASSES - NOVEL, CLASSES)
    labels = np.concatenate([np.repeat(seen, per_class), np.repeat(seen, 2), np.repeat(novel, 4)])
    feats = np.maximum(centre[labels] + g.normal(size=(len(labels), FEAT)), 0)
    n_train, n_seen_test = len(seen) * per_class, len(seen) * 2
    loc = np.arange(1, len(labels) + 1)
    out = work / "data" / "AWA1"
    out.mkdir(parents=True)
    savemat(out / "res101.mat", {"features": feats.T, "labels": (labels + 1)[:, None]})
    savemat(out / "att_splits.mat", {"att": att.T, "trainval_loc": loc[:n_train], "train_loc": loc[:n_train],
                                     "val_loc": loc[n_train + n_seen_test:], "test_seen_loc":
                                     loc[n_train:n_train + n_seen_test], "test_unseen_loc": loc[n_train + n_seen_test:]})


def official_tensors(model, grad: bool = False) -> dict[str, torch.Tensor]:
    out = {}
    for source, part in (("resnet_features", "v"), ("attributes", "t")):
        for kind, modules in (("enc", model.encoder), ("dec", model.decoder)):
            for name, prm in modules[source].named_parameters():
                layer, _, p = name.rpartition(".")
                value = prm.grad if grad else prm
                out[f"{kind}_{part}.{LAYERS[layer]}.{p}"] = None if value is None else value.detach()
    return out


def paper_run(repo: Path, seed: int, dtype: torch.dtype, epochs: int, noise: bool) -> dict:
    """``epochs`` epochs of the code's ``trainstep`` in lockstep with smie's ``cadavae`` (the code's epoch:
    ``ceil(ntrain / 50)`` batches of at most 50; one sample per seen class here, so one batch of 40); ``noise``
    False: the code's noise switched off, smie fed zero draws."""
    repo = Path(repo) / "model"
    runtime = OfficialRuntime(dtype, record_locals=tuple(CODE_WARMUP.values()))
    hp = hyperparameters(repo.parent)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_mat(work, seed, per_class=1)
        vaemodel = official_import(repo, "vaemodel", cwd=work, runtime=runtime)
        with official_context(repo, cwd=work), runtime, quiet():
            torch.manual_seed(seed)
            code = vaemodel.Model(hp).to("cpu")
    for modules in (code.encoder, code.decoder):
        for m in modules.values():
            m.to(dtype)
    data = code.dataset
    x, labels = data.data["train_seen"]["resnet_features"].to(dtype), data.data["train_seen"]["labels"]
    seen = data.seenclasses.tolist()
    rows_of = torch.as_tensor([seen.index(int(c)) for c in labels])
    class_sem = data.aux_data[data.seenclasses].to(dtype)
    model = S.make("cadavae", FEAT, ATT, dtype)
    S.load_neutral(model, official_tensors(code))
    opt = S.optimizer(model, S.defaults("cadavae")["lr"])
    steps_per_epoch = -(-data.ntrain // BATCH)
    g = np.random.default_rng(seed)
    d_loss, d_grad, d_param, d_weight, first_loss = MaxDiff(), MaxDiff(), MaxDiff(), MaxDiff(), []
    state = dict(idx=None, step=0)
    draws = Draws(zeros=True) if not noise else Draws(seed)
    runtime.draws = Draws(seed)

    def before():
        frame, step = runtime.frames[-1], state["step"]
        ours = S.cadavae_weights(model, step, steps_per_epoch)
        d_weight.update([frame[v] for v in CODE_WARMUP.values()], [ours[k] for k in CODE_WARMUP])
        with runtime.suspended():
            value = S.step(model, opt, x[state["idx"]], rows_of[state["idx"]], class_sem, draws=draws)
        d_loss.update(runtime.last_loss, value)
        first_loss.append(float(abs(runtime.last_loss - value)))
        d_grad.update_dicts(official_tensors(code, grad=True), S.grads(model))

    def after():
        with runtime.suspended():
            opt.step()
        d_param.update_dicts(official_tensors(code), S.params(model))
        state["step"] += 1

    hook_step(code.optimizer, before, after)
    code.reparameterize_with_noise = noise
    for epoch in range(epochs):
        code.current_epoch = epoch
        for _ in range(steps_per_epoch):
            state["idx"] = torch.as_tensor(g.permutation(data.ntrain)[:BATCH])
            idx = state["idx"]
            with runtime, quiet():
                code.trainstep(x[idx], data.aux_data[labels[idx]].to(dtype))
    return dict(d_loss=d_loss, d_grad=d_grad, d_param=d_param, d_weight=d_weight, first=first_loss[0],
                steps=state["step"], hp=hp, off_losses=list(runtime.losses), off_params=official_tensors(code))


def paper_rows(repo: Path, seed: int, dtypes, epochs: int) -> list[Row]:
    try:
        import scipy.io  # noqa: F401  (the code's DATA_LOADER reads .mat files with it)
    except ImportError:
        return [Row(METHOD, "CADA-VAE-PyTorch", "-", "scipy not installed", "SKIP")]
    rows, runs = [], {dt: paper_run(repo, seed, dt, epochs, noise=False) for dt in dtypes}
    ref = runs.get(torch.float64)
    for dt, r in runs.items():
        is32 = dt == torch.float32 and ref is not None
        loss_drift = C.drift(r["off_losses"], ref["off_losses"]) if is32 else None
        param_drift = max(C.drift(r["off_params"][k], ref["off_params"][k]) for k in r["off_params"]) if is32 else None
        span = f"{r['steps']} steps, {epochs} epochs"
        rows += [same_row(METHOD, f"no noise: loss per step ({span})", dt, r["d_loss"], loss_drift),
                 same_row(METHOD, "no noise: gradients per step", dt, r["d_grad"]),
                 same_row(METHOD, "no noise: parameters after each step", dt, r["d_param"], param_drift),
                 Row(METHOD, "warm-up factors beta, cross, distance per epoch", dtype_name(dt),
                     f"max |Δ| {fmt(r['d_weight'].diff)} over {r['steps']} steps",
                     "SAME" if r["d_weight"].diff <= (1e-12 if dt == torch.float64 else 1e-6) else "MISMATCH")]
    noisy = paper_run(repo, seed, torch.float64, min(epochs, 5), noise=True)
    rows.append(Row(METHOD, "with noise, same eps: code mu + exp(logvar) eps vs smie mu + exp(logvar/2) eps",
                    "f64", f"loss differs by {fmt(noisy['first'])} at step 1, {fmt(noisy['d_loss'].diff)} within "
                           f"{noisy['steps']} steps", "DIFFERENT"))
    hp = noisy["hp"]
    ours = S.defaults("cadavae")
    code = dict(latent=hp["latent_size"], lr=hp["lr_gen_model"], cls_lr=hp["lr_cls"], cls_batch=32,
                seen_per_class=hp["samples_per_class"]["AWA1"][0], unseen_per_class=hp["samples_per_class"]["AWA1"][2])
    mine = {k: ours[k] for k in code}
    rows.append(Row(METHOD, "settings: latent, lr, classifier lr/batch, latents per seen/unseen class", "-",
                    " ".join(f"{k}={v}" for k, v in mine.items()), "SAME" if mine == code else "MISMATCH"))
    rows.append(Row(METHOD, f"batch size: code {hp['batch_size']}, smie the run's", "-",
                    f"smie default {ours['batch_size']} (--batch-size {hp['batch_size']})", "DIFFERENT"))
    rows.append(Row(METHOD, "classifier epochs: code tuned per data set on validation (AWA1 GZSL)", "-",
                    f"code {hp['cls_train_steps']}, smie {ours['cls_epochs']} (--option cls_epochs=N)", "DIFFERENT"))
    return rows


# --- the SynSE repository's CADA-VAE -----------------------------------------------------------------------------

SYNSE_WEIGHTS = {"k_fact": "kl_visual", "cr_fact": "cross", "k_fact2": "kl_text", "lw_fact": None}  # lines 171-175


def synse_layout(work: Path, data: dict, dtype) -> Path:
    import synse_parity as SP

    feats = SP.layout(work, data, dtype)
    labels = data["verb"] + data["noun"]  # one label text per class
    np.save(work / "resources" / f"ntu{SP.NTU}_w2v_labels.npy", labels.astype(dtype))
    return feats


def synse_load(repo: Path, work: Path, data: dict, dtype: torch.dtype, cycles: int, record=()):
    import synse_parity as SP

    feats = synse_layout(work, data, np.float64 if dtype == torch.float64 else np.float32)
    runtime = OfficialRuntime(dtype, record_locals=("epoch", *SYNSE_WEIGHTS, *record))
    argv = ["--ss", str(SP.SS), "--st", "r", "--dataset", str(feats), "--wdir", str(work / "w"), "--le", "w2v",
            "--ve", "shift", "--phase", "train", "--gpu", "0", "--ntu", str(SP.NTU), "--num_cycles", str(cycles),
            "--num_epoch_per_cycle", str(CYCLE), "--latent_size", str(SP.LATENT), "--mode", "train"]
    mod = official_import(Path(repo) / "cada_vae", "cada_vae_training", cwd=work / "cwd", argv=argv,
                          modules=torchvision_standin(), runtime=runtime)
    parts = {"enc_v": mod.sequence_encoder, "dec_v": mod.sequence_decoder, "enc_t": mod.text_encoder,
             "dec_t": mod.text_decoder}
    for part in parts.values():
        part.to(dtype)
    return mod, runtime, parts


def synse_run(repo: Path, data: dict, dtype: torch.dtype, steps: int, seed: int) -> dict:
    import synse_parity as SP

    t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        mod, runtime, parts = synse_load(repo, Path(tmp), data, dtype, -(-steps // CYCLE))
    labels_emb = mod.labels_emb.to(dtype)
    model = S.make("msf", SP.D, labels_emb.shape[1], dtype, latent=SP.LATENT, cycle_length=CYCLE,
                   text_kl="synse-cadavae")
    S.load_neutral(model, C.official_tensors(parts))
    seen = data["seen"]
    row = {c: i for i, c in enumerate(seen)}
    setup = C.Setup(mod, runtime, parts, model, t(data["train"]), data["y_train"],
                    torch.as_tensor([row[c] for c in data["y_train"]]), labels_emb[seen], labels_emb[SP.UNSEEN],
                    SP.UNSEEN, t(data["ztest"]), data["y_z"], t(data["gtest"]), data["y_g"], SYNSE_WEIGHTS,
                    S.defaults("msf")["lr"])

    def variants(g):
        eps = torch.randn(SP.SS * 500, 1, generator=g)  # cada_vae_training.py:260-266, one draw
        return [C.Variant("", [eps], [eps.view(500, SP.SS)[:, k:k + 1] for k in range(SP.SS)])]

    return C.lockstep_run(setup, steps, seed, variants)


def synse_scan(repo: Path, data: dict, cycles: int, text_kl: str) -> dict:
    """The code's schedule over ``cycles`` cycles against smie's ``msf`` schedule with option ``text_kl``."""
    with tempfile.TemporaryDirectory() as tmp:
        mod, runtime, parts = synse_load(repo, Path(tmp), data, torch.float32, cycles)
    x = torch.as_tensor(data["train"], dtype=torch.float32)
    return C.scan_schedule(mod, runtime, x, data["y_train"], cycles, SYNSE_WEIGHTS, CYCLE,
                           smie=lambda step: S.cycle_weights(step, CYCLE, text_kl))


def synse_rows(repo: Path, seed: int, steps: int, dtypes, scan_cycles: int) -> list[Row]:
    import synse_parity as SP

    data = SP.synthetic(seed)
    runs = {dt: synse_run(repo, data, dt, steps, seed) for dt in dtypes}
    rows = C.lockstep_rows(SYNSE_CADA, "smie msf (label, text_kl=synse-cadavae): ", runs, expect_weights=False)
    if scan_cycles:
        for text_kl, expected in (("synse-cadavae", "SAME"), ("msf", "DIFFERENT")):
            scan = synse_scan(repo, data, scan_cycles, text_kl)
            d = scan["diffs"]
            others = {k: v for k, v in d.items() if k != "k_fact2" and v}
            status = ("SAME" if not d["k_fact2"] else "MISMATCH") if expected == "SAME" else \
                ("DIFFERENT" if d["k_fact2"] else "SAME")
            rows.append(Row(SYNSE_CADA, f"text-KL weight k_fact2 vs smie msf kl_text (text_kl={text_kl}), "
                            f"{scan_cycles} cycles", "-",
                            f"differs on {d['k_fact2']}/{scan['steps']} steps (first at step "
                            f"{scan['first'].get('k_fact2', '-')})" if d["k_fact2"] else
                            f"identical on {scan['steps']} steps", status))
            rows.append(Row(SYNSE_CADA, f"other weights (k_fact, cr_fact, lw_fact = 0) vs smie msf "
                            f"(text_kl={text_kl})", "-",
                            f"identical on {scan['steps']} steps" if not others else f"differ: {others}",
                            "SAME" if not others else "MISMATCH"))
    return rows


def describe(epochs: int, steps: int, scan_cycles: int) -> str:
    return (f"CADA-VAE: paper code on a synthetic AWA1 (.mat, 2048-d features, 85-d attributes, 40 + 10 classes), "
            f"{epochs} epochs of one batch of 40; SynSE-repo CADA-VAE: {steps} float64 lockstep steps, schedule "
            f"scan of {scan_cycles} cycles")
