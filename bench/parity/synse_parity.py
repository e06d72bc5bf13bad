"""SynSE: the official code (skelemoa/synse-zsl ``synse/synse_training.py``, ``synse/synse.py``) against smie's
``synse`` method.

``synse_training.py`` is imported as its README trains the 55/5 split (``--num_epoch_per_cycle 1700
--latent_size 100``), with ``--le w2v`` (300-d part-of-speech embeddings, the smaller of its two choices) on a
synthetic ``resources`` directory in its own layout (``labels.npy``, noun/verb vocabularies and one-hot tables,
``label_splits``, ``ntu60_w2v_noun.npy``/``_verb.npy``), and trained in lockstep with smie (``cycles.Lockstep``).
After each cycle the ZSL classifier is compared twice against the code's two noise draws (verb half, then noun
half, ``synse_training.py:333-335``): smie's default ``noise='per-half'`` draws the same (issue #23), its option
``noise='shared'`` (one draw for both halves) cannot match. The defaults rows set smie's per-split latent size and
cycle length (``synse.split_defaults``) against the README's per-split commands.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

import cycles as C
import smie_side as S
from cycles import CYCLE
from standins import OfficialRuntime, official_import, torchvision_standin
from table import Row

METHOD = "SynSE"
NTU, SS, LATENT, D, E = 60, 5, 100, 256, 300
UNSEEN = np.array([10, 11, 19, 26, 56])  # the 55/5 split (SynSE's ru5.npy; SMIE config.py:532)
WEIGHTS = {"k_fact": "kl_visual", "cr_fact": "cross", "v_cr_fact": "cross", "n_cr_fact": "cross",
           "v_k_fact2": "kl_text", "n_k_fact2": "kl_text"}  # synse_training.py:206-211
README = {"55/5": (60, 1700, 100), "48/12": (60, 1900, 100), "110/10": (120, 1900, 200), "96/24": (120, 1900, 200)}


def synthetic(seed: int, per_class: int = 20, per_test: int = 40) -> dict:
    """Verb and noun embeddings (60, 300) and non-negative visual features (N, 256) near a projection of both."""
    g = np.random.default_rng(seed)
    seen = np.setdiff1d(np.arange(NTU), UNSEEN)
    verb, noun = g.normal(size=(NTU, E)), g.normal(size=(NTU, E))
    both = np.concatenate([verb / np.linalg.norm(verb, axis=1, keepdims=True),
                           noun / np.linalg.norm(noun, axis=1, keepdims=True)], 1)
    centre = 3 * both @ (g.normal(size=(2 * E, D)) / np.sqrt(2 * E))

    def draw(classes, n):
        y = np.repeat(classes, n)
        return np.maximum(centre[y] + g.normal(size=(len(y), D)), 0), y

    train, y_train = draw(seen, per_class)
    ztest, y_z = draw(UNSEEN, per_test)
    gseen, y_gs = draw(seen, 4)
    return dict(seen=seen, verb=verb, noun=noun, train=train, y_train=y_train, ztest=ztest, y_z=y_z,
                gtest=np.concatenate([gseen, ztest]), y_g=np.concatenate([y_gs, y_z]))


def layout(work: Path, data: dict, dtype) -> Path:
    """``resources`` beside the working directory (the script reads ``../resources``) and the feature directory."""
    res, feats = work / "resources", work / "feats"
    (res / "label_splits").mkdir(parents=True)
    feats.mkdir()
    (work / "cwd").mkdir()
    np.save(res / "labels.npy", np.array([f"action {k}" for k in range(NTU)]))
    for pos in ("nouns", "verbs"):
        np.save(res / f"{pos}_vocab.npy", np.array([f"{pos} {k}" for k in range(NTU)]))
        np.save(res / f"{pos}_ohe.npy", np.eye(NTU))
    np.save(res / "label_splits" / f"ru{SS}.npy", UNSEEN)
    np.save(res / "label_splits" / f"rs{NTU - SS}.npy", data["seen"])
    np.save(res / f"ntu{NTU}_w2v_noun.npy", data["noun"].astype(dtype))
    np.save(res / f"ntu{NTU}_w2v_verb.npy", data["verb"].astype(dtype))
    for name, x, y, ylab in (("train", data["train"], data["y_train"], "train_label"),
                             ("ztest", data["ztest"], data["y_z"], "z_label"),
                             ("gtest", data["gtest"], data["y_g"], "g_label")):
        np.save(feats / f"{name}.npy", x.astype(dtype))
        np.save(feats / f"{ylab}.npy", y)
    return feats


def load(repo: Path, work: Path, data: dict, dtype: torch.dtype, cycles: int):
    feats = layout(work, data, np.float64 if dtype == torch.float64 else np.float32)
    runtime = OfficialRuntime(dtype, record_locals=("epoch", *WEIGHTS))
    argv = ["--ss", str(SS), "--st", "r", "--dataset", str(feats), "--wdir", str(work / "w"), "--le", "w2v", "--ve",
            "shift", "--phase", "train", "--gpu", "0", "--ntu", str(NTU), "--num_cycles", str(cycles),
            "--num_epoch_per_cycle", str(CYCLE), "--latent_size", str(LATENT), "--mode", "train"]
    mod = official_import(Path(repo) / "synse", "synse_training", cwd=work / "cwd", argv=argv,
                          modules=torchvision_standin(), runtime=runtime)
    parts = {"enc_s": mod.sequence_encoder, "dec_s": mod.sequence_decoder, "enc_verb": mod.v_text_encoder,
             "dec_verb": mod.v_text_decoder, "enc_noun": mod.n_text_encoder, "dec_noun": mod.n_text_decoder}
    for part in parts.values():
        part.to(dtype)
    return mod, runtime, parts


def one_run(repo: Path, data: dict, dtype: torch.dtype, steps: int, seed: int) -> dict:
    t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        mod, runtime, parts = load(repo, Path(tmp), data, dtype, -(-steps // CYCLE))
    class_sem = torch.cat([mod.verbs_emb, mod.nouns_emb], 1).to(dtype)  # smie's kinds (verb, noun), the code's norms
    model = S.make("synse", D, 2 * E, dtype, latent=LATENT, cycle_length=CYCLE)
    S.load_neutral(model, C.official_tensors(parts))
    seen = data["seen"]
    row = {c: i for i, c in enumerate(seen)}
    setup = C.Setup(mod, runtime, parts, model, t(data["train"]), data["y_train"],
                    torch.as_tensor([row[c] for c in data["y_train"]]), class_sem[seen], class_sem[UNSEEN], UNSEEN,
                    t(data["ztest"]), data["y_z"], t(data["gtest"]), data["y_g"], WEIGHTS, S.defaults("synse")["lr"])

    def variants(g):
        # synse_training.py:324-335: rows c0..c4, c0..c4, ...; verb latents drawn first, then noun latents
        e_verb, e_noun = torch.randn(SS * 500, 1, generator=g), torch.randn(SS * 500, 1, generator=g)
        per_class = lambda e: [e.view(500, SS)[:, k:k + 1] for k in range(SS)]  # noqa: E731
        # smie noise='per-half' (default) draws per class: its verb half, then its noun half
        halves = [d for k in range(SS) for d in (per_class(e_verb)[k], per_class(e_noun)[k])]
        shared = S.make("synse", D, 2 * E, dtype, latent=LATENT, cycle_length=CYCLE, noise="shared")
        shared.load_state_dict(model.state_dict())
        return [C.Variant("noise per half (smie noise='per-half', default)", [e_verb, e_noun], halves),
                C.Variant("smie noise='shared' (one draw) vs the code's two", [e_verb, e_noun], per_class(e_noun),
                          same=False, model=shared)]

    return C.lockstep_run(setup, steps, seed, variants)


def defaults_rows() -> list[Row]:
    """smie's latent size and cycle length against the README's command for each split."""
    rows = []
    for split, (classes, cycle, latent) in README.items():
        ours = S.defaults("synse", classes, int(split.split("/")[1]))
        same = (ours["cycle_length"], ours["latent"]) == (cycle, latent)
        rows.append(Row(METHOD, f"defaults for {split} (README: cycle {cycle}, latent {latent})", "-",
                        f"smie: cycle {ours['cycle_length']}, latent {ours['latent']}",
                        "SAME" if same else "MISMATCH"))
    ours = S.defaults("synse")
    code = dict(lr=1e-4, batch_size=64, schedule="constant", cycles=10)
    mine = {k: ours[k] for k in code}
    rows.append(Row(METHOD, "defaults (lr, batch, schedule, cycles)", "-", " ".join(f"{k}={v}" for k, v in mine.items()),
                    "SAME" if mine == code else "MISMATCH"))
    return rows


def run(repo: Path, steps: int, seed: int, dtypes: tuple[torch.dtype, ...]) -> list[Row]:
    data = synthetic(seed)
    runs = {dt: one_run(repo, data, dt, steps, seed) for dt in dtypes}
    return defaults_rows() + C.lockstep_rows(METHOD, "", runs)


def describe(steps: int) -> str:
    return (f"SynSE: NTU-60 55/5, synthetic 256-d features and 300-d verb/noun embeddings (--le w2v), {steps} steps "
            f"(cycles of {CYCLE}), batches of 64")
