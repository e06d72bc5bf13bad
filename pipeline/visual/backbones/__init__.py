"""GCN backbones (ST-GCN, Shift-GCN) and their checkpoint: build, save, load, import foreign weights.

A backbone maps (N, C, T, V, M) skeletons to (N, D) features. The checkpoint (``smie.backbone``, see
docs/architecture.md) is a ``torch.save`` dict of tensors, strings, numbers, lists and dicts only, so it loads
with ``torch.load(weights_only=True)``; it records which classes the backbone saw so that later stages can
refuse a backbone whose seen classes overlap their evaluation classes (:func:`check_backbone_compatible`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from smie.features.store import SmieError, atomic_path, file_sha256
from smie.pipeline.data.layouts import Layout, custom_spec
from smie.pipeline.visual.backbones import shiftgcn, stgcn
from smie.pipeline.data.splits import Split

FORMAT = "smie.backbone"
VERSION = 1
ARCHS: dict[str, type[nn.Module]] = {"stgcn": stgcn.STGCN, "shiftgcn": shiftgcn.ShiftGCN}
SIZES: dict[str, dict[str, dict]] = {"stgcn": stgcn.SIZES, "shiftgcn": shiftgcn.SIZES}
_HEAD_PREFIXES = ("fc.", "classifier.", "head.", "cls_head.")
_WRAPPER_PREFIXES = ("module.", "encoder_q.", "encoder.", "backbone.", "model.")
_DERIVED = ("A", "shift_in", "shift_out", "num_batches_tracked")  # rebuilt from the config; may be absent


@dataclass(frozen=True)
class BackboneInfo:
    """What a backbone checkpoint says about itself; ``split`` is the split it was trained for.

    ``role`` is ``"main"`` (trained on all of ``split.seen``) or ``"validation"`` (trained on
    ``split.seen`` minus ``split.val_unseen`` only, so that stage-two selection on the ``val_unseen`` classes
    sees features of classes the backbone never learnt, as at test time); ``trained_classes`` are the classes
    its classifier actually saw (old checkpoints: ``split.seen``); ``head`` the checkpoint's pretraining
    classifier as saved (``head_state_dict`` tensors and ``head_classes``), so that nothing reads the file twice."""

    arch: str
    model_config: dict
    split: Split
    partition: dict
    class_names: tuple[str, ...]
    layout: str
    num_frames: int
    skeleton_sha256: str
    feature_dim: int
    sha256: str
    epoch: int = -1
    val_acc: float = float("nan")
    provenance: dict = dataclasses.field(default_factory=dict, compare=False)
    role: str = "main"
    trained_classes: tuple[int, ...] = ()
    head: dict = dataclasses.field(default_factory=dict, compare=False)

    def __post_init__(self):
        if not self.trained_classes:
            object.__setattr__(self, "trained_classes", tuple(self.split.seen))

    @property
    def layout_spec(self) -> dict | None:
        """The custom layout the backbone was built for, as data (None for a preset named by ``layout``)."""
        return self.model_config.get("layout_spec")


ROLES = ("main", "validation")


def build_backbone(arch: str, layout: "str | Layout", size: str = "small", **overrides: Any) -> nn.Module:
    """A freshly initialised backbone for ``layout`` (a preset name or a :class:`Layout`; a custom one travels
    in the model config, so the checkpoint carries it); ``size`` picks a channel preset, ``overrides`` set
    constructor fields."""
    if arch not in ARCHS:
        raise SmieError(f"unknown backbone architecture {arch!r}; known: {', '.join(ARCHS)}")
    if size not in SIZES[arch]:
        raise SmieError(f"unknown size {size!r} for {arch}; known: {', '.join(SIZES[arch])}")
    if isinstance(layout, Layout):
        spec = custom_spec(layout)
        layout = layout.name
        if spec is not None:
            overrides = {"layout_spec": spec, **overrides}
    return ARCHS[arch](layout=layout, **{**SIZES[arch][size], **overrides})


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    split: Split,
    partition: dict,
    class_names: tuple[str, ...] | list[str],
    num_frames: int,
    skeleton_sha256: str,
    provenance: dict,
    head: nn.Module | None = None,
    head_classes: tuple[int, ...] | list[int] = (),
    epoch: int = -1,
    val_acc: float = float("nan"),
    role: str = "main",
) -> None:
    """Write a backbone checkpoint atomically; ``head`` (the pretraining classifier over ``head_classes``, the
    classes the backbone was trained on); ``role`` as in :class:`BackboneInfo`."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    model = _unwrap(model)
    arch = next((name for name, cls in ARCHS.items() if isinstance(model, cls)), None)
    if arch is None:
        raise TypeError(f"not a smie backbone: {type(model).__name__}")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "arch": arch,
        "model_config": dict(model.config),
        "feature_dim": int(model.feature_dim),
        "state_dict": _cpu_state(model),
        "head_state_dict": _cpu_state(head) if head is not None else {},
        "head_classes": [int(c) for c in head_classes],
        "role": role,
        "split": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(split).items()},
        "partition": dict(partition),
        "class_names": list(class_names),
        "layout": model.config["layout"],
        "num_frames": int(num_frames),
        "skeleton_sha256": skeleton_sha256,
        "epoch": int(epoch),
        "val_acc": float(val_acc),
        "provenance": provenance,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _read(path: Path) -> dict:
    """The checkpoint through the checked door: a missing, damaged or wrong-kind file (a cache given as a
    checkpoint) is a one-line error that says what the file is."""
    from smie.features.store import load_checkpoint_checked

    if not path.exists():
        raise SmieError(f"{path}: no such backbone checkpoint")
    return load_checkpoint_checked(path)


@torch.no_grad()
def embed(module: nn.Module, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Frozen-backbone features (N, C, T, V, M) -> (N, D) float32, bf16 autocast on CUDA.

    extract-visual and predict both call this, so raw files at prediction time get exactly the precision of
    the cached features the estimator was trained on."""
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    with ctx:
        return module(x).float()


def load_backbone(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, BackboneInfo]:
    """The backbone in eval mode on ``device`` and its :class:`BackboneInfo` (``sha256`` of the file)."""
    path = Path(path)
    ckpt = _read(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise SmieError(f"{path}: not an smie backbone checkpoint (no format={FORMAT!r}); "
                        "a plain state dict can be imported with `pretrain-backbone --init`")
    if ckpt.get("version") != VERSION:
        raise SmieError(f"{path}: backbone checkpoint version {ckpt.get('version')} is not supported "
                        f"(this smie reads {VERSION})")
    if ckpt["arch"] not in ARCHS:
        raise SmieError(f"{path}: unknown architecture {ckpt['arch']!r}")
    model = ARCHS[ckpt["arch"]](**ckpt["model_config"])
    import_state_dict(model, ckpt["state_dict"], path)
    info = BackboneInfo(
        arch=ckpt["arch"],
        model_config=dict(ckpt["model_config"]),
        split=Split(**{k: tuple(v) if isinstance(v, list) else v for k, v in ckpt["split"].items()}),
        partition=dict(ckpt["partition"]),
        class_names=tuple(ckpt["class_names"]),
        layout=ckpt["layout"],
        num_frames=int(ckpt["num_frames"]),
        skeleton_sha256=ckpt["skeleton_sha256"],
        feature_dim=int(ckpt["feature_dim"]),
        sha256=file_sha256(path),
        epoch=int(ckpt.get("epoch", -1)),
        val_acc=float(ckpt.get("val_acc", float("nan"))),
        provenance=ckpt.get("provenance", {}),
        role=str(ckpt.get("role", "main")),
        trained_classes=tuple(int(c) for c in (ckpt.get("head_classes") or ckpt["split"]["seen"])),
        head={"state_dict": dict(ckpt.get("head_state_dict") or {}),
              "classes": [int(c) for c in ckpt.get("head_classes") or ()]},
    )
    return model.to(device).eval(), info


def _strip(state: dict[str, torch.Tensor], wanted: set[str]) -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes (DataParallel ``module.``, MoCo ``encoder_q.`` ...) until keys fit ``wanted``.

    Keys without the prefix are dropped with it (a MoCo checkpoint's ``encoder_k.*`` and ``queue``).
    """
    for _ in range(3):
        if any(k in wanted for k in state):
            break
        for prefix in _WRAPPER_PREFIXES:
            if any(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
                break
        else:
            break
    return {k: v for k, v in state.items() if not k.startswith(_HEAD_PREFIXES)}


def _first(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")


def import_state_dict(model: nn.Module, state: Any, source: str | os.PathLike) -> None:
    """Load weights trained elsewhere for the same architecture into ``model``.

    Accepts a plain state dict, one nested under ``state_dict``/``model``, or an smie checkpoint; strips
    ``module.``-style prefixes and classifier keys (``fc.*``). Mismatches raise :class:`SmieError` naming
    ``source`` and the first offending keys.
    """
    if isinstance(state, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SmieError(f"{source}: not a state dict (a mapping of parameter names to tensors)")
    target = model.state_dict()
    state = _strip(state, set(target))
    missing = [k for k in target if k not in state and k.rsplit(".", 1)[-1] not in _DERIVED]
    unexpected = [k for k in state if k not in target]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in target.items()
              if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        what = type(model).__name__ + str(getattr(model, "config", ""))
        parts = [f"{label}: {_first(items)}" for label, items in
                 (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)) if items]
        raise SmieError(f"{source}: weights do not fit {what}; " + "; ".join(parts))
    model.load_state_dict(state, strict=False)


def load_init_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Initialise ``model`` from a weights file (smie checkpoint or a foreign state dict) at ``path``."""
    import_state_dict(model, _read(Path(path)), path)


def check_backbone_compatible(
    info: BackboneInfo, split: Split, skeleton_sha256: str | None = None, class_names=None
) -> None:
    """Refuse a backbone whose training classes include a class that is unseen in ``split``.

    Also refuses a different class table (``split.num_classes``, ``class_names``) and, when
    ``skeleton_sha256`` is given, a different skeleton cache: the backbone's held-out samples are only known
    for the cache it was trained on. A backbone trained outside smie (``import-backbone``) records no skeleton
    hash; its training samples are the official partition its checkpoint names.
    """
    if info.split.num_classes != split.num_classes:
        raise SmieError(f"backbone was trained on a {info.split.num_classes}-class table, "
                        f"split {split.id} has {split.num_classes} classes")
    if class_names is not None and tuple(class_names) != tuple(info.class_names):
        raise SmieError("backbone was trained on another class table than these data")
    leaked = sorted(set(info.trained_classes) & set(split.unseen))
    if leaked:
        names = [info.class_names[c] if c < len(info.class_names) else str(c) for c in leaked]
        raise SmieError(f"backbone (split {info.split.id}) was trained on {len(leaked)} classes that are unseen "
                        f"in split {split.id}: {_first([f'{c} {n}' for c, n in zip(leaked, names)])}; "
                        "pretrain a backbone on this split's seen classes")
    if skeleton_sha256 is not None and info.skeleton_sha256 and skeleton_sha256 != info.skeleton_sha256:
        raise SmieError(f"backbone was trained on skeleton cache sha256 {info.skeleton_sha256[:12]}..., "
                        f"these data are {skeleton_sha256[:12]}...; its held-out samples are unknown here")
