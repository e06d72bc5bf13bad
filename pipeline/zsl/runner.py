"""The driver every stage-two method runs through: read the two caches, run the protocol per split, write runs.

:func:`run_stage_two` takes one :class:`StageTwoRun` (``smie fit-estimator`` and ``smie fit-baseline`` build it
from their configs and the method's spec) and reads only it: the spec says how to build and train the method, the
run says on which caches, splits and settings. Stage two reads only ``visual.h5`` and ``text.h5``: this module
imports neither the backbones nor the text encoder (a test checks ``sys.modules``).
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np
import torch

from smie.features.store import SmieError, provenance, to_json
from smie.features.text import read_text
from smie.features.visual import read_visual
from smie.pipeline.data.partitions import PARTITION_NAMES, PARTITIONS
from smie.pipeline.data.splits import Split, resolve_splits
from smie.pipeline.device import resolve_device
from smie.pipeline.zsl.fit import FitOptions, semantic_matrix
from smie.pipeline.zsl.compute import Compute, using
from smie.pipeline.zsl.method import MethodContext
from smie.pipeline.zsl.protocol import ORACLE_NOTE, StageData, check_split, repartition, run_protocol
from smie.pipeline.zsl.results import metrics_record, selection_rule, summary
from smie.pipeline.zsl.rundir import install_dir, write_run
from smie.pipeline.zsl.spec import MethodSpec, RunFacts
from smie.pipeline.zsl.views import stored_logits, validation_view

@dataclass
class FitResult:
    """``out`` the run directory (or, for several splits, the directory of per-split runs listed in ``runs``);
    ``table`` the printable sweep/summary table; ``summary`` mean/std/values per headline metric
    (:data:`smie.pipeline.zsl.results.COLUMNS`)."""

    out: Path
    runs: list[Path] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    table: str = ""

    @property
    def path(self) -> Path:
        return self.out


class CacheStore:
    """Caches read and checked once and kept for the next runs on the same fold: the last ``keep`` pairs, keyed by
    path, inode, size and modification time. A grid or a benchmark owns one (a worker process, its own), so the
    runs of a fold read each cache once; a single run needs none."""

    def __init__(self, keep: int = 2):
        self.keep = keep
        self._loaded: dict[tuple, tuple] = {}

    def load(self, visual: Path, text: Path, kinds, combine: str):
        stats = [(str(Path(p).resolve()), Path(p).stat()) for p in (visual, text)]
        key = tuple((path, st.st_ino, st.st_size, st.st_mtime_ns) for path, st in stats) + (tuple(kinds), combine)
        if key not in self._loaded:
            self._loaded[key] = load_caches(visual, text, kinds, combine)
            while len(self._loaded) > self.keep:
                self._loaded.pop(next(iter(self._loaded)))
        return self._loaded[key]


def load_caches(visual: Path, text: Path, kinds, combine: str):
    """Read both caches, check they describe the same classes in the same order; return (vc, tc, class_sem)."""
    vc, tc = read_visual(visual), read_text(text)
    if tuple(vc.class_names) != tuple(tc.class_names):
        diff = next((i for i, (a, b) in enumerate(zip(vc.class_names, tc.class_names)) if a != b),
                    min(len(vc.class_names), len(tc.class_names)))
        raise SmieError(f"{visual} and {text} disagree on the class table ({len(vc.class_names)} vs "
                        f"{len(tc.class_names)} classes; first difference at index {diff}); "
                        "embed the visual cache's class names")
    return vc, tc, semantic_matrix(tc, kinds, combine)


def cache_split(vc) -> Split:
    s = vc.split
    return Split(str(s["id"]), int(s.get("num_classes", len(vc.class_names))), tuple(s["seen"]),
                 tuple(s["unseen"]), tuple(s["val_unseen"]))


def train_rows(vc) -> int:
    """Training rows (seen_train samples of the seen classes) of a visual cache's own split: what a method's
    epochs and step budget are planned from (a header is enough)."""
    from smie.pipeline.data.partitions import SEEN_TRAIN

    seen = list(cache_split(vc).seen)
    return int(((np.asarray(vc.partition) == SEEN_TRAIN) & np.isin(vc.labels, seen)).sum())


def mark_selection(metrics: dict, selection: str) -> None:
    """Record in ``metrics`` which unit the test numbers are reported at; a test-selected (oracle) run says so
    in ``selection`` and beside ``zsl.selected``, so that no reader takes it for a validation-selected one."""
    metrics["selection"]["test_unit"] = selection
    if selection != "validation":
        metrics["selection"].update(oracle=True, note=ORACLE_NOTE)
        metrics["zsl"]["selected"] = dict(metrics["zsl"]["selected"], selected_on="unseen test (oracle)")


def no_masked_views(visual, vc, method: str) -> str:
    """The error of a method that needs keyframe-masked views (SMIE's temporal constraint) on a cache without."""
    origin = ("imported features (smie import-features) carry none" if getattr(vc, "imported", None) else
              "it was extracted without keyframe masking")
    return (f"{visual}: holds no masked views ({origin}); method {method}'s temporal constraint needs them. "
            "Run SMIE without it: `smie fit-baseline smie-notemporal ...` or `smie fit-estimator --no-temporal ...`"
            ", or extract masked views with `smie extract-visual` from a backbone (smie import-backbone)")


def split_slug(split_id: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in split_id)


@dataclass(frozen=True)
class StageTwoRun:
    """One method on the two caches: everything :func:`run_stage_two` reads.

    ``spec`` builds and describes the method (``model``, ``params``, whether it reads masked views,
    ``sweep_test``, ``check``); ``options`` are its hyper-parameters for this run, ``settings`` the ones the
    protocol validates and selects among (each completes ``options``); ``fit`` the training run; ``method`` the
    name recorded in ``metrics.json`` and ``model.pt``; ``record`` the command's config for ``config.json``;
    ``steps_per_epoch`` what :class:`~smie.pipeline.zsl.method.MethodContext` tells the method; ``caches`` a
    :class:`CacheStore` to read through (None: read the caches afresh); ``compute`` the speed paths it takes;
    ``selection`` the unit the test numbers are reported at (``validation``, the default, or ``test-oracle``:
    the published protocols' best test unit, recorded as such; :data:`~smie.pipeline.zsl.protocol.SELECTIONS`)."""

    method: str
    spec: MethodSpec
    fit: FitOptions
    visual: Path
    text: Path
    out: Path
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    settings: tuple[Mapping[str, Any], ...] = (MappingProxyType({}),)
    kinds: tuple[str, ...] = ("label",)
    combine: str = "concat"
    split: tuple[str, ...] = ()
    gzsl: bool = False
    val_features: str = "auto"
    steps_per_epoch: int = 1
    record: Any = field(default_factory=dict)
    caches: CacheStore | None = None
    compute: Compute = Compute()
    selection: str = "validation"
    budget: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


def run_stage_two(run: StageTwoRun) -> FitResult:
    """Any stage-two method from the two caches: protocol per split, run directories, tables; the speed paths of
    ``run.compute`` (:func:`smie.pipeline.zsl.compute.using`)."""
    with using(run.compute):
        return _run(run)


def _run(run: StageTwoRun) -> FitResult:
    spec, fit = run.spec, run.fit
    started = time.perf_counter()
    read = run.caches.load if run.caches is not None else load_caches
    vc, tc, class_sem = read(Path(run.visual), Path(run.text), run.kinds, run.combine)
    read_seconds = time.perf_counter() - started
    base = cache_split(vc)
    splits = [s for spec_ in run.split for s in resolve_splits(spec_, len(vc.class_names))] or [base]
    has_views = vc.masked.ndim == 3 and vc.masked.shape[1] > 0
    if spec.uses_masked and not has_views:
        raise SmieError(no_masked_views(run.visual, vc, spec.name))
    heads = MappingProxyType({"main": vc.head, "validation": None if vc.validation is None else vc.validation.head})
    settings = [{**run.options, **s} for s in run.settings]
    if spec.check is not None:
        facts = RunFacts(str(run.visual), run.gzsl, heads, vc.validation is not None, run.val_features,
                         tuple(splits), logits=MappingProxyType({
                             "main": vc.logits, "validation": None if vc.validation_set is None
                             else vc.validation_set.logits}))
        for setting in settings:
            spec.check(spec.make_params(setting), facts)
    masked = vc.masked if has_views else None
    D, E = vc.feature_dim, class_sem.shape[1]

    def make_model(**setting):  # ``context``: the split's, set in the loop below before any model is made
        return spec.model(D, E, spec.make_params({**run.options, **setting}), context)

    unit = "cycle" if fit.cycle_steps else "point" if fit.steps is not None else "epoch"
    rule = selection_rule(fit.first_eligible(), fit.selectable, unit)
    record = json.loads(to_json(run.record))
    prov = provenance(run.record, inputs={"visual": run.visual, "text": run.text})
    out = Path(run.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    parent = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    runs = []
    try:
        for sp in splits:
            check_split(sp, vc.split, str(run.visual))
            part = (vc.partition if sp == base else
                    repartition(vc.partition, vc.labels, vc.split, sp, vc.partition_settings))
            data = StageData(vc.features, masked, vc.labels, part, class_sem, vc.class_names, vc.sample_ids)
            val_data, selection = validation_view(vc, data, sp, run.val_features, str(run.visual))
            context = MethodContext(steps_per_epoch=run.steps_per_epoch, heads=heads,
                                    logits=stored_logits(vc, val_data))
            res = run_protocol(make_model, [dict(s) for s in run.settings], data, sp, fit, gzsl=run.gzsl,
                               val_data=val_data, sweep_test=spec.sweep_test, selection=run.selection)
            counts = {name: int((part == PARTITIONS[name]).sum()) for name in PARTITION_NAMES}
            compute = dict(device=str(resolve_device(fit.device)), torch_threads=torch.get_num_threads(),
                           **run.compute.record())
            metrics = metrics_record(run.method, sp.id, res, rule, counts, selection, compute, read_seconds,
                                     dict(run.budget))
            mark_selection(metrics, run.selection)
            tst, model = res.test, res.test.model
            info = dict(kinds=list(run.kinds), combine=run.combine, text_encoder=tc.encoder,
                        text_encoder_spec=tc.encoder_spec, text_weights_sha256=tc.weights_sha256,
                        label_template=(tc.provenance.get("config") or {}).get("label_template") or "{}",
                        class_names=list(vc.class_names), split=dataclasses.asdict(sp),
                        class_sem=torch.from_numpy(class_sem), backbone_sha256=vc.backbone_sha256,
                        backbone_arch=vc.backbone_arch, visual_dim=D, selected_epoch=tst.selected.get("epoch", res.validation.epoch),
                        gamma=res.validation.gamma, gate_threshold=res.validation.gate_threshold)
            target = parent / split_slug(sp.id) if len(splits) > 1 else parent / "run"
            write_run(target, method=run.method, config=dict(record, split_id=sp.id, provenance=prov),
                      metrics=metrics, model=model, model_config=model.config, info=info,
                      test_scores=tst.scores, test_targets=tst.targets, test_class_ids=list(sp.unseen),
                      class_names=vc.class_names, test_sample_ids=[vc.sample_ids[i] for i in tst.rows],
                      installed_as=out / split_slug(sp.id) if len(splits) > 1 else out)
            runs.append(metrics)
        table, totals = tables(runs), summary(runs)
        final = parent / "run" if len(splits) == 1 else parent
        if len(splits) > 1:
            (parent / "summary.json").write_text(to_json(dict(summary=totals, splits=[m["split"] for m in runs])))
        (final / "summary.txt").write_text(table + "\n")
        install_dir(final, out)
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    paths = [out] if len(splits) == 1 else [out / split_slug(sp.id) for sp in splits]
    return FitResult(out=out, runs=paths, summary=totals, table=table)


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def tables(runs: list[dict]) -> str:
    """The printable sweep table of each run and, over several splits, the mean ± std of every headline number."""
    lines = []
    for m in runs:
        at = "val-selected" if m["selection"].get("test_unit", "validation") == "validation" else \
            "test-selected (oracle)"
        lines.append(f"split {m['split']}: sweep (ZSL top-1; test columns at the {at} epoch, the last "
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
        for name, row in summary(runs).items():
            lines.append(f"  {name:16s} {row['mean']:.4f} ± {row['std']:.4f}")
    return "\n".join(lines)
