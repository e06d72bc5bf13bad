"""Published numbers as data: the figures of the papers' tables that smie's results are set beside
(``pipeline/data/published.json``), each with where it is published and where it was read to check it.

``published(table=..., method=..., split=..., metric=...)`` filters the numbers; ``tables()`` describes each
table (title, paper, the methods and splits it compares, and what of it is not checked). Values are percent;
metrics: ``zsl`` (ZSL top-1 on the unseen classes), ``gzsl_seen``, ``gzsl_unseen``, ``gzsl_h`` (GZSL accuracy
on the seen and the unseen samples, and their harmonic mean). Splits are registry ids (``synse:ntu60:55/5``).
The file is checked when first read: known splits and metrics, values in [0, 100], a source for every number.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from smie.features.store import SmieError
from smie.pipeline.data.splits import registry

PUBLISHED_PATH = Path(__file__).with_name("published.json")
METRICS = ("zsl", "gzsl_seen", "gzsl_unseen", "gzsl_h")


@dataclass(frozen=True)
class PublishedNumber:
    """One published figure: ``value`` (percent) of ``method`` on ``split`` for ``metric`` in ``table``;
    ``variant`` distinguishes rows of one method (e.g. MSF's text mode and encoder); ``source`` says where it is
    published, ``checked`` where it was read."""

    table: str
    method: str
    split: str
    metric: str
    value: float
    source: str
    checked: str
    variant: dict = field(default_factory=dict, compare=False)


@lru_cache(maxsize=1)
def _load() -> tuple[dict, tuple[PublishedNumber, ...]]:
    doc = json.loads(PUBLISHED_PATH.read_text(encoding="utf-8"))
    known = set(registry()["splits"])
    out = []
    for i, e in enumerate(doc["numbers"]):
        n = PublishedNumber(**e)
        if n.table not in doc["tables"] or n.split not in known or n.metric not in METRICS:
            raise SmieError(f"{PUBLISHED_PATH}: number {i} names an unknown table, split or metric: {e}")
        if not 0.0 <= n.value <= 100.0 or not n.source or not n.checked:
            raise SmieError(f"{PUBLISHED_PATH}: number {i} is not a percentage with a source and a check: {e}")
        out.append(n)
    return doc["tables"], tuple(out)


def tables() -> dict[str, dict]:
    """Every table: ``title``, ``paper``, ``methods``, ``splits``, ``metrics`` and ``not_checked`` (if any)."""
    return dict(_load()[0])


def published(table: str | None = None, method: str | None = None, split: str | None = None,
              metric: str | None = None) -> list[PublishedNumber]:
    """The published numbers matching every given field, in file order."""
    want = {k: v for k, v in dict(table=table, method=method, split=split, metric=metric).items() if v is not None}
    return [n for n in _load()[1] if all(getattr(n, k) == v for k, v in want.items())]
