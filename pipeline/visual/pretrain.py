"""`smie pretrain-backbone`: train a GCN backbone as a classifier over the SEEN classes of a split only.

Zero-shot numbers are only honest when the visual encoder never saw an unseen class, so the backbone is
trained here, on partition ``seen_train`` (:mod:`smie.pipeline.data.partitions`), and the checkpoint with the best
``seen_val`` accuracy is kept. Unseen-class samples (``unseen_test``, ``unused``) and ``seen_test`` never enter
training or selection; :func:`_check_allowed` raises if an index set ever holds an unseen label.

Defaults follow SMIE's feature generation (github.com/YujieOuO/SMIE_Generate_Feature, ``gen_config.py`` /
``gen_feature.py``): ST-GCN with 16 base channels and a 256-d feature, Adam at lr 5e-3, cosine annealing over
150 epochs, batch 128, a linear classifier (Xavier-initialised), cross entropy, no data augmentation.
Deviations: ``weight_decay`` defaults to 5e-4 (SMIE passes none to Adam: use ``weight_decay=0`` for the
faithful recipe); selection uses held-out ``seen_val`` samples where SMIE selected on its seen test set; the
classifier spans only the seen classes (SMIE's spans all 60/120/51, the unseen ones never getting a positive).

With ``validation=True`` it trains the split's *validation backbone*: the same recipe and the same sample
partition, on the classes ``seen minus val_unseen`` only. Its features are what stage two selects epochs and
settings on (the ``val_unseen`` classes then play unseen classes the backbone never learnt, as the real unseen
classes do at test time; SynSE's ``shift_val_*`` features follow the same protocol). :func:`_check_allowed`
raises if a sample of ``val_unseen`` or of an unseen class ever reaches its training or selection.

Runs on CUDA when present (bf16 autocast, pinned memory), else on CPU. Under torchrun (``WORLD_SIZE`` > 1) it
trains with DistributedDataParallel, ``batch_size`` being the global batch; only rank 0 writes. After every
epoch ``<out>.resume`` holds the full training state; a rerun resumes and ends exactly where an uninterrupted
run would.
"""
from __future__ import annotations

import dataclasses
import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from smie.features.skeletons import read_skeletons
from smie.features.store import SmieError, atomic_path, file_sha256, load_checkpoint_checked, provenance
from smie.pipeline.visual.backbones import FORMAT, build_backbone, check_backbone_compatible, load_backbone, load_init_weights
from smie.pipeline.visual.backbones import save_checkpoint
from smie.pipeline.data.layouts import layout_of
from smie.pipeline.data.partitions import SEEN_TRAIN, SEEN_VAL, assign_partitions
from smie.pipeline.data.splits import Split, resolve_split
from smie.pipeline.visual.pretrain_loop import DistEnv, evaluate, make_loader, run_epoch, setup_distributed

RESUME_FORMAT = "smie.pretrain-resume"


@dataclass(frozen=True)
class PretrainConfig:
    """Where the data are, which split's seen classes to train on, and the optimisation recipe."""

    skeletons: Path
    split: str
    out: Path
    arch: str = "stgcn"
    size: str = "small"
    epochs: int = 150
    batch_size: int = 128
    lr: float = 5e-3
    weight_decay: float = 5e-4
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    protocol: str | None = None
    device: str = "auto"
    seed: int = 0
    resume: bool = True
    init: Path | None = None
    num_workers: int = 0
    progress: bool = True
    validation: bool = False


@dataclass(frozen=True)
class PretrainResult:
    path: Path
    best_val_acc: float
    best_epoch: int
    epochs_run: int
    resumed_from: int = 0
    history: tuple[dict, ...] = ()  # per epoch: loss, train_acc, val_acc, epoch (1-based)


class Classifier(nn.Module):
    """Backbone plus the linear head over the seen classes; the head exists only during pretraining."""

    def __init__(self, backbone: nn.Module, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.feature_dim, num_classes)
        nn.init.xavier_normal_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V, M) -> (N, num_seen) logits."""
        return self.head(self.backbone(x))


def trained_classes(split: Split, validation: bool) -> tuple[int, ...]:
    """The classes a backbone of this role learns: the seen ones, minus ``val_unseen`` for the validation one."""
    if not validation:
        return tuple(split.seen)
    return tuple(c for c in split.seen if c not in set(split.val_unseen))


def _check_allowed(labels: np.ndarray, index: np.ndarray, split: Split, what: str, validation: bool) -> None:
    """Raise if any sample in ``index`` belongs to a class unseen in ``split`` (or, for the validation
    backbone, to one of ``split.val_unseen``)."""
    forbidden = list(split.unseen) + (list(split.val_unseen) if validation else [])
    leaked = np.isin(labels[index], forbidden)
    if leaked.any():
        classes = sorted(set(labels[index][leaked].tolist()))
        kind = "unseen or validation (val_unseen)" if validation else "unseen"
        raise SmieError(f"refusing to pretrain: {int(leaked.sum())} {what} samples belong to {kind} classes "
                        f"{classes} of split {split.id}")


def ids_sha256(sample_ids) -> str:
    """Order-free fingerprint of a set of sample ids (recorded for the training and validation sets)."""
    return hashlib.sha256("\n".join(sorted(sample_ids)).encode("utf-8")).hexdigest()


def resume_path(out: Path) -> Path:
    return Path(out).with_name(Path(out).name + ".resume")


def vet_init(path: Path, split: Split, class_names) -> dict:
    """Check ``--init`` weights against ``split``; the returned ``{path, sha256, verified}`` goes to provenance.

    An smie checkpoint records its training split, so one that saw a class unseen in ``split`` is refused
    (:class:`SmieError`). Foreign weights record nothing: smie cannot tell which classes they saw, so they load
    with a warning and ``verified`` False; an smie checkpoint that was itself started from unverified weights
    inherits that.
    """
    path = Path(path)
    raw = load_checkpoint_checked(path, expected="--init weights: an smie backbone checkpoint or a state dict (.pt)")
    verified = isinstance(raw, dict) and raw.get("format") == FORMAT
    if verified:
        _, info = load_backbone(path)
        try:
            check_backbone_compatible(info, split, class_names=class_names)
        except SmieError as exc:
            raise SmieError(f"{path}: refusing --init: {exc}") from None
        verified = bool((info.provenance.get("init") or {}).get("verified", True))
        if not verified:
            warnings.warn(f"{path}: this smie checkpoint was itself initialised from unverified weights; "
                          f"smie cannot verify that they never saw a class unseen in split {split.id}", stacklevel=3)
    else:
        warnings.warn(f"{path}: foreign --init weights; smie cannot verify which classes they were trained on, so "
                      f"zero-shot results on split {split.id} are only honest if they never saw its unseen classes",
                      stacklevel=3)
    return {"path": str(path), "sha256": file_sha256(path), "verified": verified}


def _fingerprint(cfg: PretrainConfig, skeleton_sha: str, world: int) -> dict:
    keep = ("split", "arch", "size", "epochs", "batch_size", "lr", "weight_decay", "val_fraction",
            "test_fraction", "protocol", "seed", "validation")
    fp = {k: getattr(cfg, k) for k in keep}
    fp.update(skeleton_sha256=skeleton_sha, world_size=world, init=str(cfg.init) if cfg.init else None)
    return fp


def _load_resume(path: Path, fingerprint: dict) -> dict | None:
    if not path.is_file():
        return None
    try:
        state = load_checkpoint_checked(path, expected="a pretraining resume file")
    except SmieError as exc:
        raise SmieError(f"unreadable resume file: {exc}; delete it or pass --no-resume") from None
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
        raise SmieError(f"{path}: not a pretraining resume file; delete it or pass --no-resume")
    if state["fingerprint"] != fingerprint:
        diff = sorted(k for k in fingerprint if state["fingerprint"].get(k) != fingerprint[k])
        raise SmieError(f"{path}: left by a run with other settings ({', '.join(diff)}); "
                        "delete it or pass --no-resume")
    return state


def pretrain_backbone(cfg: PretrainConfig, on_epoch: Callable[[int, dict], None] | None = None) -> PretrainResult:
    """Train on seen classes, keep the best ``seen_val`` checkpoint at ``cfg.out``; see the module docstring.

    ``on_epoch(epochs_done, stats)`` is called after each epoch once its resume state is written.
    """
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise SmieError(f"epochs and batch_size must be positive (got {cfg.epochs}, {cfg.batch_size})")
    env = setup_distributed(cfg.device)
    sset = read_skeletons(cfg.skeletons)
    skeleton_sha = file_sha256(cfg.skeletons)
    split = resolve_split(cfg.split, len(sset.class_names), sset.dataset or None)
    part = assign_partitions(sset.labels, sset.meta, split, cfg.protocol, cfg.val_fraction, cfg.test_fraction,
                             cfg.seed)
    classes = trained_classes(split, cfg.validation)
    own = np.isin(sset.labels, classes)
    train_idx, val_idx = np.flatnonzero((part == SEEN_TRAIN) & own), np.flatnonzero((part == SEEN_VAL) & own)
    _check_allowed(sset.labels, train_idx, split, "training", cfg.validation)
    _check_allowed(sset.labels, val_idx, split, "validation", cfg.validation)
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise SmieError(f"{cfg.skeletons}: split {split.id} leaves {len(train_idx)} training and {len(val_idx)} "
                        "validation samples of seen classes; both must be non-empty (raise val_fraction?)")
    steps = -(-len(train_idx) // cfg.batch_size)
    if steps < 10:
        warnings.warn(f"{cfg.skeletons}: only {steps} optimiser steps per epoch ({len(train_idx)} training samples, "
                      f"batch {cfg.batch_size}); BatchNorm running statistics lag with so few steps (MSR Action3D "
                      "at batch 128 stays at chance on validation). Consider --batch-size 16.", stacklevel=2)
    guard = (dataclasses.replace(split, unseen=tuple(split.unseen) + tuple(split.val_unseen)) if cfg.validation
             else split)
    init = vet_init(cfg.init, guard, sset.class_names) if cfg.init is not None else None
    head_of = np.full(len(sset.class_names), -1, dtype=np.int64)
    head_of[list(classes)] = np.arange(len(classes))

    N, C, T, V, M = sset.data.shape
    torch.manual_seed(cfg.seed)
    backbone = build_backbone(cfg.arch, layout_of(sset, str(cfg.skeletons)), cfg.size, in_channels=C, num_person=M)
    model = Classifier(backbone, len(classes))
    fingerprint = _fingerprint(cfg, skeleton_sha, env.world)
    rpath = resume_path(cfg.out)
    state = _load_resume(rpath, fingerprint) if cfg.resume else None
    if state is not None:
        model.load_state_dict(state["model"])
    elif cfg.init is not None:
        load_init_weights(model.backbone, cfg.init)
    model.to(env.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    start, best_acc, best_epoch, history = 0, -1.0, 0, []
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, best_acc, best_epoch = state["epoch"], state["best_val_acc"], state["best_epoch"]
        history = list(state["history"])
        torch.set_rng_state(state["rng_cpu"])
        if env.device.type == "cuda" and state["rng_cuda"] is not None:
            torch.cuda.set_rng_state(state["rng_cuda"], env.device)
    net = env.wrap(model)

    data = torch.from_numpy(sset.data)
    labels = torch.from_numpy(head_of[sset.labels])
    val_loader = make_loader(data, labels, val_idx, cfg.batch_size, env, shuffle=False, seed=cfg.seed,
                             num_workers=cfg.num_workers, distributed=False)
    served_train: set[int] = set()
    for epoch in range(start, cfg.epochs):
        loader = make_loader(data, labels, train_idx, cfg.batch_size, env, shuffle=True, seed=cfg.seed,
                             epoch=epoch, num_workers=cfg.num_workers)
        stats = run_epoch(net, loader, optimizer, env, served=served_train,
                          desc=f"epoch {epoch + 1}/{cfg.epochs}", progress=cfg.progress)
        scheduler.step()
        stats["val_acc"], served_val = evaluate(net, val_loader, env)
        _check_allowed(sset.labels, np.fromiter(served_train | served_val, np.int64), split, "served",
                       cfg.validation)
        stats["epoch"] = epoch + 1
        history.append(stats)
        if stats["val_acc"] > best_acc:
            best_acc, best_epoch = stats["val_acc"], epoch + 1
            if env.rank == 0:
                _save_best(cfg, model, split, sset, skeleton_sha, best_epoch, best_acc, history, train_idx,
                           val_idx, served_train, served_val, env, init)
        if env.rank == 0:
            _save_resume(rpath, fingerprint, model, optimizer, scheduler, epoch + 1, best_acc, best_epoch,
                         history, env)
            if cfg.progress:
                print(f"epoch {epoch + 1}/{cfg.epochs}: loss {stats['loss']:.4f} train acc {stats['train_acc']:.3f} "
                      f"seen-val acc {stats['val_acc']:.3f} (best {best_acc:.3f} @ {best_epoch})", flush=True)
        env.barrier()
        if on_epoch is not None:
            on_epoch(epoch + 1, stats)
    if env.rank == 0 and rpath.exists():
        rpath.unlink()
    env.close()
    return PretrainResult(Path(cfg.out), float(best_acc), best_epoch, cfg.epochs - start, start, tuple(history))


def _save_best(cfg, model, split, sset, skeleton_sha, best_epoch, best_acc, history, train_idx, val_idx,
               served_train, served_val, env: DistEnv, init: dict | None) -> None:
    ids = sset.sample_ids
    prov = provenance(
        cfg,
        init=init,
        skeletons={"path": str(cfg.skeletons), "sha256": skeleton_sha},
        train_samples=len(train_idx),
        train_ids_sha256=ids_sha256(ids[i] for i in train_idx),
        served_train_ids_sha256=ids_sha256(ids[i] for i in served_train),
        val_samples=len(val_idx),
        val_ids_sha256=ids_sha256(ids[i] for i in val_idx),
        served_val_ids_sha256=ids_sha256(ids[i] for i in served_val),
        history=history,
        device=str(env.device),
        world_size=env.world,
    )
    save_checkpoint(
        cfg.out, model.backbone, split=split,
        partition={"protocol": cfg.protocol, "val_fraction": cfg.val_fraction,
                   "test_fraction": cfg.test_fraction, "seed": cfg.seed},
        class_names=sset.class_names, num_frames=sset.data.shape[2], skeleton_sha256=skeleton_sha,
        provenance=prov, head=model.head, head_classes=trained_classes(split, cfg.validation), epoch=best_epoch,
        val_acc=best_acc, role="validation" if cfg.validation else "main",
    )


def _save_resume(path, fingerprint, model, optimizer, scheduler, epoch, best_acc, best_epoch, history, env) -> None:
    state = {
        "format": RESUME_FORMAT, "fingerprint": fingerprint, "epoch": epoch,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "best_val_acc": float(best_acc), "best_epoch": int(best_epoch), "history": history,
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state(env.device) if env.device.type == "cuda" else None,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
