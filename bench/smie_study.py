"""Why SMIE loses on small data: ablations on the folds of an ``smie benchmark`` directory, honest protocol.

For every fold whose ``visual.h5`` (with its validation view) exists under ``--bench``, each variant below is
trained with ``fit-baseline`` (selection on the validation backbone's features, GZSL on) into ``--out``; the
table gives per variant the validation ZSL (what the protocol sees), the test ZSL mean [95 % CI] over folds with
the paired exact Wilcoxon test against the official setting, and the GZSL H.

Choosing among the variants is itself a selection, so it is made on validation only: the variant with the
highest mean validation ZSL over the folds is "chosen on validation", and only that one is then set against
every method of the benchmark's honest runs (``BENCH/runs.csv``), fold by fold, with Holm-corrected paired
tests. The other test columns are a diagnosis, never a selection.

Variants (the official setting first): SMIE as released (lr 1e-5, 100 epochs, roll-by-one negatives, temporal
on), the same without the temporal constraint, lr 1e-4 and 1e-3, 300 epochs, the next different-class sample
as the negative, the label template "a person is {}" (needs ``--template-text``), the ``paper`` masking
(keyframes removed, no random drop; re-extracted per fold with both backbones into ``--out``) with the temporal
margin alpha (0.01, 0.1, 0.5: the paper's PKU, NTU-60, NTU-120 values) and weight lambda (0.5, 1), and smie-fusion
on the released and on the paper masking.

    python bench/smie_study.py --bench .dev/msr10 --out .dev/study10 --jobs 2 [--template-text t.h5]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

VARIANTS = {
    "official (lr 1e-5)": ("smie", {}, ()),
    "no temporal": ("smie-notemporal", {}, ()),
    "lr 1e-4": ("smie", {"lr": 1e-4}, ()),
    "lr 1e-3": ("smie", {"lr": 1e-3}, ()),
    "lr 1e-4, 300 epochs": ("smie", {"lr": 1e-4, "epochs": 300}, ()),
    "diff-class negatives, lr 1e-4": ("smie", {"lr": 1e-4}, ("negatives='roll-diff-class'",)),
    "template 'a person is {}', lr 1e-4": ("smie", {"lr": 1e-4, "template": True}, ()),
    "paper masking (k=9), lr 1e-4": ("smie", {"lr": 1e-4, "masking": "paper"}, ()),
    "paper masking, no temporal, lr 1e-4": ("smie-notemporal", {"lr": 1e-4, "masking": "paper"}, ()),
    "paper masking, diff-class negatives, lr 1e-4": ("smie", {"lr": 1e-4, "masking": "paper"},
                                                     ("negatives='roll-diff-class'",)),
    "paper masking, lr 1e-4, alpha 0.01": ("smie", {"lr": 1e-4, "masking": "paper"}, ("alpha=0.01",)),
    "paper masking, lr 1e-4, alpha 0.5": ("smie", {"lr": 1e-4, "masking": "paper"}, ("alpha=0.5",)),
    "paper masking, lr 1e-4, lambda 1": ("smie", {"lr": 1e-4, "masking": "paper"}, ("lam=1.0",)),
    "smie-fusion": ("smie-fusion", {}, ()),
    "smie-fusion, paper masking": ("smie-fusion", {"masking": "paper"}, ()),
}


def _run_dir(out: Path, fold: Path, name: str) -> Path:
    return out / fold.name / name.replace(" ", "_").replace("'", "").replace(",", "").replace("{}", "X")


def _prepare_masking(args, fold: Path, masking: str) -> Path:
    """The fold's visual cache with ``masking`` views (both backbones), extracted once into ``--out``."""
    from smie.pipeline.visual.extract import ExtractConfig, extract_visual

    visual = args.out / fold.name / f"visual_{masking}.h5"
    if not visual.is_file():
        extract_visual(ExtractConfig(skeletons=args.bench / "skeletons.h5", backbone=fold / "main.pt",
                                     validation_backbone=fold / "val.pt", out=visual, masking=masking, keyframes=9,
                                     random_drop=0, device=args.device, seed=int(fold.name[4:])))
    return visual


def _fit(task: tuple) -> tuple[str, str, float]:
    """One (variant, fold) run in a worker (one torch thread); returns (variant, fold, seconds)."""
    import torch

    from smie.pipeline.zsl.baselines.run import BaselineConfig, fit_splits

    name, fold, visual, text, run, device = task
    torch.set_num_threads(1)
    method, extra, options = VARIANTS[name]
    t0 = time.perf_counter()
    if not (run / "metrics.json").is_file():
        fit_splits(BaselineConfig(method, visual, text, run, epochs=extra.get("epochs"), lr=extra.get("lr"),
                                  device=device, options=options, val_features="validation", gzsl=True))
    return name, fold, time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bench", type=Path, required=True, help="an smie benchmark directory")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--text", type=Path, default=None, help="text cache (default: BENCH/text.h5)")
    p.add_argument("--template-text", type=Path, default=None, help="text cache embedded with a label template")
    p.add_argument("--variants", nargs="*", default=list(VARIANTS))
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-folds", type=int, default=None, help="only the first N folds")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (one torch thread each)")
    args = p.parse_args(argv)
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing

    from smie.pipeline.zsl.stats import compare_methods, format_cell

    text = args.text or args.bench / "text.h5"
    folds = sorted((d for d in args.bench.glob("fold*") if (d / "visual.h5").is_file()),
                   key=lambda d: int(d.name[4:]))[:args.max_folds]
    names = [n for n in args.variants if not (VARIANTS[n][1].get("template") and args.template_text is None)]
    tasks = []
    for name in names:
        extra = VARIANTS[name][1]
        for d in folds:
            visual = _prepare_masking(args, d, extra["masking"]) if extra.get("masking") else d / "visual.h5"
            tasks.append((name, d, visual, args.template_text if extra.get("template") else text,
                          _run_dir(args.out, d, name), args.device))
    seconds: dict[str, float] = {}
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for name, _, sec in pool.map(_fit, tasks):
            seconds[name] = seconds.get(name, 0.0) + sec
    table: dict[str, list[float]] = {}
    h: dict[str, list[float]] = {}
    val: dict[str, list[float]] = {}
    for name in names:
        for d in folds:
            m = json.loads((_run_dir(args.out, d, name) / "metrics.json").read_text())
            table.setdefault(name, []).append(m["zsl"]["selected"]["acc"])
            h.setdefault(name, []).append(m["gzsl"]["stacking"]["h"])
            val.setdefault(name, []).append(m["selection"]["val_acc"])
    res = compare_methods(table, reference=next(iter(table)))
    hres = {r["method"]: r for r in compare_methods(h, reference=next(iter(h)))["rows"]}
    print(f"SMIE ablations, honest protocol, {len(folds)} folds of {args.bench}; ZSL top-1 and GZSL H (%), "
          "mean [95 % CI]")
    print(f"{'variant':46s} {'val ZSL':>8s} {'test ZSL':>20s} {'Δ vs official':>22s} {'p':>6s} {'H':>20s}  seconds")
    for r in sorted(res["rows"], key=lambda r: list(table).index(r["method"])):
        v = 100 * sum(val[r["method"]]) / len(val[r["method"]])
        ref = r["method"] == res["reference"]
        diff = "reference" if ref else format_cell(r["diff_mean"], r["diff_lo"], r["diff_hi"])
        hr = hres[r["method"]]
        print(f"{r['method']:46s} {v:8.1f} {format_cell(r['mean'], r['lo'], r['hi']):>20s} {diff:>22s} "
              f"{'' if ref else format(r['p'], '.3g'):>6s} {format_cell(hr['mean'], hr['lo'], hr['hi']):>20s}  "
              f"{seconds.get(r['method'], 0.0):.0f}")
    chosen = max(names, key=lambda n: sum(val[n]) / len(val[n]))
    print(f"\nchosen on validation (highest mean val ZSL over folds): {chosen}")
    runs_csv = args.bench / "runs.csv"
    if runs_csv.is_file():
        _against_benchmark(runs_csv, [int(d.name[4:]) for d in folds], chosen, table[chosen], h[chosen])
    return 0


def _against_benchmark(runs_csv: Path, folds: list[int], chosen: str, zsl: list[float], h: list[float]) -> None:
    """The validation-chosen variant against every method of the benchmark's honest runs, fold by fold."""
    import pandas as pd

    from smie.pipeline.zsl.stats import compare_methods, format_cell

    runs = pd.read_csv(runs_csv)
    runs = runs[(runs.protocol == "honest") & (runs.seed == 0)]
    for metric, mine in (("zsl", zsl), ("h", h)):
        per = {f"study: {chosen}": mine}
        for method, rows in runs.groupby("method"):
            by_fold = {int(s.split("seed=")[1]): v for s, v in zip(rows.split, rows[metric])}
            if all(f in by_fold for f in folds):
                per[method] = [by_fold[f] for f in folds]
        res = compare_methods(per)
        print(f"\n{metric.upper()} against the benchmark's honest runs (reference = best mean: {res['reference']}; "
              "exact Wilcoxon, Holm)")
        for r in sorted(res["rows"], key=lambda r: -r["mean"]):
            extra = "" if r["method"] == res["reference"] else (
                f"  Δ {format_cell(r['diff_mean'], r['diff_lo'], r['diff_hi'])}  p {r['p']:.3g}  "
                f"p_Holm {r['p_holm']:.3g}")
            print(f"  {r['method']:50s} {format_cell(r['mean'], r['lo'], r['hi']):>20s}{extra}")


if __name__ == "__main__":
    sys.exit(main())
