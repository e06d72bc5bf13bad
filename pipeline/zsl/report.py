"""``smie report RUN...``: one table row per run directory (SMIE or baseline), from its ``metrics.json``.

A directory written for several splits (it holds ``summary.json`` and one run per split) expands to its runs.
Columns: run, method, split, setting, then every headline number of the one metrics schema
(:data:`smie.pipeline.zsl.results.COLUMNS`: ZSL top-1 and mean per-class accuracy at the validation-selected
epoch, the last-epoch and the test-selected ("oracle", not a valid estimate) top-1, GZSL S/U/H with calibrated
stacking and H with the entropy gate), which seen samples GZSL tested, and the selection that produced the numbers.
Older run directories hold the same ``metrics.json`` layout and report the same way.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from smie.features.store import SmieError
from smie.pipeline.zsl.results import COLUMNS as METRICS, metric, row

COLUMNS = ("run", "method", "split", "setting", *(c.name for c in METRICS), "gzsl_seen_samples", "selection")


def _runs(paths) -> list[Path]:
    out = []
    for p in map(Path, paths):
        if (p / "metrics.json").is_file():
            out.append(p)
        elif (p / "summary.json").is_file():
            out += sorted(q for q in p.iterdir() if (q / "metrics.json").is_file())
        else:
            raise SmieError(f"{p}: not a run directory (no metrics.json or summary.json)")
    return out


def report(run_dirs: list[str | os.PathLike]):
    """pandas DataFrame with one row per run (columns ``COLUMNS``)."""
    import pandas as pd

    rows = []
    for run in _runs(run_dirs):
        try:
            m = json.loads((run / "metrics.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SmieError(f"{run / 'metrics.json'}: unreadable ({exc})") from None
        sel = m.get("selection", {})
        setting = m.get("setting", {})
        rows.append(dict(
            run=str(run), method=m.get("method", "?"), split=m.get("split", "?"),
            setting=", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in setting.items()),
            **row(m), gzsl_seen_samples=metric(m, ("gzsl", "seen_samples"), default=""),
            selection=f"val epoch {sel.get('epoch', '?')} (val acc {sel.get('val_acc', float('nan')):.4f})"))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def write_report(run_dirs: list[str | os.PathLike], csv_path: str | os.PathLike | None = None) -> str:
    """The table of ``report(run_dirs)`` as printable text; also written as CSV to ``csv_path`` when given."""
    table = report(run_dirs)
    if csv_path:
        table.to_csv(csv_path, index=False)
    return table.to_string(index=False)
