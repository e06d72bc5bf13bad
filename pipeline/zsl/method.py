"""What a stage-two method implements: the calls the training loop and the protocol make, and nothing else.

A method is an ``nn.Module`` built as ``Model(visual_dim, sem_dim, params, context)``: ``params`` is the frozen
dataclass of its hyper-parameters (declared in its :class:`~smie.pipeline.zsl.spec.MethodSpec`), ``context``
the few facts of the run it may need (:class:`MethodContext`). Both are given at construction; nothing is set
on a method from outside afterwards. The loop and the protocol call only what :class:`Method` lists:

- ``loss(batch) -> scalar`` on one :class:`Batch` of seen-class training samples;
- ``finalize(train, class_sem)`` after training, before scoring (the generative baselines' second stage);
- ``scores(visual (N, D), class_sem (K, E)) -> (N, K)``, higher = more likely;
- ``optimizer(lr)``: the optimiser over its parameters at base learning rate ``lr`` (the loop's schedule scales
  every group's initial rate);
- ``gzsl_gate()``: an optional extra GZSL decision rule (:class:`GzslGate`) fitted on validation rows and applied
  at test time, or None. MSF's gate (a seen expert from the backbone's own classifier) is the one there is.

:class:`BaseMethod` gives the defaults (no second stage, Adam, no gate) and ``config``, the keyword arguments
that rebuild the module from a run directory (``visual_dim``, ``sem_dim`` and the hyper-parameters).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:  # pragma: no cover - typing only
    from smie.features.visual import BackboneHead


@dataclass
class Batch:
    """One training step's input. visual (B, D); masked (B, D) one masked view per sample, or None;
    labels (B,) int64 rows of ``class_sem``; class_sem (Kt, E) semantics of the training classes."""

    visual: torch.Tensor
    masked: torch.Tensor | None
    labels: torch.Tensor
    class_sem: torch.Tensor


@dataclass
class TrainSet:
    """Training samples of one experiment. visual (N, D); masked (N, Vw, D) or None; labels (N,) int64 rows of
    ``class_sem`` (Kt, E); class_ids (Kt,) the classes' indices in the caches' class table."""

    visual: torch.Tensor
    masked: torch.Tensor | None
    labels: torch.Tensor
    class_sem: torch.Tensor
    class_ids: tuple[int, ...] = ()

    def to(self, device: torch.device) -> "TrainSet":
        m = None if self.masked is None else self.masked.to(device)
        return TrainSet(self.visual.to(device), m, self.labels.to(device), self.class_sem.to(device),
                        self.class_ids)


@dataclass(frozen=True)
class MethodContext:
    """Facts of the run a method may read, fixed at construction.

    ``steps_per_epoch``: optimiser steps in one pass over the training set of the cache's own split (CADA-VAE
    counts its warm-up epochs from steps); ``heads``: the backbones' classifier heads stored in the visual
    cache, by the features they belong to (``main``, ``validation``; None where the cache has none), for a
    method whose GZSL gate uses the backbone as seen expert; ``logits``: the backbones' stored class scores
    (:class:`~smie.features.visual_groups.StoredLogits` of imported features' ``*_out.npy``) by view, where the
    cache has them instead of a head."""

    steps_per_epoch: int = 1
    heads: Mapping[str, "BackboneHead | None"] = field(default_factory=lambda: MappingProxyType({}))
    logits: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class GateRows:
    """Rows a GZSL gate decides on. ``scores`` (N, Ku): the method's scores over the ``unseen``-role classes;
    ``features`` (N, D): the rows' cached visual features, of the ``view`` (``main`` or ``validation``) whose
    backbone a seen expert may use; ``seen``/``unseen``: the classes of each role (indices into the class table); ``rows`` (N,): the rows' indices
    in the view's data (for stored scores looked up by row)."""

    scores: np.ndarray
    features: np.ndarray
    seen: tuple[int, ...]
    unseen: tuple[int, ...]
    view: str
    rows: np.ndarray | None = None


@runtime_checkable
class GzslGate(Protocol):
    """An extra GZSL decision rule. The protocol fits it in the validation phase on the ``val_unseen`` rows
    (unseen role) and the ``seen_val`` rows of the training classes (seen role), applies the fitted state to the
    final model's test rows, and reports S/U/H under ``gzsl.<key>`` (and ``selection.val_gzsl.<key>``)."""

    key: str

    def fit(self, unseen: GateRows, seen: GateRows, test_unseen: int, seed: int) -> dict:
        """The fitted state (JSON-able); ``test_unseen`` is the number of unseen classes of the split."""

    def predict(self, state: dict, rows: GateRows) -> np.ndarray:
        """Predicted class (an index into the class table, from ``rows.seen`` or ``rows.unseen``) per row (N,)."""

    def report(self, state: dict) -> dict:
        """The state's fields reported beside the test S/U/H."""


@runtime_checkable
class Method(Protocol):
    """The calls the loop (:func:`smie.pipeline.zsl.fit.train_method`) and the protocol make on a method, besides
    ``nn.Module``'s own (``parameters``, ``state_dict``, ``load_state_dict``, ``to``, ``train``, ``eval``)."""

    config: dict

    def loss(self, batch: Batch) -> torch.Tensor: ...

    def finalize(self, train: TrainSet, class_sem: torch.Tensor) -> None: ...

    def scores(self, visual: torch.Tensor, class_sem: torch.Tensor) -> torch.Tensor: ...

    def optimizer(self, lr: float) -> torch.optim.Optimizer: ...

    def gzsl_gate(self) -> GzslGate | None: ...


class BaseMethod(nn.Module):
    """Defaults of the contract, and the hyper-parameters kept as given: ``self.hparams`` (the frozen dataclass),
    ``self.context``; ``config`` rebuilds the module (``Model(**config)`` through its spec)."""

    def __init__(self, visual_dim: int, sem_dim: int, hparams: Any, context: MethodContext | None = None):
        super().__init__()
        self.visual_dim, self.sem_dim = int(visual_dim), int(sem_dim)
        self.hparams = hparams
        self.context = context or MethodContext()

    @property
    def config(self) -> dict:
        """``visual_dim``, ``sem_dim`` and every hyper-parameter: what ``model.pt`` records to rebuild the module."""
        return dict(visual_dim=self.visual_dim, sem_dim=self.sem_dim, **dataclasses.asdict(self.hparams))

    def finalize(self, train: TrainSet, class_sem: torch.Tensor) -> None:
        """No second stage."""

    def optimizer(self, lr: float) -> torch.optim.Optimizer:
        """Adam over every parameter."""
        from smie.pipeline.zsl.compute import adam

        return adam(self.parameters(), lr=lr)

    def gzsl_gate(self) -> GzslGate | None:
        """No extra GZSL gate."""
        return None
