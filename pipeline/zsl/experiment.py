"""``smie fit-estimator`` end to end: read the two caches, run the protocol per split and setting, write runs.

:func:`run_stage_two` is the method-independent driver (``smie fit-baseline`` uses it too); :func:`run_fit`
plugs SMIE into it. Stage two reads only ``visual.h5`` and ``text.h5``: this module imports neither the
backbones nor the text encoder (a test checks ``sys.modules``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from smie.features.store import SmieError, provenance, to_json
from smie.features.text import read_text
from smie.features.visual import read_visual
from smie.pipeline.data.partitions import PARTITION_NAMES, PARTITIONS
from smie.pipeline.data.splits import Split, resolve_splits
from smie.pipeline.device import resolve_device
from smie.pipeline.zsl.estimator import NEGATIVES, SMIEEstimator
from smie.pipeline.zsl.fit import FitOptions, semantic_matrix
from smie.pipeline.zsl.heap import heap_mode
from smie.pipeline.zsl.linear import backend as matmul_backend
from smie.pipeline.zsl.protocol import StageData, check_split, repartition, run_protocol
from smie.pipeline.zsl.report import metric
from smie.pipeline.zsl.rundir import install_dir, write_run

SUMMARY_KEYS = (("zsl_acc", ("zsl", "selected", "acc")), ("zsl_per_class", ("zsl", "selected", "per_class_acc")),
                ("zsl_last", ("zsl", "last", "acc")), ("zsl_oracle", ("zsl", "oracle", "acc")),
                ("gzsl_h_stacking", ("gzsl", "stacking", "h")), ("gzsl_h_gate", ("gzsl", "gate", "h")))


@dataclass(frozen=True)
class FitConfig:
    """``smie fit-estimator``. ``split`` empty = the split the visual cache was made for; several values (or a
    fold set such as ``smie:ntu60``) report mean and std. Several ``alpha``/``lam`` values form a sweep, the
    setting used for the test numbers being chosen on validation. Defaults are the official code's; the
    paper's Table 1 uses alpha 0.1 (NTU-60), 0.5 (NTU-120), 0.01 (PKU-MMD). ``hidden`` are the critic's two
    hidden widths (official 1024, 512)."""

    visual: Path
    text: Path
    out: Path
    kinds: tuple[str, ...] = ("label",)
    combine: str = "concat"
    split: tuple[str, ...] = ()
    alpha: tuple[float, ...] = (0.1,)
    lam: tuple[float, ...] = (0.5,)
    temporal: bool = True
    negatives: str = "roll"
    lr: float = 1e-5
    epochs: int = 100
    batch_size: int = 128
    warmup: int = 15
    gzsl: bool = False
    device: str = "auto"
    seed: int = 0
    hidden: tuple[int, int] = (1024, 512)
    val_features: str = "auto"


@dataclass
class FitResult:
    """``out`` the run directory (or, for several splits, the directory of per-split runs listed in ``runs``);
    ``table`` the printable sweep/summary table; ``summary`` mean/std/values per headline metric."""

    out: Path
    runs: list[Path] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    table: str = ""

    @property
    def path(self) -> Path:
        return self.out


def fit_estimator(cfg: FitConfig) -> FitResult:
    """Train and evaluate SMIE from the two caches alone; write the run directory ``cfg.out``."""
    return run_fit(cfg)


_LOADED: dict[tuple, tuple] = {}
KEEP_LOADED = 2


def load_caches(visual: Path, text: Path, kinds, combine):
    """Read both caches, check they describe the same classes in the same order; return (vc, tc, class_sem).

    The last ``KEEP_LOADED`` pairs stay in memory, keyed by path, inode, size and modification time, so the runs of
    a grid on one fold (``smie compare``, the benchmark) read and check each cache once."""
    stats = [(str(Path(p).resolve()), Path(p).stat()) for p in (visual, text)]
    key = tuple((path, st.st_ino, st.st_size, st.st_mtime_ns) for path, st in stats)
    key += (tuple(kinds), combine)
    if key not in _LOADED:
        _LOADED[key] = _read_caches(visual, text, kinds, combine)
        while len(_LOADED) > KEEP_LOADED:
            _LOADED.pop(next(iter(_LOADED)))
    return _LOADED[key]


def _read_caches(visual: Path, text: Path, kinds, combine):
    vc, tc = read_visual(visual), read_text(text)
    if tuple(vc.class_names) != tuple(tc.class_names):
        diff = next((i for i, (a, b) in enumerate(zip(vc.class_names, tc.class_names)) if a != b),
                    min(len(vc.class_names), len(tc.class_names)))
        raise SmieError(f"{visual} and {text} disagree on the class table ({len(vc.class_names)} vs "
                        f"{len(tc.class_names)} classes; first difference at index {diff}); "
                        "embed the visual cache's class names")
    return vc, tc, semantic_matrix(tc, kinds, combine)


VAL_FEATURES = ("auto", "validation", "main")


def validation_view(vc, data: StageData, split, mode: str, where: str) -> tuple[StageData | None, dict]:
    """The data that the validation phase of ``split`` runs on, and how to label it in the metrics.

    ``mode``: ``validation`` = the cache's validation-backbone features (an error if it has none usable for
    ``split``), ``main`` = the main features (optimistic: the backbone learnt the ``val_unseen`` classes),
    ``auto`` = the first when usable, else the second. Usable = the validation backbone learnt none of the
    split's unseen or ``val_unseen`` classes."""
    if mode not in VAL_FEATURES:
        raise SmieError(f"--val-features must be one of {', '.join(VAL_FEATURES)}, got {mode!r}")
    view = vc.validation
    usable = view is not None and not set(view.trained_classes) & (set(split.unseen) | set(split.val_unseen))
    if mode == "validation" and not usable:
        why = ("has no validation view (extract-visual --validation-backbone)" if view is None else
               f"has a validation view whose backbone learnt classes of split {split.id}'s val_unseen")
        raise SmieError(f"{where}: {why}")
    if mode == "main" or not usable:
        return None, dict(features="main-backbone", optimistic=True,
                          note="validation classes were training classes of the backbone: optimistic selection")
    masked = view.masked if data.masked is not None else None
    return (dataclasses.replace(data, features=view.features, masked=masked),
            dict(features="validation-backbone", optimistic=False, backbone_sha256=view.backbone_sha256))


def cache_split(vc) -> Split:
    s = vc.split
    return Split(str(s["id"]), int(s.get("num_classes", len(vc.class_names))), tuple(s["seen"]),
                 tuple(s["unseen"]), tuple(s["val_unseen"]))


def split_slug(split_id: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in split_id)


def _check_config(cfg: FitConfig) -> None:
    if cfg.negatives not in NEGATIVES:
        raise SmieError(f"--negatives must be one of {', '.join(NEGATIVES)}, got {cfg.negatives!r}")
    for name in ("epochs", "batch_size", "warmup"):
        if getattr(cfg, name) < (1 if name == "batch_size" else 0):
            raise SmieError(f"--{name.replace('_', '-')} is out of range (got {getattr(cfg, name)})")
    if not cfg.alpha or not cfg.lam:
        raise SmieError("give at least one --alpha and one --lam value")


def _metrics(split, res: dict, counts: dict) -> dict:
    """metrics.json of one run (keys documented in docs/evaluation.md)."""
    val, tst = res["validation"], res["test"]
    out = dict(method="smie", split=split.id, setting=val["setting"], counts=counts,
               selection=dict(rule="best val_unseen ZSL top-1 over epochs > warmup; setting by the same value",
                              **{k: val[k] for k in ("epoch", "val_acc", "val_per_class_acc", "first_eligible")},
                              **{k: val[k] for k in ("gamma", "gate_threshold", "val_gzsl") if k in val}),
               zsl=dict(selected=tst["selected"], last=tst["last"], oracle=tst["oracle"]),
               curves=dict(val_acc=val["curve"], test_acc=tst["curve"], val_loss=val["losses"],
                           loss=tst["losses"]),
               sweep=res["sweep"])
    if "gzsl" in tst:
        out["gzsl"] = tst["gzsl"]
    out["timing"] = {k: round(v, 4) for k, v in res.get("timing", {}).items()}
    return out


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _summary(runs: list[dict]) -> dict:
    """Mean ± std over runs (splits) of every ``SUMMARY_KEYS`` metric that any run has."""
    out = {}
    for name, path in SUMMARY_KEYS:
        vals = np.array([float(metric(m, path)) for m in runs])
        if np.isfinite(vals).any():
            out[name] = dict(mean=float(np.nanmean(vals)), std=float(np.nanstd(vals)), values=vals.tolist())
    return out


def _tables(runs: list[dict]) -> str:
    lines = []
    for m in runs:
        lines.append(f"split {m['split']}: sweep (ZSL top-1; test columns at the val-selected epoch, the last "
                     "epoch, and the test-selected oracle)")
        keys = list(m["sweep"][0]) if m["sweep"] else []
        keys = keys[:keys.index("val_acc")] if "val_acc" in keys else []
        lines.append("".join(f"{k:>10} " for k in keys)
                     + f"{'val':>7} {'epoch':>5} {'test':>7} {'last':>7} {'oracle':>7}")
        for r in m["sweep"]:
            mark = "  <- selected on val" if r["selected"] else ""
            lines.append("".join(f"{_fmt(r[k]):>10} " for k in keys)
                         + f"{r['val_acc']:>7.4f} {r['val_epoch']:>5d} {r['test_acc']:>7.4f} "
                         f"{r['test_last']:>7.4f} {r['test_oracle']:>7.4f}{mark}")
    if len(runs) > 1:
        lines.append(f"mean ± std over {len(runs)} splits:")
        for name, row in _summary(runs).items():
            lines.append(f"  {name:16s} {row['mean']:.4f} ± {row['std']:.4f}")
    return "\n".join(lines)


def run_fit(cfg: FitConfig) -> FitResult:
    """``smie fit-estimator``: SMIE through :func:`run_stage_two`."""
    _check_config(cfg)

    def factory(D: int, E: int):
        def make_model(alpha, lam):
            return SMIEEstimator(D, E, hidden=cfg.hidden, alpha=alpha, lam=lam, temporal=cfg.temporal,
                                 negatives=cfg.negatives)
        return make_model

    return run_stage_two(cfg, method="smie", model_factory=factory,
                         settings=[dict(alpha=a, lam=lam) for a in cfg.alpha for lam in cfg.lam],
                         visual=cfg.visual, text=cfg.text, out=cfg.out, kinds=cfg.kinds, combine=cfg.combine,
                         split=cfg.split, gzsl=cfg.gzsl, needs_masked=cfg.temporal, val_features=cfg.val_features,
                         opts=FitOptions(cfg.epochs, cfg.batch_size, cfg.lr, cfg.warmup, 0.0, cfg.seed, cfg.device))


def run_stage_two(config, *, method: str, model_factory, settings: list[dict], visual, text, out,
                  kinds=("label",), combine="concat", split=(), opts: FitOptions, gzsl: bool = False,
                  needs_masked: bool = False, val_features: str = "auto", sweep_test: bool = True) -> FitResult:
    """Any stage-two method from the two caches: protocol per split, run directories, tables.

    ``model_factory(D, E)`` returns ``make_model(**setting)`` building a fresh module (D visual, E semantic
    width); ``settings`` (JSON-able dicts) are swept and selected on validation; ``config`` (a dataclass or
    dict) is recorded in ``config.json``. Shared by ``smie fit-estimator`` and ``smie fit-baseline``.
    """
    started = time.perf_counter()
    vc, tc, class_sem = load_caches(Path(visual), Path(text), kinds, combine)
    read_seconds = time.perf_counter() - started
    base = cache_split(vc)
    splits = [s for spec in split for s in resolve_splits(spec, len(vc.class_names))] or [base]
    has_views = vc.masked.ndim == 3 and vc.masked.shape[1] > 0
    if needs_masked and not has_views:
        raise SmieError(f"{visual}: holds no masked views; the temporal constraint needs them (--no-temporal)")
    masked = vc.masked if has_views else None
    D, E = vc.feature_dim, class_sem.shape[1]
    make_model = model_factory(D, E)
    prov = provenance(config, inputs={"visual": visual, "text": text})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    parent = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    runs = []
    try:
        for sp in splits:
            check_split(sp, vc.split, str(visual))
            part = (vc.partition if sp == base else
                    repartition(vc.partition, vc.labels, vc.split, sp, vc.partition_settings))
            data = StageData(vc.features, masked, vc.labels, part, class_sem, vc.class_names, vc.sample_ids)
            val_data, selection = validation_view(vc, data, sp, val_features, str(visual))
            res = run_protocol(make_model, settings, data, sp, opts, gzsl=gzsl, val_data=val_data,
                               sweep_test=sweep_test)
            counts = {name: int((part == PARTITIONS[name]).sum()) for name in PARTITION_NAMES}
            metrics = _metrics(sp, res, counts)
            metrics["selection"].update(validation_features=selection["features"],
                                        optimistic=selection["optimistic"])
            metrics["method"] = method
            metrics["timing"]["read_caches"] = round(read_seconds, 4)
            metrics["compute"] = dict(device=str(resolve_device(opts.device)), torch_threads=torch.get_num_threads(),
                                      cpu_matmul=matmul_backend(), heap=heap_mode())
            tst = res["test"]
            model = tst["model"]
            info = dict(kinds=list(kinds), combine=combine, text_encoder=tc.encoder,
                        text_encoder_spec=tc.encoder_spec, text_weights_sha256=tc.weights_sha256,
                        label_template=(tc.provenance.get("config") or {}).get("label_template") or "{}",
                        class_names=list(vc.class_names), split=dataclasses.asdict(sp),
                        class_sem=torch.from_numpy(class_sem), backbone_sha256=vc.backbone_sha256,
                        backbone_arch=vc.backbone_arch, visual_dim=D, selected_epoch=res["validation"]["epoch"],
                        gamma=res["validation"].get("gamma"), gate_threshold=res["validation"].get("gate_threshold"))
            target = parent / split_slug(sp.id) if len(splits) > 1 else parent / "run"
            write_run(target, method=method, config=dict(json.loads(to_json(config)), split_id=sp.id,
                                                         provenance=prov),
                      metrics=metrics, model=model, model_config=model.config, info=info,
                      test_scores=tst["test_scores"], test_targets=tst["test_targets"],
                      test_class_ids=list(sp.unseen), class_names=vc.class_names,
                      test_sample_ids=[vc.sample_ids[i] for i in tst["test_rows"]],
                      installed_as=out / split_slug(sp.id) if len(splits) > 1 else out)
            runs.append(metrics)
        table, summary = _tables(runs), _summary(runs)
        final = parent / "run" if len(splits) == 1 else parent
        if len(splits) > 1:
            (parent / "summary.json").write_text(to_json(dict(summary=summary, splits=[m["split"] for m in runs])))
        (final / "summary.txt").write_text(table + "\n")
        install_dir(final, out)
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    paths = [out] if len(splits) == 1 else [out / split_slug(sp.id) for sp in splits]
    return FitResult(out=out, runs=paths, summary=summary, table=table)
