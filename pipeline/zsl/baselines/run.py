"""``smie fit-baseline``: train one method from the two caches with the same protocol and outputs as SMIE.

The method's :class:`~smie.pipeline.zsl.spec.MethodSpec` (by name, from :mod:`smie.pipeline.registry`) gives every
default: learning rate, batch size, schedule and warm-up, budget, evaluation cadence, the kinds it reads (when
the run leaves the default ``("label",)``; with ``kinds_if_available`` the kinds the text cache lacks are left
out), the settings it selects on validation (a user ``--option`` fixes that setting), hyper-parameters for a
class table of that size (``by_classes``, e.g. MSF's NTU-120 settings) or that split (``by_split``, SynSE's
per-split latent and cycle length; a user ``--option`` wins over both), and which
hyper-parameters the run fills (``run_params``: the seed, the number of kinds). A config value that is not None
replaces the spec's. Everything else is :func:`smie.pipeline.zsl.runner.run_stage_two`'s: cache loading and
class-table checks, per-split repartition, validation-based selection, ZSL/GZSL test metrics and the run
directory (reloadable with :func:`~smie.pipeline.zsl.rundir.load_run`).

A :class:`~smie.pipeline.zsl.spec.Cycles` budget (SynSE, MSF) runs one unit per cycle (``FitOptions.cycle_steps``),
so training stops after exactly ``cycles x cycle_length`` steps and is evaluated, and selected, at cycle ends, as
their code is.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path


from smie.features.store import SmieError
from smie.pipeline.zsl.compute import Compute
from smie.pipeline.zsl.fit import FitOptions, check_schedule
from smie.pipeline.zsl.runner import CacheStore, FitResult
from smie.pipeline.zsl.budget import fit_options
from smie.pipeline.zsl.spec import Cycles, MethodSpec, method_spec, plan_units

DEFAULT_BATCH_SIZE = 128


@dataclass(frozen=True)
class BaselineConfig:
    """One method on one or more splits. ``epochs``/``lr``/``batch_size``/``schedule`` None = the method's spec;
    ``kinds`` are the text cache kinds fused into the class semantics (the PoS methods need ``verb``, ``noun``;
    MSF uses ``label``, ``action``, ``motion`` when left at the default); ``compute``: the CPU speed paths;
    ``selection``: the unit the test numbers are reported at (``validation``; ``test-oracle`` only for
    reproducing published protocols, labelled in metrics.json, :data:`smie.pipeline.zsl.protocol.SELECTIONS`)."""

    name: str
    visual: Path
    text: Path
    out: Path
    kinds: tuple[str, ...] = ("label",)
    combine: str = "concat"
    split: tuple[str, ...] = ()
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    gzsl: bool = False
    device: str = "auto"
    seed: int = 0
    options: tuple[str, ...] = ()
    val_features: str = "auto"
    schedule: str | None = None
    compute: Compute = Compute()
    selection: str = "validation"
    budget: str = "paper-steps"


def parse_options(options: tuple[str, ...]) -> dict:
    """``("latent=64", "hidden=(64, 32)")`` -> keyword arguments for the method's constructor (Python literals)."""
    import ast

    out = {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise SmieError(f"method option {item!r} must look like name=value")
        try:
            out[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            out[key.strip()] = value.strip()
    return out


def method_kinds(spec: MethodSpec, kinds: tuple[str, ...]) -> tuple[str, ...]:
    """The run's kinds, or the method's own when the run left the default ``("label",)``."""
    return tuple(spec.kinds) if tuple(kinds) == ("label",) else tuple(kinds)


def model_options(spec: MethodSpec, options: dict, user: dict) -> dict:
    """The hyper-parameters of the run: ``options`` (the run's and the data's) for the fields ``spec.params`` has,
    then the user's, every one of which it must have (else a user error)."""
    fields = {f.name for f in dataclasses.fields(spec.params)}
    bad = sorted(k for k in user if k not in fields)
    if bad:
        raise SmieError(f"method {spec.name} has no option(s) {', '.join(bad)} (known: {', '.join(sorted(fields))})")
    return {**{k: v for k, v in options.items() if k in fields}, **user}


def data_defaults_of(spec: MethodSpec, num_classes: int, num_unseen: int) -> dict:
    """The spec's hyper-parameters for this data: ``by_classes[num_classes]``, then ``by_split(num_classes,
    num_unseen)`` (the cache split's unseen classes); the user's options replace them later."""
    out = dict(spec.by_classes.get(num_classes, {}))
    if spec.by_split is not None:
        out.update(spec.by_split(num_classes, num_unseen))
    return out


def fit_baseline(cfg: BaselineConfig) -> FitResult:
    """Train and evaluate ``cfg.name`` from the caches alone; write the run directory ``cfg.out``."""
    return fit_splits(cfg)


def fit_splits(cfg: BaselineConfig, epochs_scale: float = 1.0, caches: CacheStore | None = None) -> FitResult:
    """:func:`fit_baseline` through :func:`~smie.pipeline.zsl.runner.run_stage_two`; ``epochs_scale`` multiplies
    the method's default epochs (``smie compare``); ``caches`` keeps caches between the runs of a grid.

    The number of epochs (and a cycle method's cycle length) is planned from the training-set size of the
    cache's own split; other splits of the same cache differ from it by a few classes at most.
    """
    from smie.features.visual import read_visual_header
    from smie.pipeline.zsl.runner import StageTwoRun, cache_split, run_stage_two, train_rows

    spec = method_spec(cfg.name)
    batch_size = spec.batch_size if cfg.batch_size is None else cfg.batch_size
    schedule = spec.schedule if cfg.schedule is None else cfg.schedule
    check_schedule(schedule)
    if batch_size < 1 or (cfg.epochs is not None and cfg.epochs < 0) or epochs_scale <= 0:
        raise SmieError("--batch-size must be >= 1, --epochs >= 0 and the epochs scale > 0")
    user = parse_options(cfg.options)
    model_options(spec, {}, user)
    kinds = method_kinds(spec, cfg.kinds)
    if spec.kinds_if_available and tuple(cfg.kinds) == ("label",):
        from smie.features.text import read_text

        have = set(read_text(cfg.text).kinds)
        kinds = tuple(k for k in kinds if k in have or k == kinds[0])
    head = read_visual_header(cfg.visual)
    base = cache_split(head)
    data_defaults = data_defaults_of(spec, len(head.class_names), len(base.unseen))
    n_train = train_rows(head)
    epochs, extra = plan_units(spec, n_train, batch_size, cfg.epochs, user, data_defaults)
    if cfg.epochs is None and epochs_scale != 1.0:
        epochs, extra = plan_units(spec, n_train, batch_size, max(1, round(epochs * epochs_scale)), user,
                                   data_defaults)
    run_values = {k: v for k, v in dict(seed=cfg.seed, n_kinds=len(kinds)).items() if k in spec.run_params}
    options = model_options(spec, dict(data_defaults, **extra, **run_values), user)
    settings = [{k: v for k, v in s.items() if k not in user} for s in spec.settings]
    settings = [s for i, s in enumerate(settings) if s not in settings[:i]]
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    lr = spec.lr if cfg.lr is None else cfg.lr
    cycles = isinstance(spec.budget, Cycles)
    units = (extra["cycles"] if epochs else 0) if cycles else epochs
    if cycles:
        fit = FitOptions(epochs=units, batch_size=batch_size, lr=lr, warmup=spec.warmup, schedule=schedule,
                         cycle_steps=extra["cycle_length"], eval_every=spec.eval_every,
                         selectable=spec.selectable, seed=cfg.seed, device=cfg.device)
        budget = dict(mode="cycles", steps=units * extra["cycle_length"], lr=lr)
    else:
        fit, budget = fit_options(spec, n_train, batch_size, lr, epochs, cfg.budget, schedule=schedule,
                                  seed=cfg.seed, device=cfg.device)
    record = dict(dataclasses.asdict(cfg), kinds_used=list(kinds), epochs_used=epochs, lr_used=fit.lr,
                  batch_size_used=batch_size, schedule_used=schedule, steps_used=budget["steps"],
                  budget_used=budget, model_options=dict(options))
    return run_stage_two(StageTwoRun(
        method=cfg.name, spec=spec, fit=fit, visual=cfg.visual, text=cfg.text, out=cfg.out, options=options,
        settings=tuple(settings), kinds=kinds, combine=cfg.combine, split=tuple(cfg.split), gzsl=cfg.gzsl,
        val_features=cfg.val_features, steps_per_epoch=steps_per_epoch, record=record, caches=caches,
        compute=cfg.compute, selection=cfg.selection, budget=budget))
