"""``smie compare``: every method on the same cached features, over splits and seeds, as one table.

Each (method, split, seed) is one ``fit-baseline`` run (:func:`smie.pipeline.zsl.baselines.run.fit_splits`: same caches,
same protocol, same run directory) under ``out/runs/<method>/<split>/seed<k>``. The table has one row per method
and, per split, the ZSL top-1 (at the validation-selected epoch) and the GZSL harmonic mean H (calibrated
stacking, gamma chosen on validation), as mean ± std over seeds, plus their mean over splits; it is written as
``table.md`` and ``table.csv`` (``runs.csv`` holds every run's numbers, the gate's H included) with a bar chart
``table.png``, and printed. The runs go to worker processes (``jobs``, default the CPU cores; the numbers do not
depend on it): :mod:`smie.pipeline.zsl.grid`.

Visual caches and folds: a backbone is trained on one split's seen classes, so a fold set needs one visual
cache per fold. Give several visual caches: with no ``split`` each cache is evaluated on its own split; with
splits, each split is matched to the cache made for it (same split id), or else by position (as many caches as
splits). One cache with several splits is used for all of them (a split whose unseen classes the backbone saw
is refused). A method whose semantic kinds the text cache lacks is reported as n/a with the reason.

Below the per-split table, ``significance.md``/``significance.csv`` give per method and metric (ZSL, H) the mean
over all runs (splits × seeds) with its 95 % Student-t confidence interval, and the paired difference to a
reference method (``reference``; default: the best mean) over the same runs, with a two-sided exact Wilcoxon
signed-rank test (or a paired bootstrap, ``test="bootstrap"``) and Holm's correction across methods
(:mod:`smie.pipeline.zsl.stats`); ``*`` marks a difference significant at 5 % after correction. The chart's
error bars are the same confidence intervals.

Resuming: a finished run directory (``metrics.json``; installed atomically) is reused when ``out/.compare-key``
matches the settings and cache bytes, so a killed compare reruns only unfinished runs and writes the same tables
(recorded ``seconds`` in ``out/.seconds.json``; only ``table.md``'s wall time differs). ``resume=False`` reruns all.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smie.features.store import SmieError, atomic_path, file_sha256, to_json
from smie.pipeline.zsl.compute import Compute
from smie.pipeline.zsl.grid import grid_jobs, run_grid
from smie.pipeline.zsl.results import COLUMNS


@dataclass(frozen=True)
class CompareConfig:
    """``visual`` one cache or several (one per fold); ``methods`` registered method names or ``all``;
    ``epochs_scale`` multiplies every method's default number of epochs (a quick look: 0.2); ``compute``: the
    runs' CPU speed paths (each worker process sets its heap from it); ``budget``: the SMIE family's step budget
    (``paper-steps`` or ``code-epochs``, :mod:`smie.pipeline.zsl.budget`), part of the resume key, so runs made
    under another budget (or before it existed) are not reused."""

    visual: Path | tuple[Path, ...]
    text: Path
    out: Path
    methods: tuple[str, ...] = ("all",)
    split: tuple[str, ...] = ()
    seeds: int = 1
    kinds: tuple[str, ...] = ("label",)
    gzsl: bool = True
    device: str = "auto"
    epochs_scale: float = 1.0
    batch_size: int | None = None
    reference: str | None = None
    test: str = "wilcoxon"
    val_features: str = "auto"
    resume: bool = True
    jobs: int | None = None
    compute: Compute = Compute()
    budget: str = "paper-steps"


def compare_key(cfg: CompareConfig, visuals: list[Path]) -> str:
    """What the runs depend on: the settings that reach a run, and the bytes of every cache."""
    settings = {k: v for k, v in json.loads(to_json(cfg)).items()
                if k not in ("out", "reference", "test", "resume", "jobs", "compute")}
    return hashlib.sha256(to_json([settings, [file_sha256(v) for v in [*visuals, cfg.text]]]).encode()).hexdigest()


def resolve_methods(names) -> list[str]:
    """``names`` (or every registered method for ``all``), each checked against the registry."""
    from smie.pipeline.registry import METHODS

    out = list(METHODS) if "all" in names else list(names)
    bad = [m for m in out if m not in METHODS]
    if bad:
        raise SmieError(f"unknown method(s) {', '.join(bad)}; known: {', '.join(METHODS)}, all")
    return out


def pair_caches(visuals: list[Path], specs: tuple[str, ...]) -> list[tuple[Path, str | None, object]]:
    """(visual cache, split spec or None for the cache's own split, Split) triples by the module docstring's rule."""
    from smie.features.visual import read_visual_header
    from smie.pipeline.data.splits import resolve_splits
    from smie.pipeline.zsl.runner import cache_split

    heads = [read_visual_header(v) for v in visuals]
    own = [cache_split(h) for h in heads]
    if not specs:
        return [(v, None, s) for v, s in zip(visuals, own)]
    splits = []
    for spec in specs:
        found = resolve_splits(spec, len(heads[0].class_names))
        splits += [(spec if len(found) == 1 else s.id, s) for s in found]
    if len(visuals) == 1:
        return [(visuals[0], spec, s) for spec, s in splits]
    by_id = {s.id: v for v, s in zip(visuals, own)}
    if all(s.id in by_id for _, s in splits):
        return [(by_id[s.id], spec, s) for spec, s in splits]
    if len(splits) != len(visuals):
        raise SmieError(f"{len(visuals)} visual caches for {len(splits)} splits: give one cache per split (matched "
                        f"by split id, else by position) or a single cache")
    return [(v, spec, s) for v, (spec, s) in zip(visuals, splits)]


def _cell(values) -> str:
    v = np.asarray(values, dtype=float)
    if not np.isfinite(v).any():
        return "n/a"
    return f"{100 * np.nanmean(v):.1f} ± {100 * np.nanstd(v):.1f}"


def compare(cfg: CompareConfig) -> Path:
    """Run the grid, write ``table.md``, ``table.csv``, ``runs.csv``, ``table.png`` under ``cfg.out``; return
    the markdown table's path."""
    import pandas as pd

    if cfg.seeds < 1:
        raise SmieError("--seeds must be >= 1")
    visuals = [Path(cfg.visual)] if isinstance(cfg.visual, (str, Path)) else [Path(v) for v in cfg.visual]
    if not visuals:
        raise SmieError("give at least one visual cache")
    methods = resolve_methods(cfg.methods)
    pairs = pair_caches(visuals, cfg.split)
    out = Path(cfg.out)
    key, key_file, seconds_file = compare_key(cfg, visuals), out / ".compare-key", out / ".seconds.json"
    reuse = cfg.resume and key_file.is_file() and key_file.read_text().strip() == key
    times = json.loads(seconds_file.read_text()) if reuse and seconds_file.is_file() else {}
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(key_file) as tmp:
        tmp.write_text(key + "\n")

    def finished(res: dict) -> None:
        if res.pop("fresh", False):
            times[res["run"]] = res["seconds"]
            with atomic_path(seconds_file) as tmp:
                tmp.write_text(json.dumps(times, sort_keys=True))

    items = [(method, visual, spec, split.id, seed) for visual, spec, split in pairs for method in methods
             for seed in range(cfg.seeds)]
    wall = time.perf_counter()
    done = run_grid([(cfg, *item, reuse) for item in items], grid_jobs(cfg.jobs, cfg.device, len(items)), finished)
    notes = {item[0]: res["note"] for item, res in zip(items, done) if "note" in res}
    order = {m: i for i, m in enumerate(methods)}
    rows = sorted((dict(res, seconds=times.get(res.pop("run"), float("nan"))) for res in done if "note" not in res),
                  key=lambda r: (order[r["method"]], [s.id for _, _, s in pairs].index(r["split"]), r["seed"]))
    runs = pd.DataFrame(rows, columns=["method", "split", "seed", "seconds", "kinds", "epochs"] +
                        [c.name for c in COLUMNS])
    table = summary_table(runs, methods, [s.id for _, _, s in pairs], notes, cfg.gzsl)
    with atomic_path(out / "runs.csv") as tmp:
        runs.to_csv(tmp, index=False)
    with atomic_path(out / "table.csv") as tmp:
        table.to_csv(tmp, index=False)
    own = {m: k for m, k in zip(runs.method, runs.kinds) if k != "+".join(cfg.kinds)}
    md = markdown(table, notes, cfg, len(pairs), time.perf_counter() - wall, own)
    keys = ("zsl", "h") if cfg.gzsl else ("zsl",)
    sig = significance(runs, [m for m in methods if m not in notes], keys, cfg.reference, cfg.test)
    md += "\n" + significance_markdown(sig, keys, cfg.test) if len(sig) else ""
    with atomic_path(out / "table.md") as tmp:
        tmp.write_text(md)
    with atomic_path(out / "significance.csv") as tmp:
        sig.to_csv(tmp, index=False)
    bar_chart(runs, methods, out / "table.png", cfg.gzsl)
    print(md)
    return out / "table.md"


def summary_table(runs, methods, split_ids, notes, gzsl: bool):
    """One row per method; per split 'ZSL' (and 'H') mean ± std over seeds; then the mean over splits."""
    import pandas as pd

    keys = [("zsl", "ZSL")] + ([("h", "H")] if gzsl else [])
    out = []
    for m in methods:
        row = {"method": m}
        mine = runs[runs.method == m]
        for sid in split_ids:
            sel = mine[mine.split == sid]
            for key, title in keys:
                row[f"{sid} {title}"] = _cell(sel[key]) if len(sel) else "n/a"
        for key, title in keys:
            per_split = mine.groupby("split")[key].mean() if len(mine) else []
            row[f"mean {title}"] = _cell(per_split) if len(mine) else "n/a"
        out.append(row)
    return pd.DataFrame(out)


def markdown(table, notes: dict, cfg: CompareConfig, n_splits: int, seconds: float, own_kinds: dict) -> str:
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(["---"] * len(cols)) + "|"]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for _, r in table.iterrows()]
    lines.append("")
    lines.append(f"Top-1 accuracy (%) on unseen classes at the validation-selected epoch; H = GZSL harmonic mean "
                 f"(calibrated stacking chosen on validation); mean ± std over {cfg.seeds} seed(s), {n_splits} "
                 f"split(s); kinds {', '.join(cfg.kinds)}; epochs scale {cfg.epochs_scale:g}; "
                 f"wall time {seconds:.0f} s.")
    for m, kinds in own_kinds.items():
        lines.append(f"- {m}: semantic kinds {kinds.replace('+', ', ')} (the method's own)")
    for m, why in notes.items():
        lines.append(f"- {m}: n/a ({why})")
    return "\n".join(lines) + "\n"


TITLES = {"zsl": "ZSL top-1", "h": "GZSL H"}


def significance(runs, methods, keys=("zsl", "h"), reference: str | None = None, test: str = "wilcoxon"):
    """Per method and metric: mean [95 % CI] over runs and the paired test against ``reference`` (by metric:
    the best mean when None). ``runs`` has columns method, split, seed and the metrics; runs are paired by
    (split, seed). Returns a long DataFrame (metric, method, mean, lo, hi, n, diff_mean, diff_lo, diff_hi, p,
    p_holm, significant, reference)."""
    import pandas as pd

    from smie.pipeline.zsl.stats import compare_methods

    if reference is not None and reference not in methods:
        raise SmieError(f"--reference {reference!r} is not among the compared methods ({', '.join(methods)})")
    rows = []
    for key in keys:
        wide = runs.pivot_table(index=["split", "seed"], columns="method", values=key, aggfunc="first")
        have = [m for m in methods if m in wide.columns and wide[m].notna().any()]
        if not have:
            continue
        table = {m: wide[m].to_numpy(dtype=float).tolist() for m in have}
        try:
            res = compare_methods(table, reference if reference in have else None, method=test)
        except ValueError as exc:
            raise SmieError(f"significance test: {exc}") from None
        rows += [dict(metric=key, reference=res["reference"], **r) for r in res["rows"]]
    return pd.DataFrame(rows)


def significance_markdown(sig, keys, test: str) -> str:
    """The significance table as markdown: one block per metric."""
    from smie.pipeline.zsl.stats import format_cell

    lines = []
    for key in keys:
        part = sig[sig.metric == key]
        if not len(part):
            continue
        ref = part.reference.iloc[0]
        lines += [f"{TITLES[key]} (%), mean [95 % CI] over {int(part.n.max())} runs; Δ = method − {ref}, "
                  f"paired over runs", "",
                  "| method | mean [95 % CI] | Δ vs " + ref + " [95 % CI] | p | p (Holm) |", "|---|---|---|---|---|"]
        for r in part.itertuples():
            if r.method == ref:
                lines.append(f"| **{r.method}** | {format_cell(r.mean, r.lo, r.hi)} | reference | | |")
                continue
            mark = " *" if r.significant else ""
            lines.append(f"| {r.method} | {format_cell(r.mean, r.lo, r.hi)} | "
                         f"{format_cell(r.diff_mean, r.diff_lo, r.diff_hi)}{mark} | {r.p:.3g} | {r.p_holm:.3g} |")
        lines.append("")
    name = ("two-sided exact Wilcoxon signed-rank test" if test == "wilcoxon" else
            "two-sided paired bootstrap (10,000 resamples)")
    lines.append(f"p: {name} over paired runs; Holm-corrected across methods; * = significant at 5 % after "
                 "correction. CI: Student t over runs.")
    return "\n".join(lines) + "\n"


def bar_chart(runs, methods, path: Path, gzsl: bool) -> Path:
    """Grouped bars: per method, mean over splits and seeds of ZSL (and H), error bars = 95 % t-interval."""
    from smie.pipeline.zsl.stats import mean_ci

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["zsl"] + (["h"] if gzsl else [])
    x = np.arange(len(methods))
    width = 0.8 / len(keys)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(methods) + 1), 3.2))
    for i, key in enumerate(keys):
        vals = [runs[runs.method == m][key].to_numpy(dtype=float) for m in methods]
        cis = [mean_ci(v) if len(v) else None for v in vals]
        mean = [100 * c["mean"] if c and np.isfinite(c["mean"]) else 0.0 for c in cis]
        half = [100 * c["half"] if c and np.isfinite(c["half"]) else 0.0 for c in cis]
        ax.bar(x + (i - (len(keys) - 1) / 2) * width, mean, width, yerr=half, capsize=2, label=TITLES[key])
    ax.set_xticks(x, methods, rotation=30, ha="right")
    ax.set_ylabel("%")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path
