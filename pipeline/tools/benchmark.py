"""``smie benchmark``: every method on K seeded folds of one prepared skeleton cache, with the honest protocol.

Per fold ``f`` (split ``random:U:seed=f``; ``random:U:folds=K`` are K independent seeded draws of U unseen
classes, not disjoint sets), under ``out/fold<f>/``:

1. ``main.pt``: the backbone trained on the fold's seen classes (``pretrain-backbone``);
2. ``val.pt``: its validation backbone, trained on the seen classes minus ``val_unseen`` only
   (``pretrain-backbone --validation``);
3. ``visual.h5``: features and masked views of both (``extract-visual --validation-backbone``);
4. ``runs/<protocol>/<method>/seed<s>/``: every stage-two method (``fit-baseline``; SMIE and its variants are
   methods too) under each protocol: ``honest`` selects on the validation backbone's features, ``optimistic``
   on the main backbone's (the classes it validates on were training classes of that backbone).

The class texts are embedded once (``embed-labels``) into ``out/text.h5`` unless a text cache is given.
Everything resumes: a finished artifact is kept and skipped (pretraining and extraction also resume inside a
stage), so a killed run continues where it stopped and loses no finished fold or method. Wall time per stage
goes to ``out/fold<f>/stages.json`` as each stage finishes.

The tables (``out/table.md``, ``table.csv``, ``runs.csv``, ``table-<protocol>.png``) give per protocol and method the mean
ZSL top-1 and GZSL H (calibrated stacking) over folds × seeds with 95 % t-intervals and the paired test
against the best method (:func:`smie.pipeline.zsl.compare.significance`), and the wall time of every stage.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from smie.features.store import SmieError, atomic_path, to_json

PROTOCOLS = {"honest": "validation", "optimistic": "main"}


@dataclass(frozen=True)
class BenchmarkConfig:
    """``folds`` None = 10 for data sets under 30 classes, else 5; ``unseen`` None = a quarter of the classes;
    ``methods`` registered method names (:data:`smie.pipeline.registry.METHODS`) or ``all``; ``text`` an
    existing text cache (else labels, with ``descriptions``, are embedded with ``encoder``); ``epochs_scale``
    multiplies each method's default epochs. Stage two runs with the default speed paths; the heap is left to
    glibc, since this process runs stage one too (docs/performance.md)."""

    skeletons: Path
    out: Path
    folds: int | None = None
    unseen: int | None = None
    methods: tuple[str, ...] = ("all",)
    seeds: int = 1
    protocols: tuple[str, ...] = ("honest", "optimistic")
    text: Path | None = None
    descriptions: tuple[Path, ...] = ()
    kinds: tuple[str, ...] = ("label",)
    encoder: str = "minilm"
    arch: str = "stgcn"
    size: str = "small"
    backbone_epochs: int = 30
    batch_size: int = 16
    backbone_lr: float = 5e-3
    views: int = 2
    keyframes: int = 9
    random_drop: int = 9
    epochs_scale: float = 1.0
    reference: str | None = None
    test: str = "wilcoxon"
    device: str = "auto"
    only_folds: tuple[int, ...] = ()


def _stage(times: dict, path: Path, name: str, fn, *args) -> None:
    t0 = time.perf_counter()
    fn(*args)
    times[name] = round(time.perf_counter() - t0, 2)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(times, indent=1))


def _fold(cfg: BenchmarkConfig, f: int, unseen: int, text: Path, methods: list[str], log) -> list[dict]:
    from smie.features.visual import read_visual_header
    from smie.pipeline.visual.extract import ExtractConfig, extract_visual
    from smie.pipeline.visual.pretrain import PretrainConfig, pretrain_backbone, resume_path
    from smie.pipeline.zsl.baselines.run import BaselineConfig, fit_splits
    from smie.pipeline.zsl.results import row
    from smie.pipeline.zsl.runner import CacheStore

    d = Path(cfg.out) / f"fold{f}"
    d.mkdir(parents=True, exist_ok=True)
    stages = d / "stages.json"
    times = json.loads(stages.read_text()) if stages.is_file() else {}
    split = f"random:{unseen}:seed={f}"
    base = dict(skeletons=cfg.skeletons, split=split, arch=cfg.arch, size=cfg.size, epochs=cfg.backbone_epochs,
                batch_size=cfg.batch_size, lr=cfg.backbone_lr, device=cfg.device, seed=f, progress=False)
    for name, validation in (("main", False), ("val", True)):
        ckpt = d / f"{name}.pt"
        if not ckpt.is_file() or resume_path(ckpt).exists():  # the best epoch is saved before training ends
            log(f"fold {f}: pretrain-backbone ({name}) on {split}")
            _stage(times, stages, f"pretrain-{name}", pretrain_backbone,
                   PretrainConfig(out=ckpt, validation=validation, **base))
    visual = d / "visual.h5"
    if not visual.is_file() or read_visual_header(visual).validation is None:
        log(f"fold {f}: extract-visual (main + validation backbone)")
        _stage(times, stages, "extract-visual", extract_visual, ExtractConfig(
            skeletons=cfg.skeletons, backbone=d / "main.pt", validation_backbone=d / "val.pt", out=visual,
            views=cfg.views, keyframes=cfg.keyframes, random_drop=cfg.random_drop, device=cfg.device, seed=f))
    rows, caches = [], CacheStore()
    for protocol in cfg.protocols:
        for method in methods:
            for seed in range(cfg.seeds):
                run = d / "runs" / protocol / method / f"seed{seed}"
                if not (run / "metrics.json").is_file():
                    log(f"fold {f}: {protocol} {method} seed {seed}")
                    _stage(times, stages, f"{protocol}/{method}/seed{seed}", fit_splits, BaselineConfig(
                        method, visual, text, run, kinds=cfg.kinds, gzsl=True, device=cfg.device, seed=seed,
                        val_features=PROTOCOLS[protocol]), cfg.epochs_scale, caches)
                m = json.loads((run / "metrics.json").read_text())
                rows.append(dict(protocol=protocol, method=method, split=split, seed=seed,
                                 seconds=times.get(f"{protocol}/{method}/seed{seed}", float("nan")),
                                 **row(m)))
    return rows


def run_benchmark(cfg: BenchmarkConfig, log=print) -> Path:
    """Run (or resume) the whole benchmark; write and return ``out/table.md``."""
    import pandas as pd

    from smie.features.skeletons import read_skeleton_header
    from smie.pipeline.semantic.embed import EmbedConfig, embed_labels
    from smie.pipeline.zsl.compare import resolve_methods

    bad = sorted(set(cfg.protocols) - set(PROTOCOLS))
    if bad or not cfg.protocols:
        raise SmieError(f"unknown protocol(s) {bad}; choose from {', '.join(PROTOCOLS)}")
    head = read_skeleton_header(cfg.skeletons)
    K = len(head.class_names)
    folds = cfg.folds or (10 if K < 30 else 5)
    unseen = cfg.unseen or max(1, round(K / 4))
    if folds < 1 or cfg.seeds < 1 or not 0 < unseen < K - 1:
        raise SmieError(f"need folds >= 1, seeds >= 1 and 0 < unseen < {K - 1} (got {folds}, {cfg.seeds}, {unseen})")
    methods = resolve_methods(cfg.methods)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    text = cfg.text
    if text is None:
        text = out / "text.h5"
        if not text.is_file():
            log("embed-labels")
            embed_labels(EmbedConfig(out=text, descriptions=tuple(cfg.descriptions), encoder=cfg.encoder,
                                     skeletons=cfg.skeletons))
    wall = time.perf_counter()
    todo = [f for f in range(folds) if not cfg.only_folds or f in cfg.only_folds]
    rows = [r for f in todo for r in _fold(cfg, f, unseen, Path(text), methods, log)]
    runs = pd.DataFrame(rows)
    with atomic_path(out / "runs.csv") as tmp:
        runs.to_csv(tmp, index=False)
    md, sig = tables(cfg, runs, folds, unseen, K, methods)
    with atomic_path(out / "table.csv") as tmp:
        sig.to_csv(tmp, index=False)
    with atomic_path(out / "table.md") as tmp:
        tmp.write_text(md)
    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(to_json(dict(config=cfg, folds=folds, unseen=unseen, seconds_this_run=time.perf_counter() - wall,
                                    stage_seconds=stage_totals(out, folds))))
    from smie.pipeline.zsl.compare import bar_chart

    for protocol in cfg.protocols:
        bar_chart(runs[runs.protocol == protocol], methods, out / f"table-{protocol}.png", True)
    return out / "table.md"


def stage_totals(out: Path, folds: int) -> dict:
    """Seconds per stage kind summed over folds (stage-two runs grouped per protocol)."""
    total: dict[str, float] = {}
    for f in range(folds):
        path = Path(out) / f"fold{f}" / "stages.json"
        for name, secs in (json.loads(path.read_text()) if path.is_file() else {}).items():
            kind = name.rsplit("/", 2)[0] + " stage two" if "/" in name else name
            total[kind] = round(total.get(kind, 0.0) + secs, 1)
    return total


def tables(cfg: BenchmarkConfig, runs, folds: int, unseen: int, K: int, methods: list[str]):
    """Markdown with one significance block per protocol and metric, the stage times; the long table."""
    import pandas as pd

    from smie.pipeline.zsl.compare import significance, significance_markdown

    lines = [f"# Benchmark: {Path(cfg.skeletons).name}, {K} classes, {folds} folds random:{unseen}:seed=0..{folds - 1}"
             f", {cfg.seeds} seed(s)", "",
             f"Chance ZSL top-1: {100 / unseen:.1f} %. Backbone {cfg.arch}/{cfg.size}, {cfg.backbone_epochs} epochs; "
             f"epochs scale {cfg.epochs_scale:g}.", ""]
    parts = []
    for protocol in cfg.protocols:
        mine = runs[runs.protocol == protocol]
        sig = significance(mine, methods, ("zsl", "h"), cfg.reference, cfg.test)
        sig.insert(0, "protocol", protocol)
        parts.append(sig)
        what = ("selection on the validation backbone's features (honest)" if protocol == "honest" else
                "selection on the main backbone's features (optimistic: it learnt the validation classes)")
        lines += [f"## Protocol: {protocol}", "", what, "", significance_markdown(sig, ("zsl", "h"), cfg.test)]
    lines += ["## Wall time per stage (seconds, summed over folds)", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in stage_totals(Path(cfg.out), folds).items()]
    return "\n".join(lines) + "\n", pd.concat(parts, ignore_index=True)
