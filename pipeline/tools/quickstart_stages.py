"""The stages ``smie quickstart`` runs, sized for a laptop, and its results table (see :mod:`smie.pipeline.tools.quickstart`).

Every stage is the step's own pipeline function called with the step's own frozen config, so ``INDEX.md`` can
show the ``smie`` command that reruns it. Sizes deviate from the papers on purpose (minutes, not GPU-days): a
1-body 30-frame skeleton cache, the ``small`` ST-GCN (SMIE's own extractor size) for 6 epochs at batch 32 (SMIE:
150 epochs at batch 128; batch 32 on the 336 training samples, batch 8 on ``tiny``'s 84, keep >= 10 optimiser
steps per epoch so BatchNorm statistics settle), two masked views per sample with 9 keyframes and 9 random
frames dropped (the official 15 + 15 of 50 frames, scaled to 30), and stage two with SMIE's own defaults (lr 1e-5,
100 epochs, 15 warm-up, under the paper-steps budget: the paper's 28,700 Adam steps compressed 30 times at 3e-4,
:mod:`smie.pipeline.zsl.budget`); ``tiny`` runs 8 epochs' worth of that budget.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from smie.features.store import SmieError
from smie.pipeline.tools.workdir import Stage


@dataclass(frozen=True)
class Size:
    """Synthetic-set size, skeleton length, backbone epochs and batch, masked views, stage-two epochs and lr."""

    per_class: int
    num_frames: int
    max_bodies: int
    backbone_epochs: int
    backbone_batch: int
    views: int
    keyframes: int
    random_drop: int
    fit_epochs: int
    fit_lr: float
    fit_warmup: int
    baseline_epochs: int

    def describe(self) -> str:
        return (f"{self.per_class} synthetic samples per class, {self.num_frames} frames, {self.max_bodies} body, "
                f"backbone {self.backbone_epochs} epochs at batch {self.backbone_batch}, {self.views} masked views, "
                f"SMIE {self.fit_epochs} epochs at lr {self.fit_lr:g}, baseline {self.baseline_epochs} epochs")


SIZES: dict[str, Size] = {
    "default": Size(per_class=40, num_frames=30, max_bodies=1, backbone_epochs=6, backbone_batch=32, views=2,
                    keyframes=9, random_drop=9, fit_epochs=100, fit_lr=1e-5, fit_warmup=15, baseline_epochs=60),
    "tiny": Size(per_class=10, num_frames=20, max_bodies=1, backbone_epochs=2, backbone_batch=8, views=1,
                 keyframes=6, random_drop=6, fit_epochs=8, fit_lr=1e-5, fit_warmup=1, baseline_epochs=8),
}


def _synthetic_stage(size: Size, seed: int, workdir: Path) -> Stage:
    from smie.pipeline.data.synthetic import SyntheticConfig, generate_synthetic

    cfg = SyntheticConfig(out=workdir / "synthetic.npz", per_class=size.per_class, seed=seed)
    return Stage("synthetic", "synthetic", cfg, generate_synthetic, (cfg.out,),
                 "The embedded default data: a procedurally generated (synthetic, not recorded) skeleton action set "
                 "in smie's generic `npz` format (Kinect v2 joint order, `ntu-25`), see `pipeline/data/synthetic.py`.",
                 options={"num_frames": "--frames", "classes": "--class"})


def head_stages(cfg, workdir: Path) -> tuple[list[Stage], str]:
    """Stages up to the skeleton cache: (synthetic data ->) prepare. Also a sentence for the INDEX header."""
    from smie.pipeline.data.prepare import PrepareConfig, prepare

    size = SIZES[cfg.size]
    stages = []
    if cfg.data is None:
        stages.append(_synthetic_stage(size, cfg.seed, workdir))
        source, fmt, note = stages[0].outputs[0], "npz", "Data: the embedded synthetic set (not real recordings)."
    else:
        if cfg.format is None:
            raise SmieError(f"{cfg.data}: give --format with --data (e.g. ntu, pku, msr, npz)")
        source, fmt, note = Path(cfg.data).expanduser().resolve(), cfg.format, f"Data: `{cfg.data}` ({cfg.format})."
    pcfg = PrepareConfig(format=fmt, input=source, out=workdir / "skeletons.h5", num_frames=size.num_frames,
                         max_bodies=size.max_bodies, skip_bad=cfg.data is not None)
    stages.append(Stage("prepare", "prepare", pcfg, prepare, (pcfg.out,),
                        f"Skeleton cache (`smie.skeletons`): every sequence centred and resampled to "
                        f"{size.num_frames} frames, {size.max_bodies} body.",
                        deps=("synthetic",) if cfg.data is None else (), options={"num_frames": "--frames"}))
    return stages, note


def default_split(cfg, num_classes: int) -> str:
    return cfg.split or f"random:{max(1, round(num_classes / 4))}:seed={cfg.seed}"


def tail_stages(cfg, workdir: Path, num_classes: int) -> list[Stage]:
    """pretrain-backbone -> extract-visual, embed-labels -> fit-estimator, fit-baseline, fit-fusion."""
    from smie.features.visual import partial_path
    from smie.pipeline.zsl.baselines.run import BaselineConfig, fit_baseline
    from smie.pipeline.semantic.embed import EmbedConfig, embed_labels
    from smie.pipeline.visual.extract import ExtractConfig, extract_visual
    from smie.pipeline.zsl.experiment import FitConfig, fit_estimator
    from smie.pipeline.visual.pretrain import PretrainConfig, pretrain_backbone, resume_path

    size = SIZES[cfg.size]
    split = default_split(cfg, num_classes)
    skel = workdir / "skeletons.h5"
    pre = PretrainConfig(skeletons=skel, split=split, out=workdir / "backbone.pt",
                         epochs=cfg.epochs or size.backbone_epochs, batch_size=size.backbone_batch,
                         device=cfg.device, seed=cfg.seed)
    ext = ExtractConfig(skeletons=skel, backbone=pre.out, out=workdir / "visual.h5", views=size.views,
                        keyframes=size.keyframes, random_drop=size.random_drop, device=cfg.device, seed=cfg.seed)
    emb = EmbedConfig(out=workdir / "text.h5", encoder=cfg.encoder, skeletons=skel)
    fit = FitConfig(visual=ext.out, text=emb.out, out=workdir / "runs" / "smie", epochs=size.fit_epochs,
                    lr=size.fit_lr, warmup=size.fit_warmup, gzsl=True, device=cfg.device, seed=cfg.seed)
    base = BaselineConfig(name=cfg.baseline, visual=ext.out, text=emb.out, out=workdir / "runs" / cfg.baseline,
                          epochs=size.baseline_epochs, gzsl=True, device=cfg.device, seed=cfg.seed)
    fus = BaselineConfig(name="smie-fusion", visual=ext.out, text=emb.out, out=workdir / "runs" / "smie-fusion",
                         epochs=size.fit_epochs, gzsl=True, device=cfg.device, seed=cfg.seed,
                         options=("fusion='label'",))
    return [
        Stage("pretrain-backbone", "pretrain-backbone", pre, pretrain_backbone, (pre.out,),
              f"ST-GCN backbone (`smie.backbone` checkpoint) trained as a classifier on the SEEN classes of split "
              f"`{split}` only; the best seen-validation epoch is kept.", deps=("prepare",),
              scratch=(resume_path(pre.out),)),
        Stage("extract-visual", "extract-visual", ext, extract_visual, (ext.out,),
              "Visual cache (`smie.visual`): the frozen backbone's 256-d feature of every sequence and of its "
              "keyframe-masked views (for SMIE's temporal constraint), with each sample's partition.",
              deps=("pretrain-backbone",), scratch=(partial_path(ext.out),)),
        Stage("embed-labels", "embed-labels", emb, embed_labels, (emb.out,),
              f"Text cache (`smie.text`): the class names encoded by `{cfg.encoder}` (offline).", deps=("prepare",),
              options={"kinds": "--kind"}),
        Stage("fit-estimator", "fit-estimator", fit, fit_estimator, (fit.out / "metrics.json", fit.out),
              "SMIE run directory: `metrics.json` (ZSL and GZSL), `model.pt`, `per_class.csv`, `confusion.png`, "
              "`top5.png`, `curves.png` (validation and test accuracy and top-class share per evaluation point), "
              "`summary.txt`.",
              deps=("extract-visual", "embed-labels"), options={"kinds": "--kind"}),
        Stage("fit-baseline", "fit-baseline", base, fit_baseline, (base.out / "metrics.json", base.out),
              f"Baseline `{cfg.baseline}` trained on the same caches with the same protocol; same files as SMIE's.",
              deps=("extract-visual", "embed-labels"), options={"name": "", "kinds": "--kind"}),
        Stage("fit-fusion", "fit-baseline", fus, fit_baseline, (fus.out / "metrics.json", fus.out),
              "smie-fusion (here on the class names alone: SMIE's budget, different-class negatives); with LLM "
              "descriptions it adds one critic per description kind.",
              deps=("extract-visual", "embed-labels"), options={"name": "", "kinds": "--kind", "options": "--option"}),
    ]


def _row(method: str, metrics: dict) -> dict:
    g = metrics.get("gzsl", {}).get("stacking", {})
    return dict(method=method, zsl=metrics["zsl"]["selected"]["acc"], seen=g.get("seen", float("nan")),
                unseen=g.get("unseen", float("nan")), h=g.get("h", float("nan")), note=selection_note(method, metrics))


def selection_note(method: str, metrics: dict, tolerance: float = 0.05) -> str:
    """Why the selected point's test ZSL is more than ``tolerance`` below the best test point's (the oracle), or
    "" when it is within it: the validation curve at chance (the last point was kept), or one that does not
    track the test curve (its selected point is not the test curve's best)."""
    zsl, sel = metrics["zsl"], metrics.get("selection", {})
    gap = zsl["oracle"]["acc"] - zsl["selected"]["acc"]
    if not gap > tolerance:
        return ""
    head = (f"{method}: selected point {zsl['selected']['epoch']} tests {zsl['selected']['acc']:.3f}, "
            f"{100 * gap:.1f} points below the best test point {zsl['oracle']['epoch']} ({zsl['oracle']['acc']:.3f}, "
            "an oracle): ")
    if sel.get("val_at_chance"):
        return head + (f"the validation accuracy never rose above chance + 2 s.e. ({sel.get('chance_bound', 0):.3f}), "
                       "so the last point was kept")
    share = (metrics.get("curves") or {}).get("val_top_share") or []
    collapsed = f"; validation top-class share {max(share):.2f}" if share else ""
    return head + f"the validation classes' curve does not track the unseen test classes'{collapsed}"


def results_table(stages: list[Stage]) -> tuple[str, dict, list[Path]]:
    """Per method: unseen-class ZSL top-1 (val-selected epoch) and GZSL seen/unseen/H (calibrated stacking)."""
    rows, plots = [], []
    for st in stages:
        if st.command not in ("fit-estimator", "fit-baseline"):
            continue
        run = st.outputs[1]
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        rows.append(_row("smie" if st.command == "fit-estimator" else st.config.name, metrics))
        plots += [p for p in (run / "confusion.png", run / "top5.png", run / "curves.png") if p.exists()]
    split = next((st.config.split for st in stages if st.command == "pretrain-backbone"), "")
    run0 = next(st.outputs[1] for st in stages if st.command == "fit-estimator")
    unseen = len((run0 / "per_class.csv").read_text(encoding="utf-8").splitlines()) - 1
    optimistic = json.loads((run0 / "metrics.json").read_text(encoding="utf-8"))["selection"].get("optimistic")
    lines = [f"split {split}: ZSL = top-1 over unseen classes; GZSL over all classes (calibrated stacking)",
             f"{'method':<16} {'ZSL acc':>8} {'GZSL S':>8} {'GZSL U':>8} {'GZSL H':>8}"]
    lines += [f"{r['method']:<16} {r['zsl']:>8.3f} {r['seen']:>8.3f} {r['unseen']:>8.3f} {r['h']:>8.3f}"
              for r in rows]
    lines.append(f"{'chance':<16} {1 / max(unseen, 1):>8.3f}  (1 of {unseen} unseen classes)")
    lines += [r["note"] for r in rows if r["note"]]
    if optimistic:
        lines.append("selection on the main backbone's features (optimistic: it learnt the validation classes); "
                     "`smie benchmark` adds validation backbones, many folds and confidence intervals")
    return "\n".join(lines), {r["method"]: r for r in rows}, plots
