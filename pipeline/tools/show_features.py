"""``smie show-features``: a 2-D map of a visual cache's features, to see whether unseen classes separate.

The cache's ``features`` (N, D) (at most ``max_points`` rows, sampled evenly per class with ``seed``) are
embedded in 2-D by PCA (centred, numpy SVD; axes give the variance they explain) or, with ``method="tsne"``,
scikit-learn's t-SNE (PCA initialisation, seeded; an error names the missing package when scikit-learn is not
installed). Each class has its colour; seen classes are small faint circles, unseen classes larger triangles
outlined in black and named in the legend.

With a text cache, the class semantics (K, E) (``semantic_matrix`` of ``kinds``) are placed in the same plot by
a ridge regression from semantics to 2-D class centroids, fitted on the **seen** classes only (centred; ridge
weight 0.1 x the mean squared norm of the centred seen semantics); each unseen class's projection is a star,
joined by a dotted line to the centroid of its own points. The map is linear and learnt without any unseen
sample, so a star landing on its cluster says the semantics locate the class from seen classes alone; it is an
illustration, not the estimator's decision rule.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smie.features.store import SmieError

METHODS = ("pca", "tsne")


@dataclass(frozen=True)
class ShowFeaturesConfig:
    visual: Path
    out: Path
    method: str = "pca"
    text: Path | None = None
    kinds: tuple[str, ...] = ("label",)
    combine: str = "concat"
    max_points: int = 3000
    seed: int = 0


def sample_rows(labels: np.ndarray, max_points: int, seed: int) -> np.ndarray:
    """Sorted row indices, at most ``max_points``, as even across the classes of ``labels`` (N,) as possible."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per = max(1, max_points // max(len(classes), 1))
    rows = [rng.permutation(np.flatnonzero(labels == c))[:per] for c in classes]
    return np.sort(np.concatenate(rows)) if rows else np.zeros(0, int)


def embed_2d(x: np.ndarray, method: str, seed: int) -> tuple[np.ndarray, list[str]]:
    """(n, D) -> ((n, 2) float64, axis labels)."""
    x = np.asarray(x, dtype=np.float64)
    if method == "pca":
        xc = x - x.mean(axis=0)
        _, s, vt = np.linalg.svd(xc, full_matrices=False)
        var = s ** 2 / max((s ** 2).sum(), 1e-12)
        return xc @ vt[:2].T, [f"PC{i + 1} ({100 * var[i]:.0f} % of variance)" for i in range(2)]
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        raise SmieError("--method tsne needs scikit-learn, which is not installed (pip install scikit-learn); "
                        "--method pca needs nothing extra") from None
    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
    return TSNE(2, init="pca", random_state=seed, perplexity=perplexity).fit_transform(x), ["t-SNE 1", "t-SNE 2"]


def semantic_positions(sem: np.ndarray, centroids: np.ndarray, seen: list[int]) -> np.ndarray:
    """Ridge map from class semantics ``sem`` (K, E) to 2-D ``centroids`` (K, 2), fitted on ``seen`` rows only;
    returns every class's projected position (K, 2)."""
    s_mean, c_mean = sem[seen].mean(axis=0), centroids[seen].mean(axis=0)
    S, C = sem[seen] - s_mean, centroids[seen] - c_mean
    lam = 0.1 * float((S ** 2).sum(axis=1).mean() or 1.0)
    A = S @ S.T + lam * np.eye(len(seen))  # dual form: E may exceed the number of seen classes
    W = S.T @ np.linalg.solve(A, C)  # (E, 2)
    return (sem - s_mean) @ W + c_mean


def show_features(cfg: ShowFeaturesConfig) -> Path:
    """Write the 2-D map PNG to ``cfg.out`` with its provenance in a ``smie-provenance`` text chunk."""
    from smie.features.visual import read_visual
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from smie.pipeline.zsl.plots import picture_provenance, png_metadata

    out = Path(cfg.out)
    if out.suffix.lower() != ".png":
        raise SmieError(f"{out}: show-features writes a PNG; name the output *.png")
    if cfg.method not in METHODS:
        raise SmieError(f"unknown method {cfg.method!r}; choose one of {', '.join(METHODS)}")
    if cfg.text is not None:
        from smie.pipeline.zsl.runner import load_caches

        vc, _, sem = load_caches(Path(cfg.visual), Path(cfg.text), cfg.kinds, cfg.combine)
    else:
        vc, sem = read_visual(cfg.visual), None
    if vc.num_samples < 3:
        raise SmieError(f"{cfg.visual}: {vc.num_samples} samples; a 2-D map needs at least 3")
    rows = sample_rows(vc.labels, cfg.max_points, cfg.seed)
    xy, axis_names = embed_2d(vc.features[rows], cfg.method, cfg.seed)
    labels = vc.labels[rows]
    names = vc.class_names
    seen, unseen = list(vc.split.get("seen") or []), list(vc.split.get("unseen") or [])
    fig, ax = plt.subplots(figsize=(9, 7))
    vivid, faint = plt.get_cmap("tab10" if len(unseen) <= 10 else "tab20"), plt.get_cmap("tab20b")
    for i, c in enumerate(unseen):
        p = xy[labels == c]
        ax.scatter(p[:, 0], p[:, 1], s=28, marker="^", color=vivid(i % vivid.N), edgecolors="black",
                   linewidths=0.4, label=f"unseen: {names[c][:30]} ({len(p)})", zorder=3)
    for i, c in enumerate(seen):
        p = xy[labels == c]
        ax.scatter(p[:, 0], p[:, 1], s=9, marker="o", color=faint(i % faint.N), alpha=0.35, linewidths=0,
                   label=f"seen classes ({len(seen)}, faint circles)" if i == 0 else None, zorder=2)
    if sem is not None and seen and unseen:
        present = [c for c in range(len(names)) if (labels == c).any()]
        cent = np.zeros((len(names), 2))
        cent[present] = [xy[labels == c].mean(axis=0) for c in present]
        fit = [c for c in seen if c in present]
        if len(fit) < 2:
            raise SmieError(f"{cfg.visual}: fewer than two seen classes with samples; cannot place the semantics")
        pos = semantic_positions(np.asarray(sem, np.float64), cent, fit)
        for i, c in enumerate(unseen):
            ax.scatter(*pos[c], s=260, marker="*", color=vivid(i % vivid.N), edgecolors="black", zorder=5,
                       label="class text, ridge-mapped (fitted on seen classes)" if i == 0 else None)
            ax.annotate(names[c][:24], pos[c], fontsize=7, xytext=(6, 6), textcoords="offset points", zorder=6)
            if c in present:
                ax.plot(*np.stack([pos[c], cent[c]]).T, ":", color=vivid(i % vivid.N), lw=1.5, zorder=4)
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    method = {"pca": "PCA", "tsne": "t-SNE"}[cfg.method]
    ax.set_title(f"{Path(cfg.visual).name}: {len(rows)} of {vc.num_samples} samples, {method}; "
                 f"split {vc.split.get('id', '?')}", fontsize=9)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.grid(alpha=0.2)
    fig.tight_layout()
    prov = picture_provenance({"visual": cfg.visual, "text": cfg.text}, cfg, rows_shown=len(rows))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, metadata=png_metadata(prov))
    plt.close(fig)
    return out
