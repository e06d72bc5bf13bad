"""``smie fit-estimator``: SMIE from the two caches, with its settings given on the command line.

The run is SMIE's spec (:data:`smie.pipeline.zsl.estimator.SPEC`) with the command's values put in
(``dataclasses.replace``): learning rate, epochs, batch, warm-up, masked views only with the temporal constraint,
and the ``--alpha`` x ``--lam`` grid as the settings selected on validation. It runs through the same driver as
every method (:func:`smie.pipeline.zsl.runner.run_stage_two`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from smie.features.store import SmieError
from smie.pipeline.zsl.budget import fit_options
from smie.pipeline.zsl.compute import Compute
from smie.pipeline.zsl.estimator import NEGATIVES, SPEC
from smie.features.visual import read_visual_header
from smie.pipeline.zsl.runner import FitResult, StageTwoRun, run_stage_two, train_rows
from smie.pipeline.zsl.spec import Epochs


@dataclass(frozen=True)
class FitConfig:
    """``smie fit-estimator``. ``split`` empty = the split the visual cache was made for; several values (or a
    fold set such as ``smie:ntu60``) report mean and std. Several ``alpha``/``lam`` values form a sweep, the
    setting used for the test numbers being chosen on validation. Defaults are the official code's; the
    paper's Table 1 uses alpha 0.1 (NTU-60), 0.5 (NTU-120), 0.01 (PKU-MMD). ``hidden`` are the critic's two
    hidden widths (official 1024, 512). ``compute``: the CPU speed paths (:mod:`smie.pipeline.zsl.compute`)."""

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
    compute: Compute = Compute()
    score_on: str = "layernorm"
    budget: str = "paper-steps"
    score_center: str = "none"


def fit_estimator(cfg: FitConfig) -> FitResult:
    """Train and evaluate SMIE from the two caches alone; write the run directory ``cfg.out``."""
    return run_fit(cfg)


def _check_config(cfg: FitConfig) -> None:
    if cfg.negatives not in NEGATIVES:
        raise SmieError(f"--negatives must be one of {', '.join(NEGATIVES)}, got {cfg.negatives!r}")
    for flag, value, least in (("epochs", cfg.epochs, 0), ("batch-size", cfg.batch_size, 1), ("warmup", cfg.warmup, 0)):
        if value < least:
            raise SmieError(f"--{flag} is out of range (got {value})")
    if not cfg.alpha or not cfg.lam:
        raise SmieError("give at least one --alpha and one --lam value")


def run_fit(cfg: FitConfig) -> FitResult:
    """``smie fit-estimator``: SMIE's spec with the command's values, through :func:`run_stage_two`."""
    _check_config(cfg)
    spec = dataclasses.replace(SPEC, lr=cfg.lr, budget=Epochs(cfg.epochs), batch_size=cfg.batch_size,
                               warmup=cfg.warmup, uses_masked=cfg.temporal,
                               settings=tuple(dict(alpha=a, lam=lam) for a in cfg.alpha for lam in cfg.lam))
    n_train = train_rows(read_visual_header(cfg.visual))
    fit, budget = fit_options(spec, n_train, cfg.batch_size, cfg.lr, cfg.epochs, cfg.budget,
                              schedule=spec.schedule, seed=cfg.seed, device=cfg.device)
    return run_stage_two(StageTwoRun(
        method="smie", spec=spec, fit=fit, visual=cfg.visual, text=cfg.text, out=cfg.out,
        options=dict(hidden=cfg.hidden, temporal=cfg.temporal, negatives=cfg.negatives, score_on=cfg.score_on,
                     score_center=cfg.score_center), settings=spec.settings,
        kinds=cfg.kinds, combine=cfg.combine, split=cfg.split, gzsl=cfg.gzsl, val_features=cfg.val_features,
        record=cfg, compute=cfg.compute, budget=budget))

