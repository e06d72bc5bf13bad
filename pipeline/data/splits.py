"""Seen/unseen class splits: a versioned registry of the published splits plus seeded and user splits.

Spec grammar (``smie splits`` lists the registry; ``resolve_split`` takes one split, ``resolve_splits`` a set):

- ``synse:ntu60:55/5``, ``synse:ntu60:48/12``, ``synse:ntu120:110/10``, ``synse:ntu120:96/24``: the SynSE
  benchmark splits, with the GZSL validation lists of MSF-GZSSAR (``rv*_0.npy``) as ``val_unseen``.
- ``smie:split_1`` .. ``smie:split_9``: SMIE's optimized-setting folds (1-3 NTU-60 55/5, 4-6 NTU-120 110/10,
  7-9 PKU-MMD 46/5). ``smie:ntu60``, ``smie:ntu120``, ``smie:pku51`` name the 3-fold sets (``resolve_splits``).
- ``star:pku51:46/5``, ``star:pku51:39/12``: STAR's PKU-MMD splits.
- ``purls:ntu60:40/20``, ``purls:ntu60:30/30``, ``purls:ntu120:80/40``, ``purls:ntu120:60/60``: PURLS' harder splits.
- ``random:U:seed=S``: U unseen classes drawn with seed S from any data set's ``num_classes``;
  ``random:U:seeds=0,1,2`` and ``random:U:folds=3`` (seeds 0..2) are fold sets.
- ``file:PATH``: a user split, JSON ``{"unseen": [...], "val_unseen": [...]}`` (``val_unseen`` optional; a bare
  JSON list means the unseen list) or a ``.npy`` of unseen indices.
- A comma-separated list of the above is a fold set for ``resolve_splits``.

Indices are 0-based labels of the data set's class table. Where a split has no published validation list,
``val_unseen`` is drawn from the seen classes with a seed derived from the split id (as many as unseen, at
least 1 and at most half the seen classes, so that selection still has classes to train on: PURLS 30/30 and
60/60 get 15 and 30), so it is the same on every machine. Per-sample partitions live in :mod:`smie.pipeline.data.partitions`.
"""
from __future__ import annotations

import json
import re
import textwrap
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from smie.features.store import SmieError
from smie.pipeline.data.partitions import PARTITION_NAMES, PARTITIONS, PROTOCOLS, assign_partitions  # noqa: F401

REGISTRY_PATH = Path(__file__).with_name("splits.json")
_SCHEMES = ("synse:", "smie:", "star:", "purls:", "random:", "file:")


@dataclass(frozen=True)
class Split:
    """One seen/unseen partition of ``num_classes`` classes; ``val_unseen`` are seen classes posing as unseen."""

    id: str
    num_classes: int
    seen: tuple[int, ...]
    unseen: tuple[int, ...]
    val_unseen: tuple[int, ...]


@lru_cache(maxsize=1)
def registry() -> dict:
    """The parsed ``splits.json`` (keys ``version``, ``splits``, ``fold_sets``)."""
    with open(REGISTRY_PATH, encoding="utf-8") as fh:
        return json.load(fh)


def val_count(unseen_count: int, seen_count: int) -> int:
    """How many seen classes pose as unseen: as many as unseen, at least 1, at most half the seen classes."""
    return max(1, min(unseen_count, seen_count // 2))


def _derived_val(split_id: str, seen: list[int], count: int) -> list[int]:
    rng = np.random.default_rng(zlib.crc32(split_id.encode("utf-8")))
    k = val_count(count, len(seen))
    return sorted(int(c) for c in rng.choice(seen, size=k, replace=False))


def _build(split_id: str, num_classes: int, unseen, val_unseen=None, where: str | None = None) -> Split:
    where = where or split_id
    if num_classes < 2:
        raise SmieError(f"split {where}: needs at least 2 classes, got num_classes={num_classes}")
    try:
        unseen = [int(c) for c in unseen]
        val = None if val_unseen is None else [int(c) for c in val_unseen]
    except (TypeError, ValueError):
        raise SmieError(f"split {where}: class indices must be integers") from None
    for name, idx in (("unseen", unseen), ("val_unseen", val or [])):
        bad = [c for c in idx if not 0 <= c < num_classes]
        if bad:
            raise SmieError(f"split {where}: {name} indices {bad} are outside 0..{num_classes - 1} "
                            f"(the data set has {num_classes} classes)")
        if len(set(idx)) != len(idx):
            raise SmieError(f"split {where}: {name} lists a class twice")
    if not unseen:
        raise SmieError(f"split {where}: no unseen classes")
    seen = [c for c in range(num_classes) if c not in set(unseen)]
    if not seen:
        raise SmieError(f"split {where}: every class is unseen; nothing left to train on")
    if val is None:
        val = _derived_val(split_id, seen, len(unseen))
    elif not val:
        raise SmieError(f"split {where}: val_unseen is empty")
    overlap = sorted(set(val) & set(unseen))
    if overlap:
        raise SmieError(f"split {where}: val_unseen must be seen classes, but {overlap} are unseen")
    return Split(split_id, num_classes, tuple(seen), tuple(sorted(unseen)), tuple(sorted(val)))


def _from_registry(spec: str, num_classes: int, dataset: str | None) -> Split:
    entry = registry()["splits"][spec]
    if dataset is not None and dataset != entry["dataset"]:
        raise SmieError(f"split {spec} is defined on {entry['dataset']}, but the data are {dataset}")
    from smie.pipeline.data.classes import class_table

    expected = len(class_table(entry["dataset"]))
    if num_classes != expected:
        raise SmieError(f"split {spec} is a {entry['dataset']} split of {expected} classes, "
                        f"but the data have {num_classes} classes")
    return _build(spec, num_classes, entry["unseen"], entry.get("val_unseen"))


def _from_file(spec: str, num_classes: int) -> Split:
    path = Path(spec[len("file:"):]).expanduser()
    if not path.is_file():
        raise SmieError(f"{path}: split file not found")
    val = None
    if path.suffix.lower() == ".npy":
        try:
            unseen = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise SmieError(f"{path}: not a readable .npy of class indices ({exc})") from None
        if unseen.ndim != 1 or not np.issubdtype(unseen.dtype, np.integer):
            raise SmieError(f"{path}: expected a 1-D integer array of unseen class indices, "
                            f"got {unseen.dtype} {unseen.shape}")
        unseen = unseen.tolist()
    else:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise SmieError(f"{path}: not valid JSON ({exc})") from None
        if isinstance(doc, list):
            unseen = doc
        elif isinstance(doc, dict) and isinstance(doc.get("unseen"), list):
            unseen, val = doc["unseen"], doc.get("val_unseen")
            if val is not None and not isinstance(val, list):
                raise SmieError(f"{path}: 'val_unseen' must be a list of class indices")
        else:
            raise SmieError(f"{path}: expected a JSON object with an 'unseen' list (and optional 'val_unseen')")
    return _build(f"file:{path}", num_classes, unseen, val, where=str(path))


def _random(unseen_count: int, seed: int, num_classes: int) -> Split:
    split_id = f"random:{unseen_count}:seed={seed}"
    if not 0 < unseen_count < num_classes:
        raise SmieError(f"split {split_id}: needs 0 < unseen count < {num_classes} (the number of classes)")
    rng = np.random.default_rng(seed)
    unseen = rng.choice(num_classes, size=unseen_count, replace=False).tolist()
    seen = [c for c in range(num_classes) if c not in set(unseen)]
    val = sorted(int(c) for c in rng.choice(seen, size=val_count(unseen_count, len(seen)), replace=False))
    return _build(split_id, num_classes, unseen, val)


_RANDOM = re.compile(r"^random:(\d+):(seed|seeds|folds)=([\d,\s]+)$")


def _random_specs(spec: str) -> tuple[int, list[int], bool]:
    m = _RANDOM.match(spec.strip())
    if not m:
        raise SmieError(f"split {spec!r}: expected random:U:seed=S, random:U:seeds=S1,S2,... or random:U:folds=N")
    count, kind, value = int(m.group(1)), m.group(2), m.group(3)
    numbers = [int(v) for v in value.replace(" ", "").split(",") if v]
    if kind == "folds":
        if len(numbers) != 1 or numbers[0] < 1:
            raise SmieError(f"split {spec!r}: folds= takes one positive number")
        return count, list(range(numbers[0])), True
    if kind == "seed" and len(numbers) != 1:
        raise SmieError(f"split {spec!r}: seed= takes one number; use seeds= for several")
    return count, numbers, kind != "seed"


def resolve_split(spec: str, num_classes: int, dataset: str | None = None) -> Split:
    """One split from a spec (see the module docstring); :class:`SmieError` for a fold set or a bad spec."""
    spec = spec.strip()
    reg = registry()
    if spec in reg["splits"]:
        return _from_registry(spec, num_classes, dataset)
    if spec in reg["fold_sets"]:
        raise SmieError(f"split {spec} is a set of {len(reg['fold_sets'][spec])} folds "
                        f"({', '.join(reg['fold_sets'][spec])}); pick one")
    if spec.startswith("file:"):
        return _from_file(spec, num_classes)
    if spec.startswith("random:"):
        count, seeds, is_set = _random_specs(spec)
        if is_set:
            raise SmieError(f"split {spec} is a set of {len(seeds)} folds; use random:{count}:seed=S for one")
        return _random(count, seeds[0], num_classes)
    known = ", ".join(list(reg["splits"]) + list(reg["fold_sets"]))
    raise SmieError(f"unknown split {spec!r}; known: {known}, random:U:seed=S, file:PATH")


def _pieces(spec: str) -> list[str]:
    pieces: list[str] = []
    for token in spec.split(","):
        if pieces and not token.strip().startswith(_SCHEMES):
            pieces[-1] += "," + token
        else:
            pieces.append(token.strip())
    return [p for p in pieces if p]


def resolve_splits(spec: str, num_classes: int, dataset: str | None = None) -> list[Split]:
    """Every split a spec names: a fold set (``smie:ntu60``, ``random:5:folds=3``), a comma list, or one split."""
    out: list[Split] = []
    for piece in _pieces(spec):
        if piece in registry()["fold_sets"]:
            out += [resolve_split(s, num_classes, dataset) for s in registry()["fold_sets"][piece]]
        elif piece.startswith("random:"):
            count, seeds, _ = _random_specs(piece)
            out += [_random(count, s, num_classes) for s in seeds]
        else:
            out.append(resolve_split(piece, num_classes, dataset))
    if not out:
        raise SmieError(f"split spec {spec!r} names no split")
    return out


def describe_splits(dataset: str | None = None) -> str:
    """Every registry split (of ``dataset``, if given) with its seen, unseen and validation class names."""
    from smie.pipeline.data.classes import class_table

    reg = registry()
    lines = [f"splits registry v{reg['version']}"]
    for sid, entry in reg["splits"].items():
        if dataset is not None and entry["dataset"] != dataset:
            continue
        names = class_table(entry["dataset"])
        split = resolve_split(sid, len(names), entry["dataset"])
        lines.append(f"\n{sid}  [{entry['dataset']}: {len(split.seen)} seen / {len(split.unseen)} unseen]")
        lines.append(f"  source: {entry['source']}")
        val_note = "published: " + entry["val_source"] if "val_source" in entry else "derived (seeded)"
        for label, idx in (("unseen", split.unseen), (f"val_unseen ({val_note})", split.val_unseen),
                           ("seen", split.seen)):
            text = "; ".join(f"{i} {names[i]}" for i in idx)
            lines.append(textwrap.fill(text, 110, initial_indent=f"  {label}: ", subsequent_indent="      "))
    sets = [(k, v) for k, v in reg["fold_sets"].items() if dataset is None or k.endswith(":" + dataset)]
    if sets:
        lines.append("\nfold sets: " + "; ".join(f"{k} = {', '.join(v)}" for k, v in sets))
    lines.append("also: random:U:seed=S | random:U:seeds=S1,S2 | random:U:folds=N | file:PATH | comma lists")
    return "\n".join(lines)
