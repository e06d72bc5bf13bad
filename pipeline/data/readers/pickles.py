"""Pickled inputs, read through restricted unpicklers: a pickle can run code, so only the types a format needs
are admitted and anything else is refused with a message naming the file.

- AimCLR/CrossCLR label files (``*_label.pkl``): ``(sample_names, labels)`` of lists, tuples, str, int, float.
- PYSKL annotation files: ``{"split": {name: [frame_dir, ...]}, "annotations": [{"frame_dir", "label",
  "keypoint" (M, T, V, C), "keypoint_score" (M, T, V), ...}, ...]}``: builtin containers plus the numpy array,
  dtype and scalar reconstruction functions.

PYSKL reader: every annotation becomes one sample (the ``split`` lists are the official partitions, which the
sample metadata reproduce for NTU names). ``keypoint`` (M, T, V, C) is transposed to (C, T, V, M); 2D keypoints
(C = 2) get ``keypoint_score`` (or 1.0) as third channel, as ST-GCN does for 2D poses. The layout comes from V.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from smie.features.store import SmieError
from smie.pipeline.data.layouts import layout_for_joints
from smie.pipeline.data.readers.base import (
    RawSample,
    RawSource,
    check_finite,
    class_names_for,
    dataset_from_labels,
    ntu_meta,
    pad_bodies,
)

_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("builtins", "slice"), ("collections", "OrderedDict"),
}


class _Restricted(pickle.Unpickler):
    allowed: frozenset = frozenset()
    path = ""

    def find_class(self, module: str, name: str):
        if (module, name) in self.allowed:
            return super().find_class(module, name)
        raise SmieError(f"{self.path}: refusing to unpickle {module}.{name}; "
                        "this file holds objects its format does not need")


def restricted_load(path: Path, allow_numpy: bool) -> object:
    """Unpickle ``path`` admitting only plain containers (and numpy arrays if ``allow_numpy``)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SmieError(f"{path}: cannot be read ({exc})") from None
    unpickler = _Restricted(io.BytesIO(raw), encoding="latin1")
    unpickler.allowed = frozenset(_NUMPY_GLOBALS if allow_numpy else ())
    unpickler.path = str(path)
    try:
        return unpickler.load()
    except SmieError:
        raise
    except Exception as exc:
        raise SmieError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from None


def read_aimclr_labels(path: Path) -> tuple[list[str], list[int]]:
    """``(sample_names, labels)`` from an AimCLR/CrossCLR ``*_label.pkl``."""
    obj = restricted_load(path, allow_numpy=False)
    if not (isinstance(obj, (list, tuple)) and len(obj) == 2 and all(isinstance(x, (list, tuple)) for x in obj)):
        raise SmieError(f"{path}: expected a pickled (sample_names, labels) pair of lists")
    names, labels = obj
    if len(names) != len(labels):
        raise SmieError(f"{path}: {len(names)} sample names but {len(labels)} labels")
    try:
        return [str(n) for n in names], [int(x) for x in labels]
    except (TypeError, ValueError):
        raise SmieError(f"{path}: labels must be integers") from None


def read_pyskl(path: Path, *, max_bodies: int = 2, dataset: str | None = None, **_: object) -> RawSource:
    """A PYSKL annotation pickle -> :class:`RawSource` (see the module docstring)."""
    path = Path(path)
    obj = restricted_load(path, allow_numpy=True)
    if not isinstance(obj, dict) or not isinstance(obj.get("annotations"), list):
        raise SmieError(f"{path}: expected a PYSKL dict with an 'annotations' list (and a 'split' dict)")
    anns = obj["annotations"]
    if not anns:
        raise SmieError(f"{path}: no annotations")
    for i, a in enumerate(anns):
        if not isinstance(a, dict) or not {"frame_dir", "label", "keypoint"} <= set(a):
            raise SmieError(f"{path}: annotation {i} lacks frame_dir, label or keypoint")
        if not isinstance(a["keypoint"], np.ndarray) or a["keypoint"].ndim != 4:
            raise SmieError(f"{path}: annotation {i} ({a['frame_dir']}): keypoint must be an (M, T, V, C) array")
    V = anns[0]["keypoint"].shape[2]
    layout = layout_for_joints(V)
    names = [str(a["frame_dir"]) for a in anns]
    labels = [int(a["label"]) for a in anns]
    dataset = dataset_from_labels(labels, names, dataset, str(path), V)
    class_names = class_names_for(dataset, labels, str(path))

    def load(i: int):
        a = anns[i]
        where = f"{path} (annotation {i}, {a['frame_dir']})"
        kp = np.asarray(a["keypoint"], dtype=np.float32)
        M, T, Vi, C = kp.shape
        if Vi != V:
            raise SmieError(f"{where}: {Vi} joints, but the file's first annotation has {V}")
        if C == 2:
            score = a.get("keypoint_score")
            score = np.ones((M, T, Vi), np.float32) if score is None else np.asarray(score, np.float32)
            kp = np.concatenate([kp, score[..., None]], axis=-1)
        elif C != 3:
            raise SmieError(f"{where}: keypoints have {C} coordinates, expected 2 or 3")
        check_finite(kp, where)
        info = ntu_meta(a["frame_dir"])
        meta = info[0] if info else {}
        return [RawSample(pad_bodies(kp.transpose(3, 1, 2, 0), max_bodies), labels[i], names[i], meta, where)]

    items = [(names[i], (lambda i=i: load(i))) for i in range(len(anns))]
    cols = ("setup", "camera", "subject", "replication") if all(ntu_meta(n) for n in names) else ()
    return RawSource(class_names, layout.name, dataset, items, meta_columns=cols)
