"""Synthetic feature folders in the exact layout and NTU size of SynSE's ``ntu_results`` (for tests and bench/).

``write_synse_layout`` writes a main folder (``shift_5_r``: ``train``, ``ztest``, ``gtest`` with their labels
and ``*_out.npy`` scores) and its validation folder (``shift_val_5_r``: ``train``, ``ztest``, ``val``), seeded.
Sizes follow NTU's cross-subject protocol, which SynSE's folders come from: about 668 training and 275 test
sequences per class (40,091 and 16,487 over 60 classes), so 55/5 gives about 36,700 training rows of 256-d
and ``val.npy`` holds 2,000 held-out rows (the counts MSF's ``data_cnn60.py`` notes beside its loader:
31,216 / 1,367 / 2,000). ``naming`` gives SA-DVAE's/TDSM's folder names (``shift_ntu60_5_r``) or SMIE's copy
(``split_5`` with ``test.npy``); ``labels="local"`` writes ids local to the split.

The features carry a learnable zero-shot signal: class ``k``'s features are ``relu(A s_k * scale + noise)``
for a fixed random map ``A`` (D x E) of its semantic vector ``s_k`` (the ``semantics`` given, e.g. published
text features, or seeded random unit vectors), so a ZSL method that learns the map recovers unseen classes.
The validation folder's backbone is another map (``A`` perturbed), as a separately trained backbone would be.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smie.features.store import SmieError
from smie.pipeline.data.classes import class_table
from smie.pipeline.data.splits import registry, resolve_split

NAMINGS = ("synse", "sadvae", "smie")


@dataclass(frozen=True)
class SynseLayout:
    """Sizes and options of one synthetic folder pair (defaults: NTU size, SynSE naming, global labels)."""

    split: str = "synse:ntu60:55/5"
    train_per_class: int = 668
    test_per_class: int = 275
    val_rows: int = 2000
    dim: int = 256
    sem_dim: int = 64
    scale: float = 3.0
    noise: float = 1.0
    seed: int = 0
    logits: bool = True
    validation: bool = True
    labels: str = "global"
    naming: str = "synse"
    ztest_copy: bool = True


def _counts(rng, per_class: int, n: int) -> np.ndarray:
    return np.maximum(1, np.round(per_class * rng.uniform(0.97, 1.03, n))).astype(int)


def _draw(rng, A, sem, classes, counts, cfg: SynseLayout) -> tuple[np.ndarray, np.ndarray]:
    labels = np.repeat(np.asarray(classes, np.int64), counts)
    mean = cfg.scale * sem[labels] @ A.T  # (n, D)
    x = np.maximum(mean + cfg.noise * rng.standard_normal(mean.shape), 0.0).astype(np.float32)
    return x, labels


def _save(folder: Path, stem: str, label_name: str, x, y, local, out, cfg: SynseLayout) -> None:
    np.save(folder / f"{stem}.npy", x)
    ids = y if cfg.labels == "global" else np.searchsorted(np.asarray(local), y)
    np.save(folder / label_name, ids.astype(np.int64))
    if cfg.logits and out is not None:
        np.save(folder / f"{stem}_out.npy", out(x))


def _scorer(A, sem, trained, K: int):
    """The backbone's class scores (N, K): cosine to each trained class's mean direction, untrained columns low."""
    proto = sem @ A.T
    proto /= np.linalg.norm(proto, axis=1, keepdims=True)
    bias = np.where(np.isin(np.arange(K), trained), 0.0, -5.0)
    return lambda x: (10.0 * (x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-6)) @ proto.T + bias).astype(
        np.float32)


def write_synse_layout(root: str | Path, cfg: SynseLayout = SynseLayout(),
                       semantics: np.ndarray | None = None) -> dict[str, Path]:
    """Write the folders under ``root``; return {"main", "validation" (if any), "semantics"} paths. The class
    semantic vectors used (K, E) are saved as ``root/semantics.npy`` (rows = the data set's class table)."""
    if cfg.naming not in NAMINGS:
        raise SmieError(f"naming must be one of {', '.join(NAMINGS)}, got {cfg.naming!r}")
    if cfg.split not in registry()["splits"]:
        raise SmieError(f"split {cfg.split} is not in the registry (see `smie splits`)")
    dataset = registry()["splits"][cfg.split]["dataset"]
    K = len(class_table(dataset))
    split = resolve_split(cfg.split, K, dataset)
    rng = np.random.default_rng(cfg.seed)
    if semantics is None:
        semantics = rng.standard_normal((K, cfg.sem_dim))
    sem = np.asarray(semantics, np.float64)
    if sem.shape[0] != K:
        raise SmieError(f"semantics have {sem.shape[0]} rows, the {dataset} class table has {K}")
    sem = sem / np.linalg.norm(sem, axis=1, keepdims=True)
    A = rng.standard_normal((cfg.dim, sem.shape[1])) / np.sqrt(sem.shape[1])
    A_val = A + 0.3 * rng.standard_normal(A.shape) / np.sqrt(sem.shape[1])
    root = Path(root)
    U, tag = len(split.unseen), {"synse": "", "sadvae": f"{dataset}_", "smie": ""}[cfg.naming]
    main = root / (f"split_{U}" if cfg.naming == "smie" else f"shift_{tag}{U}_r")
    main.mkdir(parents=True, exist_ok=True)
    train_counts, test_counts = _counts(rng, cfg.train_per_class, K), _counts(rng, cfg.test_per_class, K)
    seen, unseen = list(split.seen), list(split.unseen)
    out = _scorer(A, sem, seen, K) if cfg.naming != "smie" else None
    x, y = _draw(rng, A, sem, seen, train_counts[seen], cfg)
    _save(main, "train", "train_label.npy", x, y, seen, None, cfg)
    gx, gy = _draw(rng, A, sem, range(K), test_counts, cfg)
    u = np.isin(gy, unseen)
    zx, zy = (gx[u], gy[u]) if cfg.ztest_copy else _draw(rng, A, sem, unseen, test_counts[unseen], cfg)
    if cfg.naming == "smie":
        _save(main, "test", "test_label.npy", zx, zy, unseen, None, cfg)
        return {"main": main, "semantics": _semantics(root, sem)}
    _save(main, "ztest", "z_label.npy", zx, zy, unseen, out, cfg)
    _save(main, "gtest", "g_label.npy", gx, gy, range(K), out, cfg)
    paths = {"main": main}
    if cfg.validation:
        paths["validation"] = _validation(root / f"shift_{tag}val_{U}_r", rng, A_val, sem, split, train_counts,
                                          test_counts, K, cfg)
    paths["semantics"] = _semantics(root, sem)
    return paths


def _validation(folder: Path, rng, A, sem, split, train_counts, test_counts, K: int, cfg: SynseLayout) -> Path:
    """``train`` (the split's seen minus val_unseen classes, less ``val_rows`` held out as ``val``) and ``ztest``
    (the val_unseen classes' test-sized sample), embedded by the validation backbone ``A``."""
    folder.mkdir(parents=True, exist_ok=True)
    trained = [c for c in split.seen if c not in set(split.val_unseen)]
    out = _scorer(A, sem, trained, K)
    x, y = _draw(rng, A, sem, trained, train_counts[trained], cfg)
    held = rng.choice(len(y), size=min(cfg.val_rows, len(y) // 10), replace=False)
    keep = np.setdiff1d(np.arange(len(y)), held)
    _save(folder, "train", "train_label.npy", x[keep], y[keep], trained, out, cfg)
    _save(folder, "val", "val_label.npy", x[np.sort(held)], y[np.sort(held)], trained, out, cfg)
    zx, zy = _draw(rng, A, sem, list(split.val_unseen), test_counts[list(split.val_unseen)], cfg)
    _save(folder, "ztest", "z_label.npy", zx, zy, list(split.val_unseen), out, cfg)
    return folder


def _semantics(root: Path, sem: np.ndarray) -> Path:
    np.save(root / "semantics.npy", sem.astype(np.float32))
    return root / "semantics.npy"
