"""What every reader returns, plus the small parsing checks the readers share.

A reader turns one input path into a :class:`RawSource`: the class table, layout and data set name known up
front, and a list of ``(name, load)`` items, each ``load()`` returning the :class:`RawSample` s of one input
unit (a file, a labelled segment, an array row). Loading lazily keeps memory bounded for NTU-120 sized inputs;
:func:`smie.pipeline.data.readers.load_raw` materialises everything for small inputs and tests.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from smie.features.store import SmieError


@dataclass
class RawSample:
    """One raw sequence: ``data`` (C, T, V, M) float32 before preprocessing, its label and metadata.

    ``meta`` maps column names (subject, setup, camera, replication, ...) to ints (-1 unknown); ``source`` names
    the file (and line or row) it came from, for error messages.
    """

    data: np.ndarray
    label: int
    sample_id: str
    meta: dict[str, int] = field(default_factory=dict)
    source: str = ""


@dataclass
class RawSource:
    """A lazily read input: ``items`` are ``(name, load)`` pairs; ``load()`` returns that unit's samples.

    ``layout`` names the joint layout, ``layout_spec`` is a custom layout as data (``Layout.spec()``; None for a
    preset); :func:`smie.pipeline.data.layouts.layout_of` builds it. An empty ``class_names`` means the input
    carries no labels (every sample's label is -1): fine for ``predict`` and ``show``, refused by ``prepare``.
    ``info`` is what the reader knows about the input as a whole (frame rates, units), recorded in the cache's
    provenance."""

    class_names: tuple[str, ...]
    layout: str
    dataset: str
    items: list[tuple[str, Callable[[], list[RawSample]]]]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    meta_columns: tuple[str, ...] = ()
    layout_spec: dict | None = None
    info: dict = field(default_factory=dict)


@dataclass
class RawDataset:
    """Every sample of an input in memory (see :func:`smie.pipeline.data.readers.load_raw`)."""

    samples: list[RawSample]
    class_names: tuple[str, ...]
    layout: str
    dataset: str
    skipped: list[tuple[str, str]]
    layout_spec: dict | None = None
    info: dict = field(default_factory=dict)


NTU_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")


def ntu_meta(name: str) -> tuple[dict[str, int], int] | None:
    """``({setup, camera, subject, replication}, label)`` from an NTU sample name, or None if it is not one."""
    m = NTU_NAME.search(name)
    if not m:
        return None
    s, c, p, r, a = (int(g) for g in m.groups())
    return {"setup": s, "camera": c, "subject": p, "replication": r}, a - 1


def check_finite(data: np.ndarray, where: str) -> None:
    if not np.all(np.isfinite(data)):
        raise SmieError(f"{where}: contains non-finite values (NaN or inf)")


def check_label(label: int, num_classes: int, where: str) -> None:
    if not 0 <= label < num_classes:
        raise SmieError(f"{where}: label {label} is outside the {num_classes}-class table (0..{num_classes - 1})")


def dataset_from_labels(labels, names, dataset: str | None, where: str, num_joints: int) -> str:
    """The data set of array inputs: as given, else NTU-60/120 from NTU sample names, else ask for it."""
    from smie.pipeline.data.classes import DATASETS

    if dataset is not None:
        return dataset
    top = int(np.max(labels)) if len(labels) else -1
    if num_joints == 25 and names and all(NTU_NAME.search(str(n)) for n in names):
        return "ntu60" if top < 60 else "ntu120"
    raise SmieError(f"{where}: cannot tell which data set these samples belong to; "
                    f"pass --dataset (one of {', '.join(DATASETS)})")


def class_names_for(dataset: str, labels, where: str) -> tuple[str, ...]:
    """The known class table of ``dataset``, checking every label lies inside it."""
    from smie.pipeline.data.classes import class_table

    names = class_table(dataset)
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
        bad = sorted(set(labels[(labels < 0) | (labels >= len(names))].tolist()))[:5]
        raise SmieError(f"{where}: labels {bad} are outside the {len(names)}-class {dataset} table")
    return names


def list_files(path: Path, pattern: str, what: str) -> list[Path]:
    """Files matching ``pattern`` in directory ``path`` (sorted), or ``[path]`` for a single file."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise SmieError(f"{path}: no such file or directory")
    files = sorted(path.glob(pattern))
    if not files:
        raise SmieError(f"{path}: no {what} files ({pattern}) found")
    return files


def pad_bodies(data: np.ndarray, max_bodies: int) -> np.ndarray:
    """(C, T, V, M') -> (C, T, V, max_bodies): keep the first ``max_bodies`` bodies, pad with zeros."""
    C, T, V, M = data.shape
    out = np.zeros((C, T, V, max_bodies), np.float32)
    out[..., : min(M, max_bodies)] = data[..., :max_bodies]
    return out


def numbers(row: list[str]) -> bool:
    """Whether every field of a split text line parses as a float."""
    try:
        [float(v) for v in row]
    except ValueError:
        return False
    return True
