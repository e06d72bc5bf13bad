"""``smie fit-baseline``: train one baseline from the two caches with the same protocol and outputs as SMIE.

Everything but the method is shared with ``smie fit-estimator`` through ``smie.pipeline.zsl.experiment.run_stage_two``:
cache loading and class-table checks, per-split repartition, validation-based epoch selection, ZSL/GZSL test
metrics (``smie.pipeline.zsl.protocol``) and the run directory (``smie.pipeline.zsl.rundir``, reloadable with ``load_run``).
Per-method defaults apply where the config leaves ``None`` (or the default ``kinds=("label",)`` for a method
that needs other kinds), from class attributes: ``default_lr``, ``default_epochs``, ``default_kinds``,
``default_batch_size`` (else 128), ``default_schedule`` (the loop's ``cosine`` or ``constant``; else cosine,
with ``warmup=0`` here, so no warm-up) and ``defaults_by_classes`` (constructor options for a class table of that
size, e.g. MSF's NTU-120 settings; a user ``--option`` wins).
Cycle-scheduled methods (``default_cycles``/``default_cycle_length``: SynSE, MSF) run one loop epoch per cycle
(``FitOptions.epoch_steps = cycle_length``), so they stop after exactly ``cycles x cycle_length`` steps and are
evaluated, and selected, at cycle ends, as their code is.
A method class may list ``settings_grid`` (constructor settings selected on validation by the protocol, as
``--alpha``/``--lam`` are for SMIE; a user ``--option`` fixes that setting) and ``sweep_test = False`` (only the
selected setting is retrained for the test phase).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smie.features.store import SmieError
from smie.pipeline.zsl.fit import FitOptions, check_schedule
from smie.pipeline.zsl.experiment import FitResult

MAX_DEFAULT_EPOCHS = 200
DEFAULT_BATCH_SIZE = 128


@dataclass(frozen=True)
class BaselineConfig:
    """One method on one or more splits. ``epochs``/``lr``/``batch_size``/``schedule`` None = the method's default
    (batch 128 and a cosine schedule where it has none); ``kinds`` are the text cache kinds fused into the class
    semantics (the PoS methods need ``verb``, ``noun``; MSF uses ``label``, ``action``, ``motion`` when left at
    the default)."""

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


def method_class(name: str) -> type:
    from smie.pipeline.zsl.baselines import METHODS

    if name not in METHODS:
        raise SmieError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    return METHODS[name]


def method_kinds(cls: type, kinds: tuple[str, ...]) -> tuple[str, ...]:
    """The run's kinds, or the method's own when the run left the default ``("label",)``."""
    default = getattr(cls, "default_kinds", None)
    return tuple(default) if default and tuple(kinds) == ("label",) else tuple(kinds)


def plan_epochs(cls: type, n_train: int, batch_size: int, epochs: int | None,
                user: dict | None = None, defaults: dict | None = None) -> tuple[int, dict]:
    """Epochs (passes over the training set) to run and constructor options that depend on them.

    Cycle-scheduled methods (SynSE, MSF) count their schedule in steps: by default ``cycles x cycle_length``
    steps (the code's 10 x 1700), capped at ``MAX_DEFAULT_EPOCHS`` epochs; when capped or when ``epochs`` is
    given, the cycle is shortened so the cycles fit the run, keeping the schedule's proportions. The user's
    ``cycles``/``cycle_length`` method options (``user``) replace the defaults; a given ``cycle_length`` is
    never shortened. ``defaults`` replace the class's defaults (e.g. ``cycle_length=1900`` for NTU-120) and may
    be shortened; a shortened cycle whose constants are not the 1700-step ones gets ``cycle_base`` (the length
    the code's step constants are rescaled from, :func:`~smie.pipeline.zsl.baselines.vae.cycle_weights`).
    """
    user, defaults = user or {}, defaults or {}
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    if hasattr(cls, "default_cycles"):
        try:
            cycles = int(user.get("cycles", defaults.get("cycles", cls.default_cycles)))
            cycle_length = int(user.get("cycle_length", defaults.get("cycle_length", cls.default_cycle_length)))
        except (TypeError, ValueError):
            raise SmieError(f"method {cls.__name__}: options cycles and cycle_length must be integers, got "
                            f"{user.get('cycles')!r}, {user.get('cycle_length')!r}") from None
        if cycles < 1 or cycle_length < 1:
            raise SmieError(f"method {cls.__name__}: options cycles and cycle_length must be >= 1")
        if epochs is None:
            epochs = min(MAX_DEFAULT_EPOCHS, math.ceil(cycles * cycle_length / steps_per_epoch))
        extra = {}
        if "cycle_length" not in user:
            base = cycle_length
            cycle_length = min(cycle_length, max(1, epochs * steps_per_epoch // cycles))
            if base != max(cycle_length, 1700):
                extra["cycle_base"] = base
        return epochs, dict(cycle_length=cycle_length, cycles=cycles, **extra)
    return (cls.default_epochs if epochs is None else epochs), {}


def _accepted(cls: type) -> set[str] | None:
    """Keyword options ``cls(...)`` accepts: a constructor taking ``**options`` passes them to its base class
    (``SMIENoTemporal``), so the base's parameters count too; None when nothing bounds them."""
    import inspect

    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        names |= {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names - {"self", "visual_dim", "sem_dim"}
    return None


def _kwargs(cls: type, options: dict, user: dict) -> dict:
    """Options the constructor accepts (``seed`` only where it exists); a user option it lacks is an error."""
    accepted = _accepted(cls)
    bad = [k for k in user if accepted is not None and k not in accepted]
    if bad:
        raise SmieError(f"method {cls.__name__} has no option(s) {', '.join(bad)}")
    return {**{k: v for k, v in options.items() if accepted is None or k in accepted}, **user}


def fit_baseline(cfg: BaselineConfig) -> FitResult:
    """Train and evaluate ``cfg.name`` from the caches alone; write the run directory ``cfg.out``."""
    return fit_splits(cfg)


def fit_splits(cfg: BaselineConfig, epochs_scale: float = 1.0) -> FitResult:
    """:func:`fit_baseline` through ``smie.pipeline.zsl.experiment.run_stage_two`` (F's driver: caches, protocol per split,
    run directories); ``epochs_scale`` multiplies the method's default epochs (``smie compare``).

    The number of epochs (and a cycle method's cycle length) is planned from the training-set size of the
    cache's own split; other splits of the same cache differ from it by a few classes at most.
    """
    from smie.features.visual import read_visual_header
    from smie.pipeline.zsl.experiment import cache_split, run_stage_two
    from smie.pipeline.data.partitions import SEEN_TRAIN

    cls = method_class(cfg.name)
    batch_size = getattr(cls, "default_batch_size", DEFAULT_BATCH_SIZE) if cfg.batch_size is None else cfg.batch_size
    schedule = getattr(cls, "default_schedule", "cosine") if cfg.schedule is None else cfg.schedule
    check_schedule(schedule)
    if batch_size < 1 or (cfg.epochs is not None and cfg.epochs < 0) or epochs_scale <= 0:
        raise SmieError("--batch-size must be >= 1, --epochs >= 0 and the epochs scale > 0")
    user = parse_options(cfg.options)
    _kwargs(cls, {}, user)
    kinds = method_kinds(cls, cfg.kinds)
    if getattr(cls, "kinds_if_available", False) and tuple(cfg.kinds) == ("label",):
        from smie.features.text import read_text

        have = set(read_text(cfg.text).kinds)
        kinds = tuple(k for k in kinds if k in have or k == kinds[0])
    head = read_visual_header(cfg.visual)
    base = cache_split(head)
    data_defaults = dict(getattr(cls, "defaults_by_classes", {}).get(len(head.class_names), {}))
    n_train = int(((np.asarray(head.partition) == SEEN_TRAIN) & np.isin(head.labels, list(base.seen))).sum())
    epochs, extra = plan_epochs(cls, n_train, batch_size, cfg.epochs, user, data_defaults)
    if cfg.epochs is None and epochs_scale != 1.0:
        epochs, extra = plan_epochs(cls, n_train, batch_size, max(1, round(epochs * epochs_scale)), user,
                                    data_defaults)
    options = _kwargs(cls, dict(data_defaults, **extra, seed=cfg.seed, n_kinds=len(kinds)), user)
    heads = _backbone_heads(cfg, head) if options.get("gate") == "msf" else {}
    settings = [{k: v for k, v in s.items() if k not in user} for s in getattr(cls, "settings_grid", ({},))]
    settings = [s for i, s in enumerate(settings) if s not in settings[:i]]
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    lr = cls.default_lr if cfg.lr is None else cfg.lr

    def factory(D: int, E: int):
        def make_model(**setting):
            model = cls(D, E, **options, **setting)
            model.steps_per_epoch = steps_per_epoch
            if heads:
                model.backbone_heads = heads
            return model
        return make_model

    cycles = "cycle_length" in extra
    loop_epochs = (extra["cycles"] if epochs else 0) if cycles else epochs
    config = dict(dataclasses.asdict(cfg), kinds_used=list(kinds), epochs_used=epochs, lr_used=lr,
                  batch_size_used=batch_size, schedule_used=schedule,
                  steps_used=loop_epochs * extra["cycle_length"] if cycles else epochs * steps_per_epoch,
                  model_options={k: v for k, v in options.items()})
    opts = FitOptions(loop_epochs, batch_size, lr, 15 if cfg.name.startswith("smie") else 0, 0.0, cfg.seed,
                      cfg.device, schedule, extra["cycle_length"] if cycles else None)
    return run_stage_two(config, method=cfg.name, model_factory=factory, settings=settings, visual=cfg.visual,
                         text=cfg.text, out=cfg.out, kinds=kinds, combine=cfg.combine, split=tuple(cfg.split),
                         opts=opts, gzsl=cfg.gzsl, needs_masked=getattr(cls, "uses_masked", False),
                         val_features=cfg.val_features, sweep_test=getattr(cls, "sweep_test", True))


def _backbone_heads(cfg: BaselineConfig, head) -> dict:
    """The classifier heads MSF's gate uses as its seen expert, by the features they belong to (``main``,
    ``validation``); refuse a cache without them, or a split whose seen classes the main head does not cover."""
    from smie.pipeline.data.splits import resolve_splits
    from smie.pipeline.zsl.experiment import cache_split

    where = f"{cfg.visual}: option gate='msf'"
    if not cfg.gzsl:
        raise SmieError(f"{where} is a GZSL gate; add --gzsl")
    if head.head is None:
        raise SmieError(f"{where} needs the backbone's classifier head in the visual cache; re-run extract-visual "
                        "with this smie version from a backbone checkpoint that has one")
    if head.validation is not None and head.validation.head is None and cfg.val_features != "main":
        raise SmieError(f"{where} needs the validation backbone's classifier head in the cache's validation view; "
                        "re-extract it, or select on the main features (--val-features main)")
    splits = [sp for spec in cfg.split for sp in resolve_splits(spec, len(head.class_names))] or [cache_split(head)]
    for sp in splits:
        missing = sorted(set(sp.seen) - set(head.head.classes))
        if missing:
            raise SmieError(f"{where}: the backbone's classifier head has no column for the seen classes "
                            f"{missing[:10]} of split {sp.id}")
    return {"main": head.head, "validation": head.validation.head if head.validation is not None else None}
