"""``smie fit-baseline``: train one baseline from the two caches with the same protocol and outputs as SMIE.

Everything but the method is shared with ``smie fit-estimator`` through ``smie.pipeline.zsl.experiment.run_stage_two``:
cache loading and class-table checks, per-split repartition, validation-based epoch selection, ZSL/GZSL test
metrics (``smie.pipeline.zsl.protocol``) and the run directory (``smie.pipeline.zsl.rundir``, reloadable with ``load_run``).
Per-method defaults (learning rate, epochs, semantic kinds) apply where the config leaves ``None`` (or the
default ``kinds=("label",)`` for a method that needs other kinds).
A method class may list ``settings_grid`` (constructor settings selected on validation by the protocol, as
``--alpha``/``--lam`` are for SMIE; a user ``--option`` fixes that setting) and ``sweep_test = False`` (only the
selected setting is retrained for the test phase).
Baselines train at a constant learning rate in their papers; the shared loop always applies a cosine decay
(``warmup=0`` here, so no warm-up), which is a deviation until the loop offers a constant schedule.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smie.features.store import SmieError
from smie.pipeline.zsl.fit import FitOptions
from smie.pipeline.zsl.experiment import FitResult

MAX_DEFAULT_EPOCHS = 200


@dataclass(frozen=True)
class BaselineConfig:
    """One method on one or more splits. ``epochs``/``lr`` None = the method's default; ``kinds`` are the text
    cache kinds fused into the class semantics (the PoS methods need ``verb``, ``noun``; MSF uses ``label``,
    ``action``, ``motion`` when left at the default)."""

    name: str
    visual: Path
    text: Path
    out: Path
    kinds: tuple[str, ...] = ("label",)
    combine: str = "concat"
    split: tuple[str, ...] = ()
    epochs: int | None = None
    lr: float | None = None
    batch_size: int = 128
    gzsl: bool = False
    device: str = "auto"
    seed: int = 0
    options: tuple[str, ...] = ()
    val_features: str = "auto"


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
                user: dict | None = None) -> tuple[int, dict]:
    """Epochs to run and constructor options that depend on them.

    Cycle-scheduled methods (SynSE, MSF) count their schedule in steps: by default ``cycles x cycle_length``
    steps (the code's 10 x 1700), capped at ``MAX_DEFAULT_EPOCHS`` epochs; when capped or when ``epochs`` is
    given, the cycle is shortened so the cycles fit the run, keeping the schedule's proportions. The user's
    ``cycles``/``cycle_length`` method options (``user``) replace the defaults; a given ``cycle_length`` is
    never shortened.
    """
    user = user or {}
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    if hasattr(cls, "default_cycles"):
        try:
            cycles = int(user.get("cycles", cls.default_cycles))
            cycle_length = int(user.get("cycle_length", cls.default_cycle_length))
        except (TypeError, ValueError):
            raise SmieError(f"method {cls.__name__}: options cycles and cycle_length must be integers, got "
                            f"{user.get('cycles')!r}, {user.get('cycle_length')!r}") from None
        if cycles < 1 or cycle_length < 1:
            raise SmieError(f"method {cls.__name__}: options cycles and cycle_length must be >= 1")
        if epochs is None:
            epochs = min(MAX_DEFAULT_EPOCHS, math.ceil(cycles * cycle_length / steps_per_epoch))
        if "cycle_length" not in user:
            cycle_length = min(cycle_length, max(1, epochs * steps_per_epoch // cycles))
        return epochs, dict(cycle_length=cycle_length, cycles=cycles)
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
    if cfg.batch_size < 1 or (cfg.epochs is not None and cfg.epochs < 0) or epochs_scale <= 0:
        raise SmieError("--batch-size must be >= 1, --epochs >= 0 and the epochs scale > 0")
    user = parse_options(cfg.options)
    _kwargs(cls, {}, user)
    kinds = method_kinds(cls, cfg.kinds)
    head = read_visual_header(cfg.visual)
    base = cache_split(head)
    n_train = int(((np.asarray(head.partition) == SEEN_TRAIN) & np.isin(head.labels, list(base.seen))).sum())
    epochs, extra = plan_epochs(cls, n_train, cfg.batch_size, cfg.epochs, user)
    if cfg.epochs is None and epochs_scale != 1.0:
        epochs, extra = plan_epochs(cls, n_train, cfg.batch_size, max(1, round(epochs * epochs_scale)), user)
    options = _kwargs(cls, dict(extra, seed=cfg.seed, n_kinds=len(kinds)), user)
    settings = [{k: v for k, v in s.items() if k not in user} for s in getattr(cls, "settings_grid", ({},))]
    settings = [s for i, s in enumerate(settings) if s not in settings[:i]]
    steps_per_epoch = max(1, math.ceil(n_train / cfg.batch_size))
    lr = cls.default_lr if cfg.lr is None else cfg.lr

    def factory(D: int, E: int):
        def make_model(**setting):
            model = cls(D, E, **options, **setting)
            model.steps_per_epoch = steps_per_epoch
            return model
        return make_model

    config = dict(dataclasses.asdict(cfg), kinds_used=list(kinds), epochs_used=epochs, lr_used=lr,
                  model_options={k: v for k, v in options.items()})
    opts = FitOptions(epochs, cfg.batch_size, lr, 15 if cfg.name.startswith("smie") else 0, 0.0, cfg.seed,
                      cfg.device)
    return run_stage_two(config, method=cfg.name, model_factory=factory, settings=settings, visual=cfg.visual,
                         text=cfg.text, out=cfg.out, kinds=kinds, combine=cfg.combine, split=tuple(cfg.split),
                         opts=opts, gzsl=cfg.gzsl, needs_masked=getattr(cls, "uses_masked", False),
                         val_features=cfg.val_features, sweep_test=getattr(cls, "sweep_test", True))
