"""Run-directory figures: a confusion matrix, the top-5 scores of a few test sequences (SMIE paper Fig. 4) and
the per-epoch validation/test curves; and the provenance every smie picture carries (:func:`picture_provenance`):
PNG files in a ``smie-provenance`` text chunk, GIF/MP4 in a sidecar ``<file>.json``.

matplotlib with the Agg backend, selected inside each function so importing this module has no side effect.
"""
from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import numpy as np

HASH_LIMIT = 256 << 20  # inputs larger than this are recorded by size and mtime instead of SHA-256


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_png(path: str | os.PathLike, targets: np.ndarray, preds: np.ndarray, class_names: list[str],
                  title: str = "", prov: dict | None = None) -> None:
    """Row-normalised confusion matrix of ``targets``/``preds`` (N,) over ``class_names`` (K,)."""
    plt = _pyplot()
    K = len(class_names)
    cm = np.zeros((K, K))
    np.add.at(cm, (np.asarray(targets), np.asarray(preds)), 1)
    cm = cm / cm.sum(axis=1, keepdims=True).clip(min=1)
    size = min(4 + 0.35 * K, 30)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(K), [n[:28] for n in class_names], rotation=90, fontsize=7)
    ax.set_yticks(range(K), [n[:28] for n in class_names], fontsize=7)
    if K <= 20:
        for i in range(K):
            for j in range(K):
                ax.text(j, i, f"{cm[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if cm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata=png_metadata(prov) if prov else None)
    plt.close(fig)


def top5_png(path: str | os.PathLike, scores: np.ndarray, targets: np.ndarray, class_names: list[str],
             sample_ids: list[str], count: int = 4, prov: dict | None = None) -> None:
    """Bar charts of the five highest softmax scores (over the classes scored) for ``count`` samples,
    the true class highlighted; samples are taken evenly across the test set so several classes appear."""
    plt = _pyplot()
    scores = np.asarray(scores, dtype=np.float64)
    N = len(scores)
    picks = np.unique(np.linspace(0, N - 1, num=min(count, N)).astype(int)) if N else []
    fig, axes = plt.subplots(1, max(1, len(picks)), figsize=(4 * max(1, len(picks)), 3.2), squeeze=False)
    for ax, i in zip(axes[0], picks):
        p = np.exp(scores[i] - scores[i].max())
        p /= p.sum()
        top = np.argsort(-p)[:5]
        colors = ["tab:green" if c == targets[i] else "tab:gray" for c in top]
        ax.barh(range(len(top))[::-1], p[top], color=colors)
        ax.set_yticks(range(len(top))[::-1], [class_names[c][:24] for c in top], fontsize=7)
        ax.set_xlim(0, 1)
        ax.set_title(f"{sample_ids[i][:30]}\ntrue: {class_names[targets[i]][:30]}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata=png_metadata(prov) if prov else None)
    plt.close(fig)


def current_command() -> str:
    """The command line that is running: the ``smie`` arguments the CLI group recorded in its click context
    (``smie.command``), else this process's ``sys.argv``."""
    try:
        import click

        ctx = click.get_current_context(silent=True)
    except ImportError:  # pragma: no cover - click is a dependency
        ctx = None
    args = ctx.meta.get("smie.command") if ctx is not None else None
    return shlex.join(args) if args else shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])


def _describe_input(path: str | os.PathLike) -> dict:
    p = Path(path)
    if p.is_dir():
        return dict(path=str(p), kind="directory", files=sum(1 for f in p.iterdir() if f.is_file()))
    if not p.is_file():
        return dict(path=str(p), missing=True)
    st = p.stat()
    if st.st_size <= HASH_LIMIT:
        from smie.features.store import file_sha256

        return dict(path=str(p), sha256=file_sha256(p), bytes=st.st_size)
    return dict(path=str(p), sha256=None, bytes=st.st_size, mtime=int(st.st_mtime),
                note=f"not hashed (over {HASH_LIMIT >> 20} MiB)")


def picture_provenance(inputs: dict[str, str | os.PathLike | None], config=None, **extra) -> dict:
    """What made a picture: the command line, its input files (SHA-256 up to :data:`HASH_LIMIT` bytes, else size
    and mtime; a directory by its file count), the config, package versions and time, plus ``extra`` fields."""
    from smie.features.store import provenance

    rec = provenance(config, command=current_command(), **extra)
    rec["inputs"] = {role: _describe_input(p) for role, p in inputs.items() if p is not None}
    return rec


def png_metadata(prov: dict) -> dict[str, str]:
    """``metadata=`` for ``savefig`` of a PNG: tEXt chunks ``Software``, ``Description`` (the command) and
    ``smie-provenance`` (the whole record as JSON)."""
    return {"Software": f"smie {prov.get('packages', {}).get('smie', '')}".strip(),
            "Description": str(prov.get("command", "")), "smie-provenance": json.dumps(prov, sort_keys=True)}


def write_sidecar(path: str | os.PathLike, prov: dict) -> Path:
    """``<path>.json`` beside a GIF/MP4 (formats without a convenient text chunk) holding ``prov``."""
    side = Path(f"{path}.json")
    side.write_text(json.dumps(prov, indent=2, sort_keys=True) + "\n")
    return side


def curves_png(path: str | os.PathLike, metrics: dict, title: str = "", prov: dict | None = None,
               first_eligible: int = 0) -> None:
    """Per-epoch ZSL top-1 of a run (``metrics.json``'s ``curves``): the validation phase's accuracy on the
    ``val_unseen`` classes and the final phase's test accuracy on the unseen classes, the epoch selected on
    validation marked on both, and the best *test* epoch (the oracle, not a valid estimate) marked apart; below,
    both phases' training losses. Epochs that were not evaluated are NaN and left as gaps; epochs before
    ``first_eligible`` (the warm-up, which neither selection nor the oracle may pick) are shaded."""
    plt = _pyplot()
    curves, zsl = metrics.get("curves") or {}, metrics.get("zsl") or {}
    val, test = (np.asarray(curves.get(k) or [], dtype=float) for k in ("val_acc", "test_acc"))
    fig, (ax, lax) = plt.subplots(2, 1, figsize=(7, 5.2), sharex=True, gridspec_kw=dict(height_ratios=[3, 1.3]))
    if first_eligible > 0:
        for a in (ax, lax):
            a.axvspan(-0.5, first_eligible - 0.5, color="0.85", alpha=0.5, lw=0,
                      label="warm-up: never selected" if a is ax else None)
    ax.plot(np.arange(len(val)), val, ".-", color="tab:blue", ms=3, label="validation phase: val_unseen ZSL top-1")
    ax.plot(np.arange(len(test)), test, ".-", color="tab:green", ms=3, label="final phase: unseen test ZSL top-1")
    sel = (zsl.get("selected") or {}).get("epoch")
    if sel is not None and 0 <= sel < max(len(val), len(test), 1):
        ax.axvline(sel, color="black", ls="--", lw=1)
        if sel < len(test):
            ax.plot([sel], [test[sel]], "o", color="black", ms=7, mfc="none", mew=1.5,
                    label=f"selected on {(zsl.get('selected') or {}).get('selected_on', 'validation')}: "
                          f"epoch {sel}, test {test[sel]:.3f}")
    orc = zsl.get("oracle") or {}
    if orc.get("epoch") is not None and orc["epoch"] < len(test):
        e = int(orc["epoch"])
        ax.plot([e], [test[e]], "*", color="tab:red", ms=12,
                label=f"oracle (best test epoch {e}, {test[e]:.3f}): not a valid estimate")
    for key, color, name in (("val_top_share", "tab:blue", "validation"), ("test_top_share", "tab:green", "test")):
        share = np.asarray(curves.get(key) or [], dtype=float)
        if len(share):
            ax.plot(np.arange(len(share)), share, ":", color=color, lw=1,
                    label=f"{name}: share of predictions to the top class (1 = collapse)")
    ax.set_ylabel("ZSL top-1 / top-class share")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title, fontsize=9)
    for key, color, name in (("val_loss", "tab:blue", "validation phase"), ("loss", "tab:green", "final phase")):
        loss = np.asarray(curves.get(key) or [], dtype=float)
        lax.plot(np.arange(len(loss)), loss, color=color, lw=1, label=name)
    lax.set_ylabel("training loss", fontsize=8)
    lax.set_xlabel("evaluation point" if (metrics.get("budget") or {}).get("mode") == "paper-steps" else "epoch")
    lax.grid(alpha=0.3)
    lax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata=png_metadata(prov) if prov else None)
    plt.close(fig)
