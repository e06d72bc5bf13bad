"""Class tables of the known data sets and resolution of a class list from a cache, a data set or a file.

The tables live in ``pipeline/data/classes/<dataset>.tsv`` with columns ``index`` (0-based label),
``code`` (how the source names the class: ``A001`` in NTU file names, the official PKU-MMD action id that raw
PKU-MMD label files use, ``a01`` in MSR Action3D file names) and ``name``.

- ``ntu60`` / ``ntu120``: the official NTU RGB+D class names, index i = action A(i+1).
- ``pku51``: PKU-MMD's 51 actions in alphabetical order, the index the ZSL papers (SMIE, STAR, SA-DVAE) use;
  the official PKU-MMD action ids are alphabetical too, so ``code`` = index + 1.
- ``msr``: MSR Action3D's 20 actions, index i = action a(i+1).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from smie.features.store import SmieError

CLASS_DIR = Path(__file__).with_name("classes")
DATASETS = ("ntu60", "ntu120", "pku51", "msr")


@dataclass(frozen=True)
class ClassList:
    """Class names (index = label), the data set they belong to (None for a user file) and where they came from."""

    names: tuple[str, ...]
    dataset: str | None
    source: str

    def __len__(self) -> int:
        return len(self.names)


@lru_cache(maxsize=None)
def _rows(dataset: str) -> tuple[tuple[int, str, str], ...]:
    if dataset not in DATASETS:
        raise SmieError(f"no class table for data set {dataset!r}; known: {', '.join(DATASETS)}")
    with open(CLASS_DIR / f"{dataset}.tsv", encoding="utf-8", newline="") as fh:
        rows = tuple((int(r["index"]), r["code"], r["name"]) for r in csv.DictReader(fh, delimiter="\t"))
    if [i for i, _, _ in rows] != list(range(len(rows))):
        raise SmieError(f"{CLASS_DIR / dataset}.tsv: indices are not 0..K-1 in order")
    return rows


def class_table(dataset: str) -> tuple[str, ...]:
    """The class names of a known data set (``ntu60``, ``ntu120``, ``pku51``, ``msr``), index = label."""
    return tuple(name for _, _, name in _rows(dataset))


def class_codes(dataset: str) -> tuple[str, ...]:
    """The source codes of a known data set's classes (``A001``..., PKU-MMD action ids ``1``..., ``a01``...)."""
    return tuple(code for _, code, _ in _rows(dataset))


def read_class_file(path: str | Path) -> tuple[str, ...]:
    """Class names from a user file: one name per line, or a tsv/csv whose header has a ``name`` column.

    A ``name``/``label`` header column is used when present (``.tsv`` tab-separated, ``.csv`` comma-separated);
    otherwise every non-blank line is one name. Duplicates and an empty list are errors.
    """
    p = Path(path)
    if not p.is_file():
        raise SmieError(f"{p}: class file not found")
    try:
        lines = p.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise SmieError(f"{p}: class file is not UTF-8 text ({exc})") from None
    delim = "\t" if p.suffix.lower() == ".tsv" else "," if p.suffix.lower() == ".csv" else None
    names: list[str]
    header = [h.strip().lower() for h in lines[0].split(delim)] if lines and delim else []
    col = next((header.index(c) for c in ("name", "label") if c in header), None)
    if delim and col is None:
        raise SmieError(f"{p}: line 1: a {p.suffix} class file needs a 'name' column in its header, found {header}")
    if col is not None:
        names = []
        for lineno, row in enumerate(csv.reader(lines[1:], delimiter=delim), start=2):
            if not row:
                continue
            if len(row) <= col:
                raise SmieError(f"{p}: line {lineno}: no value in the 'name' column")
            names.append(row[col].strip())
    else:
        names = [line.strip() for line in lines if line.strip()]
    if not names:
        raise SmieError(f"{p}: class file lists no class names")
    if any(not n for n in names):
        raise SmieError(f"{p}: class file has an empty class name")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SmieError(f"{p}: class file repeats class names: {', '.join(dupes)}")
    return tuple(names)


def resolve_classes(skeletons=None, dataset: str | None = None, classes_file=None) -> ClassList:
    """The class list from exactly one source: a skeleton cache, a known data set name or a class file."""
    given = [s for s in (skeletons, dataset, classes_file) if s is not None]
    if len(given) != 1:
        raise SmieError("give exactly one source of class names: a skeleton cache, a data set name or a class file")
    if skeletons is not None:
        from smie.features.skeletons import read_skeleton_header

        header = read_skeleton_header(skeletons)
        return ClassList(header.class_names, header.dataset or None, f"skeletons:{skeletons}")
    if dataset is not None:
        return ClassList(class_table(dataset), dataset, f"dataset:{dataset}")
    return ClassList(read_class_file(classes_file), None, f"file:{classes_file}")
