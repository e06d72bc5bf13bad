"""Run-directory figures: a confusion matrix and the top-5 scores of a few test sequences (SMIE paper Fig. 4).

matplotlib with the Agg backend, selected inside each function so importing this module has no side effect.
"""
from __future__ import annotations

import os

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_png(path: str | os.PathLike, targets: np.ndarray, preds: np.ndarray, class_names: list[str],
                  title: str = "") -> None:
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
    fig.savefig(path, dpi=100)
    plt.close(fig)


def top5_png(path: str | os.PathLike, scores: np.ndarray, targets: np.ndarray, class_names: list[str],
             sample_ids: list[str], count: int = 4) -> None:
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
    fig.savefig(path, dpi=100)
    plt.close(fig)
