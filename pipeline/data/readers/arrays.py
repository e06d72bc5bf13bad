"""Array inputs already cut into samples: AimCLR/CrossCLR ``.npy``+``.pkl``, CTR-GCN ``.npz``, smie's ``npz``.

All are read with ``np.load(allow_pickle=False)``; ``.npy`` files are memory-mapped, so NTU-120 sized inputs
are read one sample at a time.

- ``aimclr``: ``<prefix>_position.npy`` (or 2s-AGCN's ``<prefix>_data_joint.npy``) of shape (N, 3, T, 25, M)
  with ``<prefix>_label.pkl`` = pickled ``(sample_names, labels)``. ``input`` is the ``.npy`` file or a
  directory of such pairs (e.g. ``xsub/`` with ``train_`` and ``val_``). NTU sample names give the metadata.
- ``ctrgcn``: CTR-GCN's ``NTU60_CS.npz``: ``x_train``/``x_test`` (N, T, 150) = 2 bodies x 25 joints x 3 and
  one-hot ``y_train``/``y_test``. Sample ids are ``<file>_train_<i>`` / ``<file>_test_<i>``.
- ``npz`` (smie's generic format): ``data`` (N, C=3, T, V, M) float, ``label`` (N,) int, ``class_names`` (K,) str,
  and the joint layout: ``layout`` (a preset name of ``LAYOUTS``) or the layout as data, ``joint_names`` (V,) str,
  ``bones`` (V-1, 2) int (child, parent) pairs forming a tree, ``center`` int (the joint preprocessing subtracts),
  optionally ``graph_center`` int and ``up_axis`` (``y`` or ``z``), with ``layout`` then its name (default
  ``custom-V``); optional ``lengths`` (N,) valid frames per sample (frames past it are ignored), ``subject`` (N,)
  int, ``sample_id`` (N,) str, ``dataset`` str (else ``--dataset``, else the file stem).

``aimclr`` and ``ctrgcn`` record ``source_split`` in the metadata: 0 for a train file/array, 1 for val/test.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from smie.features.store import SmieError
from smie.pipeline.data.layouts import custom_spec, get_layout, resolve_layout
from smie.pipeline.data.readers.base import (
    RawSample,
    RawSource,
    check_finite,
    check_label,
    class_names_for,
    dataset_from_labels,
    ntu_meta,
    pad_bodies,
)
from smie.pipeline.data.readers.pickles import read_aimclr_labels

_SUFFIXES = ("_position.npy", "_data_joint.npy")


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise SmieError(f"{path}: not a readable .npy array ({exc})") from None


def _source_split(prefix: str) -> int:
    p = prefix.lower()
    return 0 if "train" in p else 1 if ("val" in p or "test" in p) else -1


def read_aimclr(path: Path, *, max_bodies: int = 2, dataset: str | None = None, **_: object) -> RawSource:
    """AimCLR/CrossCLR position arrays with label pickles -> :class:`RawSource`."""
    path = Path(path)
    if path.is_dir():
        arrays = sorted(f for s in _SUFFIXES for f in path.glob("*" + s))
        if not arrays:
            raise SmieError(f"{path}: no *_position.npy or *_data_joint.npy files found")
    elif path.name.endswith(_SUFFIXES):
        arrays = [path]
    else:
        raise SmieError(f"{path}: expected a *_position.npy file or a directory of them")
    parts = []
    for arr_path in arrays:
        prefix = next(arr_path.name[: -len(s)] for s in _SUFFIXES if arr_path.name.endswith(s))
        label_path = arr_path.with_name(prefix + "_label.pkl")
        if not label_path.is_file():
            raise SmieError(f"{arr_path}: its label file {label_path} is missing")
        data = _load_npy(arr_path)
        names, labels = read_aimclr_labels(label_path)
        if data.ndim != 5 or data.shape[1] != 3:
            raise SmieError(f"{arr_path}: expected shape (N, 3, T, V, M), got {data.shape}")
        if data.shape[0] != len(labels):
            raise SmieError(f"{arr_path}: {data.shape[0]} samples but {label_path} has {len(labels)} labels")
        parts.append((arr_path, prefix, data, names, labels))
    V = parts[0][2].shape[3]
    if any(p[2].shape[3] != V for p in parts):
        raise SmieError(f"{path}: the arrays have different joint counts")
    layout = {25: "ntu-25", 20: "kinect-v1-20", 17: "coco-17"}.get(V)
    if layout is None:
        raise SmieError(f"{arrays[0]}: {V} joints is not a known joint count (25, 20 or 17)")
    all_names = [n for p in parts for n in p[3]]
    all_labels = [x for p in parts for x in p[4]]
    dataset = dataset_from_labels(all_labels, all_names, dataset, str(path), V)
    class_names = class_names_for(dataset, all_labels, str(path))

    def load(arr_path: Path, prefix: str, data: np.ndarray, name: str, label: int, i: int):
        where = f"{arr_path} (sample {i}, {name})"
        x = np.array(data[i], dtype=np.float32)
        check_finite(x, where)
        info = ntu_meta(name)
        meta = dict(info[0]) if info else {}
        meta["source_split"] = _source_split(prefix)
        return [RawSample(pad_bodies(x, max_bodies), label, name, meta, where)]

    items = [(n, (lambda a=a, pr=pr, d=d, n=n, l=l, i=i: load(a, pr, d, n, l, i)))
             for a, pr, d, names, labels in parts for i, (n, l) in enumerate(zip(names, labels))]
    cols = ("setup", "camera", "subject", "replication") if all(ntu_meta(n) for n in all_names) else ()
    return RawSource(class_names, layout, dataset, items, meta_columns=cols + ("source_split",))


def _npz(path: Path):
    if not path.is_file():
        raise SmieError(f"{path}: no such file")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise SmieError(f"{path}: not a readable .npz archive ({exc})") from None


def read_ctrgcn(path: Path, *, max_bodies: int = 2, dataset: str | None = None, **_: object) -> RawSource:
    """A CTR-GCN ``.npz`` (x_train/x_test (N, T, 150), one-hot y_train/y_test) -> :class:`RawSource`."""
    path = Path(path)
    z = _npz(path)
    parts = []
    for split, code in (("train", 0), ("test", 1)):
        if f"x_{split}" not in z.files or f"y_{split}" not in z.files:
            raise SmieError(f"{path}: missing x_{split} or y_{split} (a CTR-GCN file has x_train, y_train, x_test, "
                            f"y_test; found {', '.join(z.files)})")
        x, y = z[f"x_{split}"], z[f"y_{split}"]
        if x.ndim != 3 or x.shape[2] != 150:
            raise SmieError(f"{path}: x_{split} has shape {x.shape}, expected (N, T, 150) = 2 bodies x 25 joints x 3")
        if y.ndim != 2 or y.shape[0] != x.shape[0]:
            raise SmieError(f"{path}: y_{split} has shape {y.shape}, expected one-hot (N={x.shape[0]}, K)")
        parts.append((split, code, x, np.argmax(y, axis=1), y.shape[1]))
    K = parts[0][4]
    dataset = dataset or {60: "ntu60", 120: "ntu120"}.get(K)
    if dataset is None:
        raise SmieError(f"{path}: one-hot labels have {K} classes; pass --dataset to name the class table")
    class_names = class_names_for(dataset, np.concatenate([p[3] for p in parts]), str(path))

    def load(split: str, code: int, x: np.ndarray, label: int, i: int):
        where = f"{path} (x_{split}[{i}])"
        seq = x[i].astype(np.float32).reshape(-1, 2, 25, 3).transpose(3, 0, 2, 1)
        check_finite(seq, where)
        return [RawSample(pad_bodies(seq, max_bodies), int(label), f"{path.stem}_{split}_{i:06d}",
                          {"source_split": code}, where)]

    items = [(f"{split}_{i}", (lambda s=split, c=code, x=x, l=lab, i=i: load(s, c, x, l, i)))
             for split, code, x, labels, _ in parts for i, lab in enumerate(labels)]
    return RawSource(class_names, "ntu-25", dataset, items, meta_columns=("source_split",))


def read_npz(path: Path, *, max_bodies: int = 2, dataset: str | None = None, **_: object) -> RawSource:
    """smie's generic ``.npz`` (see the module docstring) -> :class:`RawSource`."""
    path = Path(path)
    z = _npz(path)
    missing = [k for k in ("data", "label", "class_names") if k not in z.files]
    if "layout" not in z.files and "joint_names" not in z.files:
        missing.append("layout (or joint_names, bones and center)")
    if missing:
        raise SmieError(f"{path}: missing {', '.join(missing)} (an smie npz needs data, label, class_names and a "
                        "layout: a preset name or the layout as data)")
    data, labels = z["data"], z["label"]
    if data.ndim != 5:
        raise SmieError(f"{path}: data has shape {data.shape}, expected (N, C, T, V, M)")
    N, C, T, V, M = data.shape
    if C != 3:
        raise SmieError(f"{path}: data has C={C} channels, expected 3 (x, y, z or x, y, score)")
    if labels.shape != (N,) or not np.issubdtype(labels.dtype, np.integer):
        raise SmieError(f"{path}: label must be ({N},) integers, got {labels.dtype} {labels.shape}")
    class_names = tuple(str(c) for c in z["class_names"].reshape(-1))
    layout = _npz_layout(z, path, V)
    if layout.num_joints != V:
        raise SmieError(f"{path}: layout {layout.name} has {layout.num_joints} joints but data has V={V}")
    optional = {}
    for key in ("lengths", "subject", "sample_id"):
        if key in z.files:
            optional[key] = z[key]
            if optional[key].shape != (N,):
                raise SmieError(f"{path}: {key} has shape {optional[key].shape}, expected ({N},)")
    if "dataset" in z.files:
        dataset = str(z["dataset"])
    dataset = dataset or path.stem
    ids = [str(s) for s in optional.get("sample_id", [f"{path.stem}_{i:06d}" for i in range(N)])]
    lengths = optional.get("lengths")

    def load(i: int):
        where = f"{path} (sample {i}, {ids[i]})"
        check_label(int(labels[i]), len(class_names), where)
        x = np.asarray(data[i], dtype=np.float32)
        if lengths is not None:
            if not 0 < int(lengths[i]) <= T:
                raise SmieError(f"{where}: length {int(lengths[i])} is outside 1..{T}")
            x = x[:, : int(lengths[i])]
        check_finite(x, where)
        meta = {"subject": int(optional["subject"][i])} if "subject" in optional else {}
        return [RawSample(pad_bodies(x, max_bodies), int(labels[i]), ids[i], meta, where)]

    items = [(ids[i], (lambda i=i: load(i))) for i in range(N)]
    return RawSource(class_names, layout.name, dataset, items,
                     meta_columns=("subject",) if "subject" in optional else (), layout_spec=custom_spec(layout))


_LAYOUT_KEYS = ("joint_names", "bones", "center", "graph_center", "up_axis")


def _npz_layout(z, path: Path, V: int):
    """The npz's preset (``layout``) or its layout as data (``joint_names``, ``bones``, ``center`` ...)."""
    if "joint_names" not in z.files:
        stray = [k for k in _LAYOUT_KEYS if k in z.files]
        if stray:
            raise SmieError(f"{path}: has {', '.join(stray)} but no joint_names; a custom layout needs joint_names, "
                            "bones and center")
        return get_layout(str(z["layout"]))
    name = str(z["layout"]) if "layout" in z.files else f"custom-{V}"
    return resolve_layout(name, {k: z[k] for k in _LAYOUT_KEYS if k in z.files}, str(path))
