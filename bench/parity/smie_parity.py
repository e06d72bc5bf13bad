"""SMIE: the official code (YujieOuO/SMIE ``model.py``, ``procedure.py``) against smie's estimator, step by step.

The official main track runs unchanged: ``Processor.load_data``/``load_model``/``load_optim``/``train_epoch``/
``test_epoch`` and ``MI``. Its frozen ST-GCN is replaced by a stand-in encoder that looks features up: each
"skeleton" the loaders yield is a (1, T, 1, 1) clip holding its sample's row number in every frame, so the code's
own keyframe masking (``motion_att_temp_mask2``) runs on it and the stand-in returns the sample's feature for a
full clip and, for a masked clip, the cached masked view the bench chose for this step, the view smie is given
too. The loaders are replaced by lists of batches in the bench's order. smie's ``SMIEEstimator`` starts from the
official critic's weights and steps in lockstep inside the official optimiser's ``step``; per step the bench
compares the loss, the gradients and (after both steps) the parameters; per epoch the learning rate and the test
scoring. Rows also show where smie deviates: the test scoring (official ``get_acc``: ``-softplus(-T(v, s))`` on the
raw feature; smie: ``T(LayerNorm(v), s)``), the per-batch accuracy averaging, the crash of the "sota" track, and
the keyframe masking (``model.motion_att_temp_mask2`` against ``smie.pipeline.visual.keyframes``).
"""
from __future__ import annotations

import random
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import smie_side as S
from cycles import drift
from standins import OfficialRuntime, einops_standin, hook_step, official_import, quiet, sacred_standin
from table import MaxDiff, Row, Sampled, agreement_row, dtype_name, fmt, grads_row, same_row

METHOD = "SMIE"
CLASSES, UNSEEN, D, E, VIEWS, T = 20, (2, 7, 11, 15, 18), 256, 768, 4, 50
WARMUP, SCHEDULE_EPOCHS, BATCH, TEST_BATCH = 15, 100, 128, 64


def synthetic(seed: int, n_train: int, per_test_class: int = 41) -> dict:
    """Seeded features with a class structure: visual (N, 256) = a projection of the class text plus noise,
    W masked views = a damped copy plus noise; raw (un-normalised) class texts (K, 768)."""
    g = np.random.default_rng(seed)
    sem = g.normal(size=(CLASSES, E))
    proj = g.normal(size=(E, D)) / np.sqrt(E)
    centre = 3 * (sem / np.linalg.norm(sem, axis=1, keepdims=True)) @ proj
    seen = [c for c in range(CLASSES) if c not in UNSEEN]
    y_train = np.array(seen)[g.integers(len(seen), size=n_train)]
    y_test = g.permutation(np.repeat(UNSEEN, per_test_class))
    visual = centre[y_train] + g.normal(size=(n_train, D))
    masked = 0.7 * visual[:, None] + 0.5 * g.normal(size=(n_train, VIEWS, D))
    test = centre[y_test] + g.normal(size=(len(y_test), D))
    return dict(sem=sem, seen=seen, y_train=y_train, y_test=y_test, visual=visual, masked=masked, test=test)


def batch_plan(seed: int, n: int, epochs: int) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Per epoch, shuffled batches of 128 (the last one smaller) and a masked view per sample: (idx, views)."""
    g = np.random.default_rng(seed + 1)
    plan = []
    for _ in range(epochs):
        order = g.permutation(n)
        plan.append([(order[s:s + BATCH], g.integers(VIEWS, size=len(order[s:s + BATCH])))
                     for s in range(0, n, BATCH)])
    return plan


class Feed:
    """What the stand-in encoder looks up: every row's feature (train rows, then test rows), the masked views,
    and the views of the batch in flight."""

    def __init__(self, rows: torch.Tensor, masked: torch.Tensor):
        self.rows, self.masked = rows, masked
        self.views: dict[int, int] = {}
        self.current: tuple[np.ndarray, np.ndarray] | None = None


def encoder_standin(feed: Feed) -> type:
    """The ST-GCN stand-in class ``load_model`` builds: (N, 1, T', 1, 1) clips of row numbers -> features."""

    class StandInEncoder(nn.Module):
        def __init__(self, **_):
            super().__init__()
            self.unused = nn.Parameter(torch.zeros(1))  # an empty parameter group would be refused by Adam

        def forward(self, x):
            ids = x[:, 0, 0, 0, 0].round().long()
            if x.shape[2] == T:
                return feed.rows[ids]
            views = torch.tensor([feed.views[int(i)] for i in ids])
            return feed.masked[ids, views]

    return StandInEncoder


def clips(ids) -> torch.Tensor:
    return torch.as_tensor(np.asarray(ids), dtype=torch.float32)[:, None, None, None, None].expand(-1, 1, T, 1, 1)


class EpochLoader:
    """One epoch of official training batches ``(clip, label)``; sets the feed's views and batch in flight."""

    def __init__(self, batches, labels: np.ndarray, feed: Feed):
        self.batches, self.labels, self.feed = batches, labels, feed

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        for idx, views in self.batches:
            self.feed.views = dict(zip(idx.tolist(), views.tolist()))
            self.feed.current = (idx, views)
            yield clips(idx), torch.as_tensor(self.labels[idx])


def load_official(repo: Path, work: Path, data: dict, dtype: torch.dtype, feed: Feed):
    """The official ``procedure`` module and a ``Processor`` with data, model and optimiser loaded."""
    runtime = OfficialRuntime(dtype)
    proc = official_import(repo, "procedure", modules={"sacred": sacred_standin(), "einops": einops_standin()},
                           runtime=runtime)
    n = len(data["y_train"])
    np.save(work / "language.npy", data["sem"].astype(np.float32))
    np.save(work / "train.npy", np.arange(n, dtype=np.float32)[:, None])
    np.save(work / "train_label.npy", data["y_train"])
    np.save(work / "test.npy", np.arange(n, n + len(data["y_test"]), dtype=np.float32)[:, None])
    np.save(work / "test_label.npy", data["y_test"])
    torch.save({"unused": torch.zeros(1)}, work / "encoder.pt")
    proc.ex.cfg.update(unseen_label=list(UNSEEN), sota_unseen=list(UNSEEN), language_path=str(work / "language.npy"),
                       train_list=str(work / "train.npy"), train_label=str(work / "train_label.npy"),
                       test_list=str(work / "test.npy"), test_label=str(work / "test_label.npy"),
                       weight_path=str(work / "encoder.pt"), visual_size=D, language_size=E)
    proc.Model = encoder_standin(feed)
    p = proc.Processor()
    with runtime, quiet():
        p.load_data()
        p.load_model()
        if dtype == torch.float64:
            # precision stand-in: the code reads the table with torch.Tensor (float32); normalise it in float64
            p.model.double()
            p.full_language = F.normalize(torch.from_numpy(data["sem"]), dim=-1)
        p.load_optim()
    return proc, p, runtime


def official_state(p) -> dict[str, torch.Tensor]:
    return {f"{k.removeprefix('global_D.')}": v for k, v in p.model.state_dict().items()}


def official_grads(p) -> dict[str, torch.Tensor]:
    out = {}
    for name, prm in p.model.named_parameters():
        out[name.removeprefix("global_D.")] = None if prm.grad is None else prm.grad.detach()
    return out


def one_run(repo: Path, data: dict, dtype: torch.dtype, epochs: int, seed: int) -> dict:
    """Train both sides ``epochs`` epochs in lockstep in ``dtype``; evaluate both on the test set every epoch."""
    n = len(data["y_train"])
    t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
    rows_t = t(np.concatenate([data["visual"], data["test"]]))
    feed = Feed(rows_t, t(data["masked"]))
    with tempfile.TemporaryDirectory() as tmp:
        proc, p, runtime = load_official(repo, Path(tmp), data, dtype, feed)
    model = S.make("smie", D, E, dtype)
    S.load_neutral(model, official_state(p))
    opt = S.optimizer(model, float(proc.ex.cfg["lr"]))
    seen_row = {c: i for i, c in enumerate(data["seen"])}
    labels = torch.as_tensor([seen_row[c] for c in data["y_train"]])
    sem_seen, sem_unseen = t(data["sem"][data["seen"]]), t(data["sem"][list(UNSEEN)])
    visual, masked = rows_t[:n], feed.masked
    d_loss, d_grad, d_param, d_lr = MaxDiff(), MaxDiff(), MaxDiff(), MaxDiff()
    out = dict(off_losses=[], smie_losses=[], off_grads=Sampled(seed=seed), smie_grads=Sampled(seed=seed))

    def before():
        idx, views = feed.current
        with runtime.suspended():
            value = S.step(model, opt, visual[idx], labels[idx], sem_seen, masked=masked[idx, views])
        d_loss.update(runtime.last_loss, value)
        g_off, g_smie = official_grads(p), S.grads(model)
        d_grad.update_dicts(g_off, g_smie)
        out["off_grads"].add(g_off)
        out["smie_grads"].add(g_smie)
        out["off_losses"].append(float(runtime.last_loss))
        out["smie_losses"].append(float(value))

    def after():
        with runtime.suspended():
            opt.step()
        d_param.update_dicts(official_state(p), S.params(model))

    hook_step(p.optimizer, before, after)
    plan = batch_plan(seed, n, epochs)
    test_ids = np.arange(n, n + len(data["y_test"]))
    p.data_loader["test"] = [(clips(test_ids[s:s + TEST_BATCH]), torch.as_tensor(data["y_test"][s:s + TEST_BATCH]))
                             for s in range(0, len(test_ids), TEST_BATCH)]
    captured = dict(preds=[], t=[])
    get_acc = p.model.get_acc

    def recording_get_acc(*args, **kwargs):
        acc, pred = get_acc(*args, **kwargs)
        captured["preds"].append(pred.clone())
        return acc, pred

    p.model.get_acc = recording_get_acc
    curves = dict(official=[], official_per_sample=[], smie=[], smie_raw=[])
    agree_default, agree_raw, d_score, off_preds = [], [], MaxDiff(), []
    for epoch in range(epochs):
        S.set_epoch_lr(opt, epoch, SCHEDULE_EPOCHS, WARMUP, "cosine")
        p.data_loader["train"] = EpochLoader(plan[epoch], data["y_train"], feed)
        with runtime, quiet():
            p.train_epoch(epoch)
        d_lr.update(p.optimizer.param_groups[1]["lr"], opt.param_groups[0]["lr"])
        captured["preds"].clear(), captured["t"].clear()
        hook = p.model.global_D.register_forward_hook(lambda m, i, o: captured["t"].append(o.detach().clone()))
        with runtime, quiet(), torch.no_grad():
            p.test_epoch(epoch=epoch)
        hook.remove()
        off_pred = torch.cat(captured["preds"]).numpy()
        off_preds.append(off_pred)
        off_score = torch.cat([-F.softplus(-o.squeeze(-1)) for o in captured["t"]]).numpy()
        default = S.smie_scores(model, rows_t[n:], sem_unseen)
        raw = S.smie_critic_on_raw(model, rows_t[n:], sem_unseen)
        pred_default, pred_raw = np.array(UNSEEN)[default.argmax(1)], np.array(UNSEEN)[raw.argmax(1)]
        d_score.update(off_score, -F.softplus(-torch.from_numpy(raw)).numpy())
        agree_default.append(pred_default == off_pred)
        agree_raw.append(pred_raw == off_pred)
        curves["official"].append(float(p.test_acc))
        curves["official_per_sample"].append(float((off_pred == data["y_test"]).mean()))
        curves["smie"].append(S.zsl_accuracy(default, np.searchsorted(UNSEEN, data["y_test"])))
        curves["smie_raw"].append(S.zsl_accuracy(raw, np.searchsorted(UNSEEN, data["y_test"])))
    out.update(d_loss=d_loss, d_grad=d_grad, d_param=d_param, d_lr=d_lr, d_score=d_score, curves=curves,
               agree_default=np.concatenate(agree_default), agree_raw=np.concatenate(agree_raw),
               off_preds=np.concatenate(off_preds),
               off_params=official_state(p), off_scores=off_score, best_epoch=int(p.best_epoch),
               smie_best=S.select_epoch(curves["official"], WARMUP + 1) if epochs > WARMUP + 1 else -1,
               steps=d_loss.count)
    del p.model.get_acc  # the recording wrapper; the sota track runs the code's own get_acc
    out["sota"] = sota_track(proc, p, runtime, rows_t[n:], data["y_test"])
    return out


def sota_track(proc, p, runtime, test_visual, y_test) -> str:
    """Run the official "sota" track's ``test_epoch`` once on the trained critic; the text of what it raises."""
    sp = proc.SotaProcessor()
    sp.model, sp.full_language, sp.best_acc = p.model, p.full_language, -1
    sp.data_loader = {"test": [(test_visual[:TEST_BATCH], torch.as_tensor(y_test[:TEST_BATCH]))]}
    try:
        with runtime, quiet(), torch.no_grad():
            sp.test_epoch(epoch=0)
    except Exception as exc:  # the finding is the exception itself
        return f"raises {type(exc).__name__}: {str(exc)[:60]}"
    return "runs"


def masking_rows(repo: Path, seed: int) -> list[Row]:
    """The code's ``motion_att_temp_mask2`` against smie's keyframe removal plus the code's own random drop."""
    runtime = OfficialRuntime(torch.float32)
    model_mod = official_import(repo, "model", modules={"sacred": sacred_standin(), "einops": einops_standin()},
                                runtime=runtime)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 3, T, 25, 2, generator=g).cumsum(2)
    random.seed(seed)
    with runtime:
        official = model_mod.motion_att_temp_mask2(x, 15)
    random.seed(seed)
    positions = sorted(random.sample(range(T - 15), T - 30))
    remaining = S.keyframe_remaining(x, 15)
    ours = torch.stack([x[i][:, remaining[i][positions]] for i in range(len(x))])
    diff = MaxDiff()
    diff.update(official, ours)
    return [same_row(METHOD, "keyframe masking (15 top-motion frames removed, the code's random drop of 15)",
                     torch.float32, diff),
            Row(METHOD, "random drop: one draw per batch and step (code) vs W cached views per sample", "-",
                "by design of the cache (docs/evaluation.md)", "DIFFERENT")]


def run(repo: Path, epochs: int, n_train: int, seed: int, dtypes: tuple[torch.dtype, ...]) -> list[Row]:
    data = synthetic(seed, n_train)
    runs = {dt: one_run(repo, data, dt, epochs, seed) for dt in dtypes}
    rows: list[Row] = []
    ref = runs.get(torch.float64)
    for dt, r in runs.items():
        is32 = dt == torch.float32 and ref is not None
        steps = r["steps"]
        rows.append(same_row(METHOD, f"loss per step ({steps} steps, {epochs} epochs)", dt, r["d_loss"],
                             drift(r["off_losses"], ref["off_losses"]) if is32 else None))
        rows.append(grads_row(METHOD, "gradients per step", dt, r["d_grad"], r["smie_grads"], r["off_grads"],
                              ref["off_grads"] if is32 else None))
        param_drift = max(drift(r["off_params"][k], ref["off_params"][k]) for k in r["off_params"]) if is32 else None
        rows.append(same_row(METHOD, f"parameters after each step (final: {steps})", dt, r["d_param"], param_drift))
        rows.append(same_row(METHOD, "learning rate per epoch (warm-up 15, cosine over 100)", dt, r["d_lr"]))
        rows.append(same_row(METHOD, "test scores: get_acc's -softplus(-T(v,s)) vs smie's critic on raw v", dt,
                             r["d_score"], drift(r["off_scores"], ref["off_scores"]) if is32 else None))
        flips = int((r["off_preds"] != ref["off_preds"]).sum()) if is32 else None
        rows.append(agreement_row(METHOD, "test predictions: get_acc vs smie's critic on raw v (score_on=raw)", dt,
                                  r["agree_raw"], np.ones_like(r["agree_raw"]), expect_same=True, drift_flips=flips))
        rows.append(agreement_row(METHOD, "test predictions: get_acc vs smie's default T(LayerNorm(v),s)", dt,
                                  r["agree_default"], np.ones_like(r["agree_default"]), expect_same=False))
        c = r["curves"]
        late = slice(WARMUP + 1, None) if epochs > WARMUP + 1 else slice(None)
        shift = 100 * (np.mean(c["smie"][late]) - np.mean(c["official_per_sample"][late]))
        rows.append(Row(METHOD, f"test accuracy, smie default minus get_acc, mean over epochs {late.start or 0}+",
                        dtype_name(dt), f"{shift:+.1f} points", "DIFFERENT" if shift else "SAME"))
        gap = 100 * max(abs(a - b) for a, b in zip(c["official"], c["official_per_sample"]))
        rows.append(Row(METHOD, "accuracy: code's mean of per-batch (64) accuracies vs per sample", dtype_name(dt),
                        f"max gap {gap:.2f} points", "DIFFERENT" if gap else "SAME"))
        if r["best_epoch"] >= 0:
            ok = r["best_epoch"] == r["smie_best"]
            rows.append(Row(METHOD, "oracle epoch on the code's curve (code: best test acc, epoch > 15)",
                            dtype_name(dt), f"code {r['best_epoch']}, smie select_epoch {r['smie_best']}",
                            "SAME" if ok else "MISMATCH"))
        rows.append(Row(METHOD, "the code's 'sota' track test_epoch (get_acc returns a tuple)", dtype_name(dt),
                        r["sota"], "NOTE"))
    rows.extend(masking_rows(repo, seed))
    return rows


def loop_rows(repo: Path, seed: int, dtype: torch.dtype) -> list[Row]:
    """smie's own loop (``train_method``, 100 epochs, one batch of 128 per epoch) against the official code fed
    the batches and views that loop drew: per-epoch mean losses and the final parameters. In float32 the code
    is also run in float64 on the same batches, for its own drift."""
    data = synthetic(seed, BATCH)
    n = BATCH
    seen_row = {c: i for i, c in enumerate(data["seen"])}
    labels = torch.as_tensor([seen_row[c] for c in data["y_train"]])
    fed, start = None, None
    results = {}
    for dt in ((dtype, torch.float64) if dtype == torch.float32 else (dtype,)):
        t = lambda a: torch.as_tensor(a, dtype=dt)  # noqa: E731
        rows_t = t(np.concatenate([data["visual"], data["test"]]))
        feed = Feed(rows_t, t(data["masked"]))
        with tempfile.TemporaryDirectory() as tmp:
            proc, p, runtime = load_official(repo, Path(tmp), data, dt, feed)
        if fed is None:
            start = {k: v.clone() for k, v in official_state(p).items()}
            model = S.make("smie", D, E, dt)
            S.load_neutral(model, start)
            losses, fed = S.train_loop(model, rows_t[:n], feed.masked, labels, t(data["sem"][data["seen"]]),
                                       SCHEDULE_EPOCHS, BATCH, float(proc.ex.cfg["lr"]), WARMUP, seed)
            ours = (losses, S.params(model))
        else:
            p.model.global_D.load_state_dict({k: v.to(dt) for k, v in start.items()})
        code_losses = []
        for epoch in range(SCHEDULE_EPOCHS):
            p.data_loader["train"] = EpochLoader([fed[epoch]], data["y_train"], feed)
            with runtime, quiet():
                p.train_epoch(epoch)
            code_losses.append(p.dim_loss)
        results[dt] = (code_losses, official_state(p))
    code_losses, code_params = results[dtype]
    d_loss, d_param = MaxDiff(), MaxDiff()
    for a, b in zip(code_losses, ours[0]):
        d_loss.update(a, b)
    d_param.update_dicts(code_params, ours[1])
    loss_drift = param_drift = None
    if dtype == torch.float32:
        ref_losses, ref_params = results[torch.float64]
        loss_drift = drift(code_losses, ref_losses)
        param_drift = max(drift(code_params[k], ref_params[k]) for k in code_params)
    return [same_row(METHOD, "smie's loop (train_method) vs code fed its batches: loss per epoch", dtype, d_loss,
                     loss_drift),
            same_row(METHOD, "smie's loop vs code: parameters after 100 epochs", dtype, d_param, param_drift)]


def describe(epochs: int, n_train: int) -> str:
    steps = epochs * -(-n_train // BATCH)
    return (f"SMIE: {n_train} training samples, {epochs} epochs of the 100-epoch schedule ({steps} steps), "
            f"{len(UNSEEN)} unseen classes x 41 test samples, D={D}, E={E}, W={VIEWS}")


__all__ = ["run", "loop_rows", "describe", "fmt"]
