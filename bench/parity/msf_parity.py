"""MSF: the official code (EHZ9NIWI7/MSF-GZSSAR ``train.py``, ``gating_train.py``, ``gating_eval.py``) against smie's
``msf`` method and MSF gate.

``train.py`` is imported as ``run60.sh`` calls it (NTU-60, 55/5 split from its own ``label_splits``, text mode
``lb_ad_md``, cycles of 1700 steps, latent 100) on a synthetic feature directory in its own format, and trained
cycle by cycle in lockstep with smie (``cycles.Lockstep``); after each cycle both train the ZSL classifier from the
same initial classifier and noise and are compared on the test features. The gate scripts run unchanged on
synthetic expert outputs in their file layout; smie's logistic regression is fitted on the rows the code fitted
and both decide on the code's test rows; smie's own seen expert (softmax over the seen columns) and hold-out draw
are then compared with the code's (softmax over all 60 columns, ``np.random``). With MSF's released CLIP text
features (``--msf-text-feats``) the fusion of the three kinds is compared: the code concatenates the raw kinds and
L2-normalises once, as smie's ``combine="concat-raw"`` does; smie's default ``concat`` normalises each kind first.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import cycles as C
from cycles import CYCLE
import smie_side as S
from standins import (Draws, OfficialRuntime, logistic_regression_standin, official_import, quiet, run_official_script,
                      torchvision_standin)
from table import FLOOR32, MaxDiff, Row, agreement_row, fmt, same_row

METHOD, GATE = "MSF", "MSF gate"
NTU, SS, LATENT, D, KINDS = 60, 5, 100, 256, ("lb", "ad", "md")
WEIGHTS = {"k_fact": "kl_visual", "cr_fact": "cross", "k_fact2": "kl_text"}  # train.py:155-157


def splits(repo: Path) -> tuple[np.ndarray, np.ndarray]:
    """The code's own 55/5 split files (``label_splits/ru5.npy``, ``rs55.npy``): unseen (sorted), seen."""
    return np.sort(np.load(repo / "label_splits" / f"ru{SS}.npy")), np.load(repo / "label_splits" / f"rs{NTU - SS}.npy")


def synthetic(seed: int, seen: np.ndarray, unseen: np.ndarray, text_dim: int = 64, per_class: int = 20,
              per_test: int = 40) -> dict:
    """Three raw text kinds (60, text_dim) (norms about 10, as CLIP's 512-d ones), non-negative visual features
    (N, 256) near a projection of the class's fused text; training samples of the seen classes, ZSL test samples
    of the unseen ones, GZSL test samples of both. (The code takes any text width; 64 keeps the bench fast.)"""
    g = np.random.default_rng(seed)
    texts = {k: 10 * g.normal(size=(NTU, text_dim)) / np.sqrt(text_dim) + 0.3 * g.normal(size=(1, text_dim))
             for k in KINDS}
    fused = np.concatenate([texts[k] for k in KINDS], 1)
    fused /= np.linalg.norm(fused, axis=1, keepdims=True)
    centre = 4 * fused @ (g.normal(size=(fused.shape[1], D)) / np.sqrt(fused.shape[1]))

    def draw(classes, n):
        y = np.repeat(classes, n)
        return np.maximum(centre[y] + g.normal(size=(len(y), D)), 0), y

    train, y_train = draw(seen, per_class)
    ztest, y_z = draw(unseen, per_test)
    gseen, y_gs = draw(seen, 4)
    gtest, y_g = np.concatenate([gseen, ztest]), np.concatenate([y_gs, y_z])
    return dict(texts=texts, train=train, y_train=y_train, ztest=ztest, y_z=y_z, gtest=gtest, y_g=y_g)


def layout(work: Path, repo: Path, data: dict, dtype: np.dtype, texts: dict, le: str) -> tuple[Path, Path]:
    """The script's working directory (``label_splits`` of the checkout, ``text_feats/<le>/<kind>_60.npy``) and
    feature directory (``train.npy``, ``ztest.npy``, ``gtest.npy`` and labels)."""
    cwd, feats = work / "cwd", work / "feats"
    (cwd / "text_feats" / le).mkdir(parents=True)
    feats.mkdir()
    (cwd / "label_splits").symlink_to(repo / "label_splits")
    for k in KINDS:
        np.save(cwd / "text_feats" / le / f"{k}_{NTU}.npy", texts[k].astype(dtype))
    for name, x, y, ylab in (("train", data["train"], data["y_train"], "train_label"),
                             ("ztest", data["ztest"], data["y_z"], "z_label"),
                             ("gtest", data["gtest"], data["y_g"], "g_label")):
        np.save(feats / f"{name}.npy", x.astype(dtype))
        np.save(feats / f"{ylab}.npy", y)
    return cwd, feats


def load(repo: Path, work: Path, data: dict, texts: dict, dtype: torch.dtype, cycles: int, le: str = "synthetic"):
    """``train.py`` imported with ``run60.sh``'s arguments on the bench's files, on the CPU in ``dtype``."""
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    cwd, feats = layout(work, repo, data, np_dtype, texts, le)
    runtime = OfficialRuntime(dtype, record_locals=("epoch", *WEIGHTS))
    argv = ["--ss", str(SS), "--st", "r", "--dataset", str(feats), "--wdir", str(work / "w"), "--le", le, "--ve",
            "shift", "--phase", "train", "--gpu", "0", "--ntu", str(NTU), "--num_cycles", str(cycles),
            "--num_epoch_per_cycle", str(CYCLE), "--latent_size", str(LATENT), "--mode", "train", "--tm",
            "_".join(KINDS)]
    mod = official_import(repo, "train", cwd=cwd, argv=argv, modules=torchvision_standin(), runtime=runtime)
    parts = {"enc_v": mod.sequence_encoder, "dec_v": mod.sequence_decoder, "enc_t": mod.text_encoder,
             "dec_t": mod.text_decoder}
    for part in parts.values():
        part.to(dtype)
    return mod, runtime, parts


def one_run(repo: Path, data: dict, texts: dict, dtype: torch.dtype, steps: int, seed: int, le: str) -> dict:
    """``steps`` steps of lockstep training (whole cycles of 1700, the last one cut short if ``steps`` ends
    inside it) and, after each cycle, the classifier comparison (one noise draw of 2500 latents, as the code)."""
    unseen, seen = splits(repo)
    t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        mod, runtime, parts = load(repo, Path(tmp), data, texts, dtype, -(-steps // CYCLE), le)
    text_emb = mod.text_emb.to(dtype)  # the code's fused, normalised class texts (60, E)
    model = S.make("msf", D, text_emb.shape[1], dtype, latent=LATENT, cycle_length=CYCLE)
    S.load_neutral(model, C.official_tensors(parts))
    row = {c: i for i, c in enumerate(seen)}
    setup = C.Setup(mod, runtime, parts, model, t(data["train"]), data["y_train"],
                    torch.as_tensor([row[c] for c in data["y_train"]]), text_emb[seen], text_emb[unseen], unseen,
                    t(data["ztest"]), data["y_z"], t(data["gtest"]), data["y_g"], WEIGHTS, S.defaults("msf")["lr"])

    def variants(g):
        eps = torch.randn(SS * 500, 1, generator=g)  # train.py:232-237: rows c0..c4, c0..c4, ...; one draw
        return [C.Variant("", [eps], [eps.view(500, SS)[:, k:k + 1] for k in range(SS)])]

    return C.lockstep_run(setup, steps, seed, variants)


def loop_rows(repo: Path, seed: int, steps: int) -> list[Row]:
    """smie's own loop (``train_method``: one loop epoch of ``steps`` optimiser steps on batches of 64 from
    successive permutations, constant lr) against ``train_one_cycle`` fed the batches and noise that loop drew,
    in float64: the loss over the steps and the parameters after them."""
    unseen, seen = splits(repo)
    data = synthetic(seed, seen, unseen)
    dtype = torch.float64
    with tempfile.TemporaryDirectory() as tmp:
        mod, runtime, parts = load(repo, Path(tmp), data, data["texts"], dtype, 1, "synthetic")
    text_emb = mod.text_emb.to(dtype)
    model = S.make("msf", D, text_emb.shape[1], dtype, latent=LATENT, cycle_length=CYCLE)
    S.load_neutral(model, C.official_tensors(parts))
    row = {c: i for i, c in enumerate(seen)}
    rows = torch.as_tensor([row[c] for c in data["y_train"]])
    ours = S.defaults("msf")
    x = torch.as_tensor(data["train"], dtype=dtype)
    losses, fed = S.train_loop(model, x, None, rows, text_emb[seen], 1, ours["batch_size"], ours["lr"], 0, seed,
                               ours["schedule"], steps, draws=Draws(seed))
    mod.train_loader = C.StepLoader(x, data["y_train"], [idx for idx, _ in fed])
    runtime.draws = Draws(seed)
    C.run_cycles(mod, runtime, steps, CYCLE, lambda c: None)
    d_loss, d_param = MaxDiff(), MaxDiff()
    d_loss.update(np.mean(runtime.losses), losses[0])
    d_param.update_dicts(C.official_tensors(parts), S.params(model))
    return [same_row(METHOD, f"smie's loop (train_method, {steps} steps) vs code fed its batches: mean loss", dtype,
                     d_loss),
            same_row(METHOD, f"smie's loop vs code: parameters after {steps} steps", dtype, d_param)]


def defaults_rows() -> list[Row]:
    """smie's defaults against ``run60.sh``/``run120.sh`` (10 cycles of 1700 / 1900 steps, latent 100 / 200) and
    ``train.py`` (Adam lr 1e-4 constant, batches of 64)."""
    rows = []
    for classes, cycle, latent in ((60, 1700, 100), (120, 1900, 200)):
        ours = S.defaults("msf", classes)
        code = dict(lr=1e-4, batch_size=64, schedule="constant", cycles=10, cycle_length=cycle, latent=latent)
        mine = {k: ours[k] for k in code}
        rows.append(Row(METHOD, f"defaults on a {classes}-class table (lr, batch, schedule, cycles, length, latent)",
                        "-", " ".join(f"{k}={v}" for k, v in mine.items()), "SAME" if mine == code else "MISMATCH"))
    return rows


def fusion_rows(text_feats: Path) -> list[Row]:
    """The code's fusion of MSF's released CLIP features (raw kinds concatenated, one L2 norm) vs smie's."""
    src = _clip_dir(text_feats)
    per_kind = [np.load(src / f"{k}_{NTU}.npy").astype(np.float64) for k in KINDS]
    code = np.concatenate(per_kind, 1)
    code /= np.linalg.norm(code, axis=1, keepdims=True)
    ours = S.fused_semantics(per_kind)
    cos = (code * ours).sum(1) / np.linalg.norm(ours, axis=1)
    diff, raw = MaxDiff(), MaxDiff()
    diff.update(code, ours)
    raw.update(code, S.fused_semantics(per_kind, "concat-raw"))
    return [Row(METHOD, "fusion of the released CLIP lb+ad+md: smie combine=concat (per-kind norm) vs code's one "
                "norm", "f64", f"cosine min {cos.min():.4f}, max |Δ| {fmt(diff.diff)}", "DIFFERENT"),
            Row(METHOD, "fusion of the released CLIP lb+ad+md: smie combine=concat-raw vs code (smie's cache "
                "precision)", "f32", f"max |Δ| {fmt(raw.diff)}", "SAME" if raw.diff <= FLOOR32 else "MISMATCH")]


def _clip_dir(text_feats: Path) -> Path:
    for sub in ("ViT-B-32", "ViT-B/32"):
        if (Path(text_feats) / sub / f"lb_{NTU}.npy").exists():
            return Path(text_feats) / sub
    raise FileNotFoundError(f"no ViT-B-32/lb_{NTU}.npy under {text_feats}")


def clip_texts(text_feats: Path | None) -> dict | None:
    if text_feats is None:
        return None
    try:
        src = _clip_dir(text_feats)
    except FileNotFoundError:
        return None
    return {k: np.load(src / f"{k}_{NTU}.npy").astype(np.float64) for k in KINDS}


def run(repo: Path, steps: int, seed: int, dtypes: tuple[torch.dtype, ...], text_feats: Path | None,
        clip_steps: int) -> list[Row]:
    """``steps`` lockstep steps per precision on synthetic texts; with the released CLIP features, the fusion
    rows and ``clip_steps`` float64 steps on the code's fused CLIP table."""
    unseen, seen = splits(repo)
    data = synthetic(seed, seen, unseen)
    runs = {dt: one_run(repo, data, data["texts"], dt, steps, seed, "synthetic") for dt in dtypes}
    rows = defaults_rows() + C.lockstep_rows(METHOD, "", runs, steps)
    clip = clip_texts(text_feats)
    if clip is None:
        rows.append(Row(METHOD, "released CLIP text features", "-", f"absent ({text_feats})", "SKIP"))
    else:
        rows += fusion_rows(text_feats)
        if clip_steps:
            runs = {torch.float64: one_run(repo, data, clip, torch.float64, clip_steps, seed, "ViT-B-32")}
            rows += C.lockstep_rows(METHOD, "CLIP texts: ", runs, clip_steps)
    return rows


# --- the gate --------------------------------------------------------------------------------------------------

def gate_data(seed: int, seen: np.ndarray, unseen: np.ndarray) -> dict:
    """Synthetic expert outputs in the gate scripts' files: the unseen expert's softmax (N, 5) and the backbone's
    logits (N, 60) on validation-unseen, validation-seen and GZSL test rows."""
    g = np.random.default_rng(seed)

    def experts(labels, is_unseen):
        n = len(labels)
        zs = g.normal(size=(n, SS)) + 2.5 * is_unseen[:, None] * (np.arange(SS)[None] == (labels % SS)[:, None])
        logits = 1.5 * g.normal(size=(n, NTU))
        logits[np.arange(n), labels] += 4.0 * (~is_unseen) + 1.0 * is_unseen
        zs = np.exp(zs - zs.max(1, keepdims=True))
        return zs / zs.sum(1, keepdims=True), logits

    val_u, val_s = g.choice(seen, 300), g.choice(seen, 400)  # validation phase: some seen classes pose as unseen
    out = {}
    out["unseen_zs"], out["ztest_out"] = experts(val_u, np.ones(300, bool))
    out["seen_zs"], out["val_out"] = experts(val_s, np.zeros(400, bool))
    labels = np.concatenate([g.choice(seen, 600), np.repeat(unseen, 80)])
    out["gzsl_zs"], out["gtest_out"] = experts(labels, np.isin(labels, unseen))
    out["g_label"] = labels
    return out


def gate_rows(repo: Path, seed: int) -> list[Row]:
    """``gating_train.py`` (``--th 50 --t 2``, as ``run60.sh``) then ``gating_eval.py`` on synthetic experts;
    smie's gate on the same rows, then with its own seen expert and hold-out draw."""
    try:
        standin = logistic_regression_standin()
    except ImportError:
        return [Row(GATE, "gating_train.py / gating_eval.py", "-", "scikit-learn not installed", "SKIP")]
    unseen, seen = splits(repo)
    data = gate_data(seed, seen, unseen)
    le, tm = "synthetic", "_".join(KINDS)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "label_splits").symlink_to(repo / "label_splits")
        val_ds, test_ds = work / "val_feats", work / "feats"
        val_w, test_w = work / "w_val" / le / tm, work / "w" / le / tm
        for d in (val_ds, test_ds, val_w, test_w):
            d.mkdir(parents=True)
        np.save(val_w / f"MSF_{SS}_r_unseen_zs.npy", data["unseen_zs"])
        np.save(val_w / f"MSF_{SS}_r_seen_zs.npy", data["seen_zs"])
        np.save(val_ds / "ztest_out.npy", data["ztest_out"])
        np.save(val_ds / "val_out.npy", data["val_out"])
        np.save(test_w / f"MSF_{SS}_r_gzsl_zs.npy", data["gzsl_zs"])
        np.save(test_ds / "gtest_out.npy", data["gtest_out"])
        np.save(test_ds / "g_label.npy", data["g_label"])
        common = ["--ss", str(SS), "--st", "r", "--le", le, "--ve", "shift", "--ntu", str(NTU), "--tm", tm]
        trained = run_official_script(repo, "gating_train.py", cwd=work, modules=standin, argv=common + [
            "--phase", "val", "--dataset", str(val_ds), "--wdir", str(work / "w_val"), "--th", "50", "--t", "2"])
        evaluated = run_official_script(repo, "gating_eval.py", cwd=work, modules=standin, argv=common + [
            "--phase", "train", "--dataset", str(test_ds), "--wdir", str(work / "w"), "--temp", "2", "--thresh",
            "0.5"])
    x_fit = trained["gating_train_x"][trained["train_inds"]]
    y_fit = np.asarray(trained["gating_train_y"])[trained["train_inds"]]
    coef, intercept = S.gate_fit(x_fit, y_fit)
    code_model = trained["best_model"]
    # the code's lbfgs stops at tol 1e-4; the same model refitted to tol 1e-10 shows the objectives are one
    tight = type(code_model)(random_state=0, C=1, solver="lbfgs", multi_class="multinomial", max_iter=5000,
                             tol=1e-10).fit(x_fit, y_fit)
    rows = []
    d_fit, d_tight = MaxDiff(), MaxDiff()
    d_fit.update(code_model.predict_proba(x_fit)[:, 1], S.gate_proba(x_fit, coef, intercept))
    d_tight.update(tight.predict_proba(x_fit)[:, 1], S.gate_proba(x_fit, coef, intercept))
    rows.append(Row(GATE, "logistic regression (C = 1, multinomial) on the code's fit rows: P(seen) there", "f64",
                    f"max |Δ| {fmt(d_fit.diff)} (code's lbfgs tol 1e-4), {fmt(d_tight.diff)} refitted to tol 1e-10",
                    "SAME" if d_tight.diff < 1e-6 else "MISMATCH"))
    x_test = evaluated["gating_test_x"]
    ours_x = S.gate_features(data["gzsl_zs"], S.softmax(data["gtest_out"], 2.0), SS)
    d_x = MaxDiff()
    d_x.update(x_test, ours_x)
    rows.append(same_row(GATE, "gate features (top-5 of both experts, T = 2) on the code's test rows", torch.float64,
                         d_x))
    p_code, p_ours = evaluated["prob_gate"][:, 1], S.gate_proba(x_test, coef, intercept)
    d_p, d_pt = MaxDiff(), MaxDiff()
    d_p.update(p_code, p_ours)
    d_pt.update(tight.predict_proba(x_test)[:, 1], p_ours)
    rows.append(Row(GATE, "P(seen) on the code's test rows", "f64",
                    f"max |Δ| {fmt(d_p.diff)} (code's model), {fmt(d_pt.diff)} (refitted to tol 1e-10)",
                    "SAME" if d_pt.diff < 1e-6 else "MISMATCH"))
    rows.append(agreement_row(GATE, "seen/unseen decisions (P(seen) > 0.5) on the code's test rows", torch.float64,
                              evaluated["pred_test"], p_ours > 0.5, expect_same=True))
    # smie's own 4/5 draw (default_rng) on the code's expert outputs, against the code's (np.random, seed 5)
    code_ps = [S.softmax(data[k], 2.0) for k in ("ztest_out", "val_out")]
    gate = S.fit_gate((data["unseen_zs"], code_ps[0]), (data["seen_zs"], code_ps[1]), SS, 2.0, seed)
    rows.append(agreement_row(GATE, "hold-out fifth drawn by smie (default_rng) vs the code (np.random): "
                              "decisions", torch.float64, evaluated["pred_test"],
                              S.gate_proba(x_test, gate["coef"], gate["intercept"]) > 0.5, expect_same=False))
    # smie end to end: its seen expert (softmax over the seen columns) and its own 4/5 draw
    seen_cols, unseen_cols = list(seen), list(unseen)
    ps_fit = [S.seen_expert(data[k], seen_cols, 2.0) for k in ("ztest_out", "val_out")]
    pu_fit = [data["unseen_zs"], data["seen_zs"]]
    x_ours = [S.gate_features(pu, ps, SS) for pu, ps in zip(pu_fit, ps_fit)]
    held = [trained["val_unseen_inds"], trained["val_seen_inds"]]
    keep = [np.setdiff1d(np.arange(len(x)), h) for x, h in zip(x_ours, held)]
    x2 = np.concatenate([x_ours[0][keep[0]], x_ours[1][keep[1]]])
    y2 = np.r_[np.zeros(len(keep[0])), np.ones(len(keep[1]))]
    coef2, icpt2 = S.gate_fit(x2, y2)
    ps_test = S.seen_expert(data["gtest_out"], seen_cols, 2.0)
    pred = S.gate_predict(data["gzsl_zs"], ps_test, unseen_cols, seen_cols, coef2, icpt2, SS)
    rows.append(agreement_row(GATE, "final predictions: smie's seen expert (seen columns) vs code's (all 60)",
                              torch.float64, np.asarray(evaluated["final_preds"]), pred, expect_same=False))
    return rows


def describe(cycles: int) -> str:
    return (f"MSF: NTU-60 55/5 (the code's label_splits), synthetic 256-d features, 3 x 64-d synthetic text kinds, "
            f"{cycles} cycle(s) of {CYCLE} steps, batches of 64")
