"""Reading the pre-extracted feature folders that SynSE distributes (and MSF, SA-DVAE, TDSM and SMIE reuse):
which files a folder holds, each array loaded and checked, and the label convention resolved.

A *main* folder (``shift_5_r``; SA-DVAE/TDSM name it ``shift_ntu60_5_r``) holds ``train.npy``/``train_label.npy``
(seen classes, the backbone's training samples), ``ztest.npy``/``z_label.npy`` (unseen-class test samples) and
``gtest.npy``/``g_label.npy`` (test samples of every class); SMIE's copy names the unseen test
``test.npy``/``test_label.npy`` and has no ``gtest``. A *validation* folder (``shift_val_5_r``) holds the
features of a backbone trained without the ``val_unseen`` classes: ``train`` (the other seen classes),
``ztest`` (the ``val_unseen`` classes) and ``val`` (held-out samples of the trained classes). Any ``X.npy``
may have ``X_out.npy`` beside it: that backbone's class scores of the same rows (MSF's seen-class expert).
docs/reproduce.md says which official loader reads which file, with file and line.

Every problem raises :class:`SmieError` naming the file: a missing file, a pickled or non-numeric array, a
wrong dtype or shape, NaN rows, features and labels of different lengths, labels outside the split.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smie.features.store import SmieError

# role -> (features file, labels file); a folder kind lists the roles it must have, then the optional ones
ROLE_FILES = {"train": ("train.npy", "train_label.npy"), "ztest": ("ztest.npy", "z_label.npy"),
              "gtest": ("gtest.npy", "g_label.npy"), "val": ("val.npy", "val_label.npy"),
              "test": ("test.npy", "test_label.npy")}
KINDS = {  # kind -> (required roles, optional roles); the first kind whose files are all there is the folder's
    "synse": (("train", "ztest", "gtest"), ()),
    "synse-zsl": (("train", "ztest"), ()),  # TDSM's loader reads only these two
    "smie": (("train", "test"), ()),
    "synse-val": (("train", "ztest", "val"), ()),
}
MAIN_KINDS, VALIDATION_KINDS = ("synse", "synse-zsl", "smie"), ("synse-val",)
CONVENTIONS = ("auto", "global", "local")


@dataclass(frozen=True)
class Part:
    """One role's arrays: ``features`` (n, D) float32, ``labels`` (n,) int64 as found (before any mapping),
    ``logits`` (n, C) float32 or None, and the files with their paths."""

    role: str
    features: np.ndarray
    labels: np.ndarray
    logits: np.ndarray | None
    files: tuple[Path, ...]


def folder_kind(folder: Path, kinds: tuple[str, ...]) -> str:
    """The first of ``kinds`` whose required files are all in ``folder``; else a SmieError naming what is missing."""
    if not folder.is_dir():
        raise SmieError(f"{folder}: no such feature folder")
    for fx, fy in ROLE_FILES.values():  # half a pair is a broken folder, never a smaller layout
        there = [(folder / f).is_file() for f in (fx, fy)]
        if any(there) and not all(there):
            have, miss = (fx, fy) if there[0] else (fy, fx)
            raise SmieError(f"{folder / miss}: missing file ({have} is there; the two go together)")
    for kind in kinds:
        if all((folder / f).is_file() for role in KINDS[kind][0] for f in ROLE_FILES[role]):
            return kind
    want = KINDS[kinds[0]][0]
    missing = [f for role in want for f in ROLE_FILES[role] if not (folder / f).is_file()]
    others = "; or ".join(" + ".join(f for r in KINDS[k][0] for f in ROLE_FILES[r]) for k in kinds[1:])
    raise SmieError(f"{folder / missing[0]}: missing file (a {kinds[0]} folder needs "
                    f"{' + '.join(f for r in want for f in ROLE_FILES[r])}{'; or ' + others if others else ''})")


def _load(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise SmieError(f"{path}: not a plain numeric .npy array ({exc})") from None
    except (OSError, EOFError) as exc:
        raise SmieError(f"{path}: cannot be read as .npy ({exc})") from None


def _float_rows(path: Path, x: np.ndarray, what: str) -> np.ndarray:
    """``x`` as (n, C) float32: trailing singleton axes dropped; NaN/inf rows refused (naming the first rows)."""
    while x.ndim > 2 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 2:
        raise SmieError(f"{path}: {what} must be a 2-D array (rows, dims), found shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise SmieError(f"{path}: wrong dtype {x.dtype}: {what} must be floating point (float16/32/64)")
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if bad.size:
        rows = ", ".join(str(int(i)) for i in bad[:5]) + (", ..." if bad.size > 5 else "")
        raise SmieError(f"{path}: {bad.size} rows hold NaN or infinite values (rows {rows})")
    return x.astype(np.float32, copy=False)


def _labels(path: Path, y: np.ndarray) -> np.ndarray:
    """(n,) int64 class ids from integer ids, integral floats, (n, 1) columns or one-hot (n, C) rows."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 2 and y.size and np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all():
        return np.argmax(y, axis=1).astype(np.int64)  # one-hot rows (SynSE's h5 splits store labels so)
    if y.ndim != 1:
        raise SmieError(f"{path}: labels must be a 1-D array of class ids (or one-hot rows), found shape {y.shape}")
    if np.issubdtype(y.dtype, np.integer):
        return y.astype(np.int64)
    if np.issubdtype(y.dtype, np.floating) and np.isfinite(y).all() and (y == np.round(y)).all():
        return y.astype(np.int64)
    raise SmieError(f"{path}: wrong dtype {y.dtype}: labels must be integer class ids")


def read_part(folder: Path, role: str) -> Part:
    """Load and check one role's features, labels and (when present) ``*_out.npy`` scores."""
    fx, fy = (folder / f for f in ROLE_FILES[role])
    x, y = _float_rows(fx, _load(fx), "features"), _labels(fy, _load(fy))
    if len(x) != len(y):
        raise SmieError(f"{fx}: {len(x)} feature rows but {fy.name} has {len(y)} labels")
    if len(x) == 0:
        raise SmieError(f"{fx}: holds no rows")
    fo = fx.with_name(fx.stem + "_out.npy")
    logits, files = None, (fx, fy)
    if fo.is_file():
        logits = _float_rows(fo, _load(fo), "class scores")
        if len(logits) != len(x):
            raise SmieError(f"{fo}: {len(logits)} rows but {fx.name} has {len(x)}")
        files += (fo,)
    return Part(role, x, y, logits, files)


def check_dims(parts: list[Part]) -> int:
    """The common feature width D; a SmieError naming the file that differs."""
    D = parts[0].features.shape[1]
    for p in parts[1:]:
        if p.features.shape[1] != D:
            raise SmieError(f"{p.files[0]}: {p.features.shape[1]}-d features, but {parts[0].files[0]} has {D}-d: "
                            "the files come from different backbones")
    return D


def check_folder_name(folder: Path, split, dataset: str) -> None:
    """Refuse a folder whose SynSE-style name (``shift_5_r``, ``shift_val_12_r``, ``shift_ntu120_10_r``,
    ``split_5``) says another unseen count or data set than ``split``; names without that pattern pass."""
    m = re.search(r"(?:^|_)(?:(ntu\d+)_)?(?:val_)?(\d+)(?:_r)?$", folder.name)
    if not m or not folder.name.startswith(("shift", "split", "msg3d", "vacnn")):
        return
    if int(m.group(2)) != len(split.unseen):
        raise SmieError(f"{folder}: the folder name says {m.group(2)} unseen classes, but split {split.id} has "
                        f"{len(split.unseen)}: this folder belongs to another split")
    if m.group(1) and m.group(1) != dataset:
        raise SmieError(f"{folder}: the folder name says {m.group(1)}, but split {split.id} is a {dataset} split")


def _fmt(classes) -> str:
    classes = sorted(int(c) for c in classes)
    return " ".join(map(str, classes[:12])) + (" ..." if len(classes) > 12 else "")


def resolve_labels(parts: list[Part], allowed: dict[str, tuple[int, ...]], local: dict[str, tuple[int, ...]],
                   convention: str, where: Path) -> tuple[dict[str, np.ndarray], str]:
    """Global class ids per role, and the convention that gave them.

    A role's labels are *global* ids (indices into the data set's class table, what every official loader uses),
    which must lie in ``allowed[role]``, or *local* ids (positions in the sorted list ``local[role]``). ``auto``
    takes global when every file fits it, else local when every file fits that. Every role but ``val`` must
    have rows of each class of ``local[role]`` (a folder of another split lacks some)."""
    def fits(conv: str, p: Part) -> bool:
        if conv == "global":
            return bool(np.isin(p.labels, allowed[p.role]).all())
        return bool(p.labels.min() >= 0 and p.labels.max() < len(local[p.role]))

    if convention not in CONVENTIONS:
        raise SmieError(f"label convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")
    conv = convention
    if conv == "auto":
        conv = next((c for c in ("global", "local") if all(fits(c, p) for p in parts)), "global")
    for p in parts:
        if not fits(conv, p):
            ok = set(allowed[p.role]) if conv == "global" else set(range(len(local[p.role])))
            what = (f"not among the classes this file may hold ({_fmt(allowed[p.role])})" if conv == "global"
                    else f"outside 0..{len(local[p.role]) - 1} (local ids)")
            raise SmieError(f"{p.files[1]}: labels outside the split: {_fmt(set(p.labels.tolist()) - ok)} are {what}; "
                            f"the folder {where} mixes splits, or belongs to another split or label convention")
    out = {p.role: (p.labels if conv == "global" else np.asarray(local[p.role], np.int64)[p.labels]) for p in parts}
    for p in parts:
        absent = sorted(set(local[p.role]) - set(out[p.role].tolist()))
        if absent and p.role != "val":
            raise SmieError(f"{p.files[1]}: no rows of classes {_fmt(absent)}, which this file should hold; the "
                            f"folder {where} belongs to another split")
    return out, conv


def match_rows(a: np.ndarray, b: np.ndarray, la: np.ndarray, lb: np.ndarray, atol: float = 1e-5) -> np.ndarray | None:
    """For every row of ``a`` (labels ``la``) the row of ``b`` (labels ``lb``) that holds the same sample (same
    label, features equal within ``atol``), each used once; None when the rows are not the same samples."""
    out = np.full(len(a), -1, dtype=np.int64)
    for c in np.unique(la):
        ia, ib = np.flatnonzero(la == c), np.flatnonzero(lb == c)
        if len(ia) != len(ib):
            return None
        A, B = a[ia].astype(np.float64), b[ib].astype(np.float64)
        d2 = (A * A).sum(axis=1)[:, None] + (B * B).sum(axis=1)[None, :] - 2.0 * A @ B.T  # (n, n) squared distances
        best = d2.argmin(axis=1)
        if len(set(best.tolist())) != len(ia) or np.abs(A - B[best]).max() > atol:
            return None
        out[ia] = ib[best]
    return out
