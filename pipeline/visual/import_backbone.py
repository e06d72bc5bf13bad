"""``smie import-backbone``: a published GCN checkpoint into an smie backbone checkpoint, through a state-dict map.

Formats:

- ``shiftgcn``: kchengiva/Shift-GCN (``model/shift_gcn.py``; ``main.py`` saves the ``state_dict`` with
  ``module.`` stripped), the format of the per-split weights SynSE ships (``shift_5_r/weights/``). Keys map one
  to one (``l1``..``l10``, ``gcn1``, ``tcn1``, ``Linear_weight``, ``Feature_Mask``, ``shift_in``/``shift_out``);
  the spatial shift indices are checked against smie's; ``fc`` is the classifier head.
- ``stgcn``: yysijie/st-gcn (``net/st_gcn.py``): ``data_bn``, ``st_gcn_networks.i.gcn.conv``, ``.tcn``,
  ``.residual``, ``edge_importance.i``, buffer ``A`` (checked against smie's graph); ``fcn`` (a 1x1 conv) is the
  classifier head.
- ``smie-stgcn``: YujieOuO/SMIE's encoder (``module/gcn/st_gcn.py``, ``hidden_channels=16``): ST-GCN's keys,
  no head.

Channel widths, input channels and bodies are read from the weights' shapes. A head over every class of the data
set keeps the rows of the classes the backbone was trained on (the split's seen classes; for ``--role
validation`` the seen minus ``val_unseen``); a head over only those classes is taken in their sorted order.
The checkpoint records the split, the partition protocol its training samples came from (``--protocol``,
NTU cross-subject by default, as SynSE's), the frame count its input was made with and no skeleton hash (it
was trained outside smie); provenance holds the source file's SHA-256.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from smie.features.store import SmieError, file_sha256, load_checkpoint_checked, provenance
from smie.pipeline.data.classes import class_table
from smie.pipeline.data.layouts import get_layout
from smie.pipeline.data.splits import registry, resolve_split
from smie.pipeline.visual.backbones import ARCHS, import_state_dict, save_checkpoint

FORMATS = {  # format -> (smie architecture, head key prefix or None, default input frames)
    "shiftgcn": ("shiftgcn", "fc", 300),  # Shift-GCN's NTU data are padded to 300 frames (data_gen/ntu_gendata.py)
    "stgcn": ("stgcn", "fcn", 300),  # st-gcn's NTU data likewise (tools/ntu_gendata.py, max_frame=300)
    "smie-stgcn": ("stgcn", None, 50),  # SMIE's config.py: max_frame = 50
}


@dataclass(frozen=True)
class ImportBackboneConfig:
    """``weights``: the published file; ``frames``: T of the input it expects (None: the format's own);
    ``role``: ``main`` or ``validation`` (trained without ``val_unseen``); ``protocol``/``val_fraction``/
    ``seed``: how smie recomputes which samples the backbone trained on (``extract-visual`` partitions)."""

    format: str
    weights: Path
    split: str
    out: Path
    frames: int | None = None
    role: str = "main"
    protocol: str | None = "ntu-xsub"
    val_fraction: float = 0.1
    seed: int = 0
    layout: str = "ntu-25"
    dataset: str | None = None


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors (a plain state dict, or one nested under ``state_dict``/``model``), with a
    ``module.`` prefix (DataParallel) stripped."""
    state = load_checkpoint_checked(path, "a published Shift-GCN / ST-GCN checkpoint (a weights-only state dict)")
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SmieError(f"{path}: not a state dict (a mapping of parameter names to tensors)")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def _need(state: dict, key: str, path: Path) -> torch.Tensor:
    if key not in state:
        raise SmieError(f"{path}: no '{key}' in the weights; not a checkpoint of this format")
    return state[key]


def model_config(fmt: str, state: dict, layout: str, path: Path) -> dict:
    """The smie constructor arguments that fit the weights' shapes."""
    V = get_layout(layout).num_joints
    if FORMATS[fmt][0] == "shiftgcn":
        first, last = _need(state, "l1.gcn1.Linear_weight", path), _need(state, "l10.gcn1.Linear_weight", path)
        C = first.shape[0]
        return dict(layout=layout, hidden_channels=int(first.shape[1]), hidden_dim=int(last.shape[1]),
                    in_channels=int(C), num_person=int(_need(state, "data_bn.weight", path).numel() // (C * V)))
    first, last = (_need(state, f"st_gcn_networks.{i}.gcn.conv.weight", path) for i in (0, 9))
    K = _need(state, "A", path).shape[0] if "A" in state else 3
    return dict(layout=layout, hidden_channels=int(first.shape[0] // K), hidden_dim=int(last.shape[0] // K),
                in_channels=int(first.shape[1]), edge_importance="edge_importance.0" in state)


def _check_derived(model: nn.Module, state: dict, path: Path) -> None:
    """The graph adjacency ``A`` and the spatial shift indices (``gcn1.shift_in``/``shift_out``) are fixed by the
    layout: the weights' must be smie's (another layout, joint order or graph partition would mix joints)."""
    own = model.state_dict()
    for key, value in state.items():
        if key.rsplit(".", 1)[-1] not in ("A", "shift_in", "shift_out") or key not in own:
            continue
        if own[key].shape != value.shape or not torch.allclose(own[key].double(), value.double(), atol=1e-6):
            raise SmieError(f"{path}: '{key}' differs from smie's for layout {model.config['layout']}: the weights "
                            "use another joint layout, joint order or graph partition")


def _head(fmt: str, state: dict, trained: list[int], K: int, path: Path) -> nn.Linear | None:
    """The classifier head restricted to ``trained`` classes (rows in their order), or None for a headless file."""
    prefix = FORMATS[fmt][1]
    if prefix is None or f"{prefix}.weight" not in state:
        return None
    weight = state.pop(f"{prefix}.weight")
    bias = state.pop(f"{prefix}.bias", torch.zeros(weight.shape[0]))
    weight = weight.reshape(weight.shape[0], -1)  # st-gcn's fcn is a 1x1 conv: (Kh, D, 1, 1)
    Kh = weight.shape[0]
    if Kh == K:
        rows = list(trained)
    elif Kh == len(trained):
        rows = list(range(Kh))
    else:
        raise SmieError(f"{path}: classifier head over {Kh} classes; expected {K} (every class of the data set) or "
                        f"{len(trained)} (the classes the backbone was trained on)")
    head = nn.Linear(weight.shape[1], len(trained))
    with torch.no_grad():
        head.weight.copy_(weight[rows].float())
        head.bias.copy_(bias[rows].float())
    return head


def import_backbone(cfg: ImportBackboneConfig) -> Path:
    """Map ``cfg.weights`` onto smie's module, check it, and save it as an smie backbone checkpoint."""
    if cfg.format not in FORMATS:
        raise SmieError(f"unknown format {cfg.format!r}; known: {', '.join(FORMATS)}")
    if cfg.role not in ("main", "validation"):
        raise SmieError(f"role must be main or validation, got {cfg.role!r}")
    entry = registry()["splits"].get(cfg.split.strip())
    dataset = entry["dataset"] if entry else cfg.dataset
    if dataset is None:
        raise SmieError(f"split {cfg.split} is not in the registry; name its data set (--dataset)")
    names = class_table(dataset)
    split = resolve_split(cfg.split, len(names), dataset)
    trained = [c for c in split.seen if cfg.role == "main" or c not in set(split.val_unseen)]
    path = Path(cfg.weights)
    state = read_state(path)
    arch, _, frames = FORMATS[cfg.format]
    config = model_config(cfg.format, state, cfg.layout, path)
    model = ARCHS[arch](**config)
    head = _head(cfg.format, state, trained, len(names), path)
    _check_derived(model, state, path)
    import_state_dict(model, state, path)
    imported = {"format": cfg.format, "weights": str(path), "sha256": file_sha256(path),
                "head": None if head is None else f"{len(trained)} rows of the trained classes"}
    save_checkpoint(cfg.out, model.eval(), split=split, partition={"protocol": cfg.protocol,
                                                                   "val_fraction": cfg.val_fraction, "seed": cfg.seed},
                    class_names=names, num_frames=cfg.frames or frames, skeleton_sha256="",
                    provenance=provenance(cfg, imported=imported), head=head, head_classes=trained, role=cfg.role)
    return Path(cfg.out)
