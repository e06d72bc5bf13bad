"""Zero-shot benchmark on real data: MSR Action3D, three seeded 15/5 folds, SMIE and every baseline.

Per fold (``random:5:seed=S``, S = 0, 1, 2 by default; 15 seen / 5 unseen of the 20 classes), each stage is the
pipeline's own function: an ST-GCN backbone is trained on that fold's SEEN classes only (``pretrain-backbone``),
features and keyframe-masked views are extracted (``extract-visual``), then SMIE with and without the temporal
constraint (``fit-estimator``) and every method of ``smie.pipeline.zsl.baselines.METHODS`` (``fit-baseline``; the ``smie``
entries are the fit-estimator runs) are trained and evaluated from the caches. The class names (and, with
``--descriptions FILE.jsonl``, their descriptions) are embedded once (``embed-labels``). A method whose semantic
kinds the text cache lacks (JPoSE/SynSE need verb/noun, MSF action/motion descriptions) is listed as skipped.

Prints ZSL top-1 (unseen classes, validation-selected epoch) and GZSL H (calibrated stacking) as mean ± std over
the folds, and the wall time of every stage; writes ``results.json`` and ``table.md`` under ``--out``.
The default epochs are far below the papers' (a 2-core laptop run of about half an hour); raise them for
faithful numbers. Data: W. Li et al., CVPR Workshops 2010 (MSR Action3D), used here for research only.

    python bench/realdata_msr.py --data ../shared/realdata/msr_action3d [--descriptions d.jsonl] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from smie.features.store import SmieError  # noqa: E402

SKIP = ("smie", "smie-notemporal")  # fit-estimator runs these; METHODS lists them for `smie compare`


def _timed(times: dict, stage: str, fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    times[stage].append(time.perf_counter() - t0)
    return out


def _metrics(run: Path) -> dict:
    m = json.loads((run / "metrics.json").read_text())
    g = m.get("gzsl", {}).get("stacking", {})
    return dict(zsl=m["zsl"]["selected"]["acc"], h=g.get("h", float("nan")), seen=g.get("seen", float("nan")),
                unseen=g.get("unseen", float("nan")))


def _kinds_of(text: Path) -> set[str]:
    from smie.features.text import read_text

    return set(read_text(text).groups)


def run(args) -> dict:
    from smie.pipeline.zsl.baselines import METHODS
    from smie.pipeline.zsl.baselines.run import BaselineConfig, fit_baseline, method_kinds
    from smie.pipeline.semantic.embed import EmbedConfig, embed_labels
    from smie.pipeline.visual.extract import ExtractConfig, extract_visual
    from smie.pipeline.zsl.experiment import FitConfig, fit_estimator
    from smie.pipeline.data.prepare import PrepareConfig, prepare
    from smie.pipeline.visual.pretrain import PretrainConfig, pretrain_backbone

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, list[float]] = defaultdict(list)
    skel = out / "skeletons.h5"
    _timed(times, "prepare", prepare, PrepareConfig(format="msr", input=Path(args.data), out=skel,
                                                    num_frames=args.num_frames, max_bodies=1, skip_bad=True))
    text = out / "text.h5"
    descs = tuple(Path(p) for p in args.descriptions)
    _timed(times, "embed-labels", embed_labels, EmbedConfig(out=text, descriptions=descs, encoder=args.encoder,
                                                           skeletons=skel, device="cpu"))
    have = _kinds_of(text)
    methods = [m for m in (args.methods or METHODS) if m not in SKIP]
    skipped = {m: sorted(set(method_kinds(METHODS[m], ("label",))) - have) for m in methods}
    skipped = {m: k for m, k in skipped.items() if k}
    results: dict[str, list[dict]] = defaultdict(list)
    for seed in args.seeds:
        split = f"random:{args.unseen}:seed={seed}"
        fold = out / f"fold{seed}"
        print(f"== fold {seed}: split {split}", flush=True)
        backbone = fold / "backbone.pt"
        _timed(times, "pretrain-backbone", pretrain_backbone, PretrainConfig(
            skeletons=skel, split=split, out=backbone, epochs=args.backbone_epochs, batch_size=args.batch_size,
            device=args.device, seed=seed, resume=False))
        visual = fold / "visual.h5"
        _timed(times, "extract-visual", extract_visual, ExtractConfig(
            skeletons=skel, backbone=backbone, out=visual, views=args.views, keyframes=args.keyframes,
            random_drop=args.keyframes, device=args.device, seed=seed, resume=False))
        for name, temporal in (("smie", True), ("smie-notemporal", False)):
            run_dir = fold / "runs" / name
            _timed(times, "fit-estimator", fit_estimator, FitConfig(
                visual=visual, text=text, out=run_dir, temporal=temporal, epochs=args.fit_epochs, lr=args.fit_lr,
                warmup=min(15, args.fit_epochs // 4), gzsl=True, device=args.device, seed=seed))
            results[name].append(_metrics(run_dir))
        for name in methods:
            if name in skipped:
                continue
            run_dir = fold / "runs" / name
            epochs = None if args.baseline_epochs is None else args.baseline_epochs
            _timed(times, "fit-baseline", fit_baseline, BaselineConfig(
                name=name, visual=visual, text=text, out=run_dir, epochs=epochs, gzsl=True, device=args.device,
                seed=seed))
            results[name].append(_metrics(run_dir))
    return dict(results=results, times={k: v for k, v in times.items()}, skipped=skipped,
                settings={k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()})


def table(report: dict) -> str:
    folds = len(report["settings"]["seeds"])
    lines = [f"MSR Action3D, {folds} folds of random:{report['settings']['unseen']}:seed=S "
             f"(seeds {report['settings']['seeds']}); mean ± std over folds",
             "", "| method | ZSL top-1 | GZSL S | GZSL U | GZSL H |", "|---|---|---|---|---|"]
    for name, rows in report["results"].items():
        cells = []
        for key in ("zsl", "seen", "unseen", "h"):
            v = np.array([r[key] for r in rows], float)
            cells.append(f"{np.nanmean(v):.3f} ± {np.nanstd(v):.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for name, kinds in report["skipped"].items():
        lines.append(f"| {name} | skipped: needs description kinds {', '.join(kinds)} | | | |")
    lines += ["", "| stage | runs | seconds (total) | seconds (mean) |", "|---|---|---|---|"]
    for stage, secs in report["times"].items():
        lines.append(f"| {stage} | {len(secs)} | {sum(secs):.1f} | {np.mean(secs):.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="the msr_action3d directory")
    p.add_argument("--descriptions", type=Path, nargs="*", default=(), help="description JSONL files to embed")
    p.add_argument("--out", type=Path, default=Path("bench-out/msr"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one fold per seed")
    p.add_argument("--unseen", type=int, default=5)
    p.add_argument("--num-frames", type=int, default=30)
    p.add_argument("--backbone-epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--views", type=int, default=2)
    p.add_argument("--keyframes", type=int, default=9, help="keyframes masked (and random frames dropped)")
    p.add_argument("--fit-epochs", type=int, default=100)
    p.add_argument("--fit-lr", type=float, default=1e-4, help="SMIE learning rate (official 1e-5)")
    p.add_argument("--baseline-epochs", type=int, default=None, help="default: each method's own")
    p.add_argument("--methods", nargs="*", default=None, help="baselines to run (default: all)")
    p.add_argument("--encoder", default="minilm")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    try:
        report = run(args)
    except SmieError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = table(report)
    out = Path(args.out)
    (out / "results.json").write_text(json.dumps(report, indent=1, default=str))
    (out / "table.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
