"""Per-sample partition codes: which samples train the backbone, select checkpoints, and test ZSL/GZSL.

Codes (``PARTITIONS``): 0 ``seen_train``, 1 ``seen_val``, 2 ``seen_test``, 3 ``unseen_test``, 4 ``unused``.

Without a protocol, each seen class's samples are shuffled (seeded, per class, so the split is stratified) and
cut into train / val / test by ``val_fraction`` / ``test_fraction``; every unseen-class sample is
``unseen_test``. With an official protocol the train/test partition comes from the sample metadata:

- ``ntu-xsub``: NTU-60/120 cross-subject (the official training performers; the NTU-120 list extends NTU-60's).
- ``ntu-xview``: NTU-60 cross-view, cameras 2 and 3 train.
- ``ntu-xset``: NTU-120 cross-setup, even setup ids train.
- ``msr-xsub``: MSR Action3D cross-subject, subjects 1, 3, 5, 7, 9 train.

Seen samples of the train partition become ``seen_train``/``seen_val`` (``val_fraction`` per class, seeded);
seen samples of the test partition ``seen_test``; unseen samples of the test partition ``unseen_test``; unseen
samples of the train partition ``unused`` (the backbone must never see them, and they are not the official test).
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from smie.features.store import SmieError


class SplitLike(Protocol):
    """What partitioning needs of a split (``smie.pipeline.data.splits.Split`` has it); a protocol, so this
    module does not import ``splits`` (which imports it)."""

    seen: tuple[int, ...]
    unseen: tuple[int, ...]

PARTITIONS: dict[str, int] = {"seen_train": 0, "seen_val": 1, "seen_test": 2, "unseen_test": 3, "unused": 4}
PARTITION_NAMES: tuple[str, ...] = tuple(PARTITIONS)
SEEN_TRAIN, SEEN_VAL, SEEN_TEST, UNSEEN_TEST, UNUSED = range(5)

NTU_XSUB_TRAIN_SUBJECTS = (
    1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38, 45, 46, 47, 49, 50, 52, 53, 54,
    55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103,
)
# protocol -> (meta column, rule giving True for the training partition)
PROTOCOLS = {
    "ntu-xsub": ("subject", lambda v: np.isin(v, NTU_XSUB_TRAIN_SUBJECTS)),
    "ntu-xview": ("camera", lambda v: np.isin(v, (2, 3))),
    "ntu-xset": ("setup", lambda v: v % 2 == 0),
    "msr-xsub": ("subject", lambda v: np.isin(v, (1, 3, 5, 7, 9))),
}


def stratified_split(labels: np.ndarray, index: np.ndarray, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Cut ``index`` per class into len(fractions)+1 parts: the first gets the remainder, so never empty."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for cls in np.unique(labels[index]):
        members = rng.permutation(index[labels[index] == cls])
        n = len(members)
        counts = [int(round(n * f)) for f in fractions]
        while sum(counts) > n - 1 and any(counts):
            counts[int(np.argmax(counts))] -= 1
        start = n - sum(counts)
        parts[0] += members[:start].tolist()
        for k, c in enumerate(counts):
            parts[k + 1] += members[start : start + c].tolist()
            start += c
    return [np.asarray(p, dtype=np.int64) for p in parts]


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise SmieError(f"{name} must be in [0, 1), got {value}")


def assign_partitions(
    labels: np.ndarray,
    meta: dict[str, np.ndarray] | None,
    split: SplitLike,
    protocol: str | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> np.ndarray:
    """Partition code per sample, int8 (N,); see the module docstring for the rules.

    ``labels`` (N,) index the split's classes; ``meta`` holds per-sample int columns (needed by protocols).
    """
    labels = np.asarray(labels, dtype=np.int64)
    (N,) = labels.shape
    _check_fraction("val_fraction", val_fraction)
    _check_fraction("test_fraction", test_fraction)
    if N and (labels.min() < 0 or labels.max() >= split.num_classes):
        raise SmieError(f"labels lie outside 0..{split.num_classes - 1}, the classes of split {split.id}")
    is_unseen = np.isin(labels, split.unseen)
    out = np.full(N, UNUSED, dtype=np.int8)
    seen_idx = np.flatnonzero(~is_unseen)
    if protocol is None:
        if val_fraction + test_fraction >= 1.0:
            raise SmieError("val_fraction + test_fraction must leave some seen samples for training")
        train, val, test = stratified_split(labels, seen_idx, (val_fraction, test_fraction), seed)
        out[is_unseen] = UNSEEN_TEST
    else:
        if protocol not in PROTOCOLS:
            raise SmieError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
        column, rule = PROTOCOLS[protocol]
        values = None if meta is None else meta.get(column)
        if values is None:
            raise SmieError(f"protocol {protocol} needs the per-sample '{column}' column, which these data lack")
        values = np.asarray(values)
        if values.shape != (N,):
            raise SmieError(f"meta column '{column}' has shape {values.shape}, expected ({N},)")
        if np.any(values < 0):
            raise SmieError(f"protocol {protocol}: {int(np.sum(values < 0))} samples have an unknown '{column}'")
        in_train = rule(values)
        train, val = stratified_split(labels, seen_idx[in_train[seen_idx]], (val_fraction,), seed)
        test = seen_idx[~in_train[seen_idx]]
        out[is_unseen & ~in_train] = UNSEEN_TEST
        out[is_unseen & in_train] = UNUSED
    out[train], out[val], out[test] = SEEN_TRAIN, SEEN_VAL, SEEN_TEST
    return out
