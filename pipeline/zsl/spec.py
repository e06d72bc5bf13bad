"""What a stage-two method declares: its :class:`MethodSpec`. The runner and the protocol read only the spec.

Every method module ends with ``SPEC = MethodSpec(...)``, registered by name in :mod:`smie.pipeline.registry`.
The spec says how the method is trained and evaluated (learning rate, schedule and warm-up, batch size, budget,
evaluation cadence, which units may be selected), which class texts it reads, which settings the protocol
selects on validation, and which frozen dataclass holds its hyper-parameters (``params``; ``model`` is built as
``model(visual_dim, sem_dim, params, context)``, :mod:`smie.pipeline.zsl.method`).

A budget is a number of optimiser steps stated one of two ways (:class:`Epochs`, :class:`Cycles`); each
*unit* of it (a pass over the training set, or a cycle) is where the loss is reported, the learning rate
steps, and the model may be evaluated (:class:`smie.pipeline.zsl.fit.FitOptions` resolves it into steps).
A published recipe or a run's overrides are the same spec through ``dataclasses.replace``.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

from smie.features.store import SmieError

SCHEDULES = ("cosine", "constant")
SELECTABLE = ("after-warmup", "any")
MAX_DEFAULT_EPOCHS = 200


@dataclass(frozen=True)
class Epochs:
    """A budget of ``epochs`` passes over the training set, in shuffled batches (the last one smaller)."""

    epochs: int = 100


@dataclass(frozen=True)
class Cycles:
    """SynSE/MSF's budget: ``cycles`` cycles of ``length`` optimiser steps on full batches taken in turn from
    fresh permutations. The method's hyper-parameters carry ``cycles``, ``cycle_length`` and ``cycle_base`` (its
    loss weights follow the step within the cycle); by default the run is capped at ``max_epochs`` passes over
    the training set, the cycle shortened to fit (:func:`plan_units`)."""

    cycles: int = 10
    length: int = 1700
    max_epochs: int = MAX_DEFAULT_EPOCHS


@dataclass(frozen=True)
class RunFacts:
    """What a spec's ``check`` may test before anything trains: where the run reads, whether it evaluates GZSL,
    the cache's classifier heads and validation view, the features validation selects on, the splits, and the
    backbones' stored class scores by view (``main``, ``validation``: the imported validation set's)."""

    where: str
    gzsl: bool
    heads: Mapping[str, Any]
    has_validation_view: bool
    val_features: str
    splits: tuple
    logits: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class MethodSpec:
    """One stage-two method, declared.

    - ``name``: its registered name; ``model``/``params``: the ``nn.Module`` class and the frozen dataclass of its
      hyper-parameters (defaults are the method's; ``--option NAME=VALUE`` sets a field);
    - ``lr``, ``batch_size``, ``schedule`` (``cosine``: the official SMIE warm-up then cosine decay;
      ``constant``: the warm-up then the base rate), ``warmup`` (units of linearly rising rate), ``budget``;
    - ``eval_every``: the model is evaluated after every k-th unit (and the last, and the one the final phase
      keeps); the others are never selected. ``selectable``: ``after-warmup`` (the units after the warm-up, as the
      official SMIE code keeps epochs > 15; all units when the run is not longer) or ``any``;
    - ``kinds``: the text kinds it reads when the run leaves the default ``("label",)``; with
      ``kinds_if_available`` the kinds the text cache lacks are left out (the first is kept);
    - ``settings``: hyper-parameter settings the protocol validates and selects among (a user option fixes that
      field); ``sweep_test``: whether every setting is retrained for the test table, or only the selected one;
    - ``uses_masked``: whether training reads the cache's keyframe-masked views;
    - ``by_classes``: hyper-parameters for a class table of that size (MSF's NTU-120 ``latent``/``cycle_length``);
      ``run_params``: fields the run fills (``seed``: the run's seed; ``n_kinds``: the number of kinds read);
    - ``by_split(num_classes, num_unseen)``: hyper-parameters for a class table of ``num_classes`` whose cache split
      holds ``num_unseen`` unseen classes, applied after ``by_classes`` (SynSE's per-split ``latent`` and
      ``cycle_length``), or None; a user option wins over both;
    - ``check(params, facts)``: user errors to raise before anything trains (:class:`RunFacts`), or None;
    - ``reference_rows``: training rows of the data set the recipe was set for; with it, an :class:`Epochs`
      budget is the paper's number of optimiser steps, compressed at most ``max_compression`` times on smaller
      data (:func:`smie.pipeline.zsl.budget.plan_budget`, ``--budget paper-steps``) and evaluated at ``points``
      evenly spaced points; None: the recipe runs as the code counts it (``epochs`` passes, each evaluated).
    """

    name: str
    model: type
    params: type
    lr: float
    budget: Epochs | Cycles = Epochs()
    batch_size: int = 128
    schedule: str = "cosine"
    warmup: int = 0
    eval_every: int = 1
    selectable: str = "after-warmup"
    kinds: tuple[str, ...] = ("label",)
    kinds_if_available: bool = False
    settings: tuple[Mapping[str, Any], ...] = (MappingProxyType({}),)
    sweep_test: bool = True
    uses_masked: bool = False
    by_classes: Mapping[int, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    run_params: tuple[str, ...] = ()
    check: Callable[[Any, RunFacts], None] | None = None
    by_split: Callable[[int, int], Mapping[str, Any]] | None = None
    reference_rows: int | None = None
    max_compression: float = 1.0
    points: int = 25

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise SmieError(f"learning-rate schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.selectable not in SELECTABLE:
            raise SmieError(f"method {self.name}: selectable must be one of {', '.join(SELECTABLE)}")
        if (self.batch_size < 1 or self.warmup < 0 or self.eval_every < 1 or self.lr <= 0 or self.points < 1
                or self.max_compression < 1):
            raise SmieError(f"method {self.name}: batch size, warm-up, evaluation cadence or lr out of range")

    def make_params(self, options: Mapping[str, Any]) -> Any:
        """The hyper-parameters with ``options`` set; an option the method lacks is a user error."""
        known = [f.name for f in dataclasses.fields(self.params)]
        bad = sorted(set(options) - set(known))
        if bad:
            raise SmieError(f"method {self.name} has no option(s) {', '.join(bad)} (known: {', '.join(known)})")
        try:
            return self.params(**options)
        except TypeError as exc:
            raise SmieError(f"method {self.name}: {exc}") from None

    def build(self, visual_dim: int, sem_dim: int, context=None, **options):
        """A fresh module: ``model(visual_dim, sem_dim, make_params(options), context)``."""
        return self.model(visual_dim, sem_dim, self.make_params(options), context)

    def rebuild(self, config: Mapping[str, Any]):
        """The module a run directory's ``model_config`` describes (``visual_dim``, ``sem_dim``, hyper-parameters)."""
        options = dict(config)
        return self.build(options.pop("visual_dim"), options.pop("sem_dim"), **options)


def plan_units(spec: MethodSpec, n_train: int, batch_size: int, epochs: int | None,
               user: Mapping | None = None, defaults: Mapping | None = None) -> tuple[int, dict]:
    """Epochs (passes over the training set) to run and hyper-parameters that depend on them.

    :class:`Epochs` budgets run ``epochs`` (the spec's when None). :class:`Cycles` budgets count their schedule
    in steps: by default ``cycles x length`` steps (the code's 10 x 1700), capped at ``max_epochs`` epochs; when
    capped or when ``epochs`` is given, the cycle is shortened so the cycles fit the run, keeping the schedule's
    proportions. The user's ``cycles``/``cycle_length`` options (``user``) replace the budget's; a given
    ``cycle_length`` is never shortened. ``defaults`` replace the budget's (e.g. ``cycle_length=1900`` for
    NTU-120) and may be shortened; a shortened cycle whose constants are not the 1700-step ones gets
    ``cycle_base`` (the length the code's step constants are rescaled from,
    :func:`~smie.pipeline.zsl.baselines.vae.cycle_weights`).
    """
    user, defaults = dict(user or {}), dict(defaults or {})
    budget = spec.budget
    if isinstance(budget, Epochs):
        return (budget.epochs if epochs is None else epochs), {}
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    try:
        cycles = int(user.get("cycles", defaults.get("cycles", budget.cycles)))
        cycle_length = int(user.get("cycle_length", defaults.get("cycle_length", budget.length)))
    except (TypeError, ValueError):
        raise SmieError(f"method {spec.name}: options cycles and cycle_length must be integers, got "
                        f"{user.get('cycles')!r}, {user.get('cycle_length')!r}") from None
    if cycles < 1 or cycle_length < 1:
        raise SmieError(f"method {spec.name}: options cycles and cycle_length must be >= 1")
    if epochs is None:
        epochs = min(budget.max_epochs, math.ceil(cycles * cycle_length / steps_per_epoch))
    extra = {}
    if "cycle_length" not in user:
        base = cycle_length
        cycle_length = min(cycle_length, max(1, epochs * steps_per_epoch // cycles))
        if base != max(cycle_length, 1700):
            extra["cycle_base"] = base
    return epochs, dict(cycle_length=cycle_length, cycles=cycles, **extra)


def method_spec(name: str) -> MethodSpec:
    """The registered method ``name``'s spec (:data:`smie.pipeline.registry.METHODS`)."""
    from smie.pipeline import registry

    if name not in registry.METHODS:
        raise SmieError(f"unknown method {name!r}; known: {', '.join(registry.METHODS)}")
    return registry.resolve(registry.METHODS[name].ref)
