"""Why SMIE loses on small data: ablations on the folds of an ``smie benchmark`` directory, honest protocol.

For every fold whose ``visual.h5`` (with its validation view) exists under ``--bench``, each variant below is
trained with ``fit-baseline`` (selection on the validation backbone's features) into ``--out``; the table gives
per variant the validation ZSL (what the protocol sees) and the test ZSL mean [95 % CI] over folds, with the
paired exact Wilcoxon test against the official setting. The test column is a diagnosis, not a selection:
smie's defaults are chosen by validation inside the method (``smie-fusion``'s settings grid), never from it.

Variants (the official setting first): SMIE as released (lr 1e-5, 100 epochs, roll-by-one negatives, temporal
on), the same without the temporal constraint, lr 1e-4 and 1e-3, 300 epochs, the next different-class sample
as the negative, the label template "a person is {}" (needs ``--template-text``), and the ``paper`` masking
(keyframes removed, no random drop; re-extracted per fold with both backbones into ``--out``). smie-fusion is
in the benchmark's own table.

    python bench/smie_study.py --bench .dev/msr10 --out .dev/study [--template-text t.h5]
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
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bench", type=Path, required=True, help="an smie benchmark directory")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--text", type=Path, default=None, help="text cache (default: BENCH/text.h5)")
    p.add_argument("--template-text", type=Path, default=None, help="text cache embedded with a label template")
    p.add_argument("--variants", nargs="*", default=list(VARIANTS))
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-folds", type=int, default=None, help="only the first N folds")
    args = p.parse_args(argv)
    from smie.features.store import SmieError
    from smie.pipeline.zsl.baselines.run import BaselineConfig, fit_splits
    from smie.pipeline.visual.extract import ExtractConfig, extract_visual
    from smie.pipeline.zsl.stats import compare_methods, format_cell

    text = args.text or args.bench / "text.h5"
    folds = sorted((d for d in args.bench.glob("fold*") if (d / "visual.h5").is_file()),
                   key=lambda d: int(d.name[4:]))[:args.max_folds]
    table: dict[str, list[float]] = {}
    val: dict[str, list[float]] = {}
    seconds: dict[str, float] = {}
    for name in args.variants:
        method, extra, options = VARIANTS[name]
        if extra.get("template") and args.template_text is None:
            continue
        t0 = time.perf_counter()
        for d in folds:
            run = args.out / d.name / name.replace(" ", "_").replace("'", "").replace(",", "").replace("{}", "X")
            visual = d / "visual.h5"
            if extra.get("masking"):
                visual = args.out / d.name / f"visual_{extra['masking']}.h5"
                if not visual.is_file():
                    extract_visual(ExtractConfig(skeletons=args.bench / "skeletons.h5", backbone=d / "main.pt",
                                                 validation_backbone=d / "val.pt", out=visual, masking="paper",
                                                 keyframes=9, random_drop=0, device=args.device,
                                                 seed=int(d.name[4:])))
            if not (run / "metrics.json").is_file():
                try:
                    fit_splits(BaselineConfig(method, visual, args.template_text if extra.get("template")
                                              else text, run, epochs=extra.get("epochs"), lr=extra.get("lr"),
                                              device=args.device, options=options, val_features="validation"))
                except SmieError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 2
            m = json.loads((run / "metrics.json").read_text())
            table.setdefault(name, []).append(m["zsl"]["selected"]["acc"])
            val.setdefault(name, []).append(m["selection"]["val_acc"])
        seconds[name] = time.perf_counter() - t0
    res = compare_methods(table, reference=next(iter(table)))
    print(f"SMIE ablations, honest protocol, {len(folds)} folds of {args.bench}; ZSL top-1 (%), mean [95 % CI]")
    print(f"{'variant':40s} {'val ZSL':>8s} {'test ZSL':>22s} {'Δ vs official':>24s} {'p':>7s}  seconds")
    for r in sorted(res["rows"], key=lambda r: list(table).index(r["method"])):
        v = 100 * sum(val[r["method"]]) / len(val[r["method"]])
        diff = "reference" if r["method"] == res["reference"] else format_cell(r["diff_mean"], r["diff_lo"],
                                                                                r["diff_hi"])
        p = "" if r["method"] == res["reference"] else f"{r['p']:.3g}"
        print(f"{r['method']:40s} {v:8.1f} {format_cell(r['mean'], r['lo'], r['hi']):>22s} {diff:>24s} {p:>7s}  "
              f"{seconds[r['method']]:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
