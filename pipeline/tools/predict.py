"""``smie predict``: rank free-text action labels for raw skeleton files with a trained stage-two run.

Each file is read by the reader of its format, preprocessed exactly as ``smie prepare`` does (same layout,
frame count and centring as the backbone's training cache; the file's layout must be the one the checkpoint
records, a custom one included: same joints in the same order, same bones), embedded by the backbone, and
scored by the run's method (``scores(visual (N, D), class_sem (K, E)) -> (N, K)``) against the candidate
labels, encoded by the text encoder the run's text cache was made with and combined across the run's kinds by
the same :func:`smie.pipeline.zsl.fit.semantic_matrix`. Candidates need not be classes of any data set. A run
trained on description kinds (``action``, ``motion``, ...) has no descriptions of free-text candidates; the
candidate text stands in for each such kind (a warning says so).
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smie.features.store import SmieError

BATCH = 64
SUFFIX_FORMATS = {".skeleton": "ntu", "_skeleton3d.txt": "msr", ".pkl": "pyskl", ".npz": "npz", ".bvh": "bvh"}


@dataclass(frozen=True)
class PredictConfig:
    """``labels`` empty = the run's unseen classes; ``encoder`` None = the one recorded in the run;
    ``label_template`` None = the run's; ``center`` None = the centring of the backbone's skeleton cache
    (see :func:`prepare_settings`)."""

    backbone: Path
    run: Path
    labels: tuple[str, ...]
    files: tuple[Path, ...]
    format: str | None = None
    encoder: str | None = None
    top_k: int = 5
    device: str = "auto"
    label_template: str | None = None
    center: str | None = None


def infer_format(path: Path) -> str:
    name = path.name.lower()
    for suffix, fmt in SUFFIX_FORMATS.items():
        if name.endswith(suffix):
            return fmt
    raise SmieError(f"{path}: cannot tell the format from the file name; pass --format "
                    f"(one of the reader formats, e.g. {', '.join(sorted(set(SUFFIX_FORMATS.values())))})")


def prepare_settings(binfo, center: str | None = None) -> tuple[str, int]:
    """(centring, bodies) of the skeleton cache the backbone was trained on, so raw files are preprocessed alike.

    Bodies M come from the backbone's ``num_person`` (a GCN expects its training M; an extra all-zero body would
    shift the features); the centring from the skeleton cache's provenance when that file is still at the path
    the checkpoint records with the same SHA-256, else ``first`` (``smie prepare``'s default).
    """
    bodies = int(binfo.model_config.get("num_person", 2))
    if center is not None:
        return center, bodies
    rec = (binfo.provenance or {}).get("skeletons") or {}
    path = Path(rec["path"]) if isinstance(rec, dict) and rec.get("path") else None
    if path is not None and path.is_file() and rec.get("sha256") == binfo.skeleton_sha256:
        from smie.features.skeletons import read_skeleton_header

        found = (read_skeleton_header(path).provenance.get("config") or {}).get("center")
        if found:
            return str(found), bodies
    return "first", bodies


def _candidates(cfg: PredictConfig, info: dict) -> tuple[str, ...]:
    labels = tuple(lbl.strip() for lbl in cfg.labels)
    if not labels:
        names, unseen = info.get("class_names") or [], (info.get("split") or {}).get("unseen") or []
        labels = tuple(names[c] for c in unseen)
        if not labels:
            raise SmieError(f"{cfg.run}: records no unseen classes; give candidate labels")
    if any(not lbl for lbl in labels):
        raise SmieError("candidate labels must not be empty")
    dupes = sorted({lbl for lbl in labels if labels.count(lbl) > 1})
    if dupes:
        raise SmieError(f"candidate labels repeat: {', '.join(dupes)}")
    return labels


def class_semantics(labels: tuple[str, ...], info: dict, encoder, template: str) -> np.ndarray:
    """(K, E') semantics of free-text ``labels``, built like the run's: one text per kind, then
    :func:`smie.pipeline.zsl.fit.semantic_matrix` with the run's kinds and combine mode."""
    from smie.features.text import TextCache, TextKind
    from smie.pipeline.zsl.fit import semantic_matrix

    kinds = tuple(info.get("kinds") or ("label",))
    combine = info.get("combine", "concat")
    described = [k for k in kinds if k != "label"]
    if described:
        warnings.warn(f"the run uses description kinds {', '.join(described)}; free-text candidates have no "
                      "descriptions, so each candidate's own text stands in for them", stacklevel=2)
    named = encoder.encode([template.replace("{}", lbl) for lbl in labels])
    bare = encoder.encode(list(labels)) if described else named
    K = len(labels)
    groups = {k: TextKind((named if k == "label" else bare)[:, None, :], tuple((lbl,) for lbl in labels),
                          np.ones(K, np.int32)) for k in kinds}
    tc = TextCache(tuple(labels), np.arange(K), groups, encoder.id, encoder.spec, "", encoder.dim)
    return semantic_matrix(tc, kinds, combine)


def recorded_template(info: dict) -> str:
    """The label template of the run's text cache: from the run info, else from the text cache it names
    (when that file is still there), else the bare name ``{}``."""
    if info.get("label_template"):
        return str(info["label_template"])
    text = (((info.get("config") or {}).get("provenance") or {}).get("inputs") or {}).get("text") or {}
    path = Path(text.get("path", "")) if text.get("path") else None
    if path is not None and path.is_file():
        from smie.features.text import read_text

        return str((read_text(path).provenance.get("config") or {}).get("label_template") or "{}")
    return "{}"


def _encoder(cfg: PredictConfig, info: dict, device: str):
    from smie.pipeline.semantic.text_encoder import TextEncoder

    recorded = info.get("text_encoder_spec") or info.get("text_encoder")
    spec = cfg.encoder or recorded
    if not spec:
        raise SmieError(f"{cfg.run}: records no text encoder; pass --encoder")
    enc = TextEncoder(spec, device=device)
    want = info.get("text_weights_sha256")
    if want and enc.weights_sha256 != want:
        msg = (f"text encoder {spec!r} ({enc.id}) has other weights than the one the run was trained with "
               f"({info.get('text_encoder')}); its scores are not comparable")
        if cfg.encoder is None:
            raise SmieError(msg)
        warnings.warn(msg, stacklevel=2)
    return enc


def _features(cfg: PredictConfig, module, binfo, device) -> tuple[list[tuple[str, str]], np.ndarray]:
    """Read, preprocess and embed every sample of every file -> ([(file, sample_id)], (N, D) float32)."""
    import torch

    from smie.pipeline.visual.backbones import embed
    from smie.pipeline.data.layouts import layout_of
    from smie.pipeline.data.preprocess import preprocess_sample
    from smie.pipeline.data.readers import load_raw

    layout = layout_of(binfo, str(cfg.backbone))
    center, bodies = prepare_settings(binfo, cfg.center)
    keys, feats = [], []
    for path in cfg.files:
        path = Path(path)
        if not path.exists():
            raise SmieError(f"{path}: no such file")
        raw = load_raw(cfg.format or infer_format(path), path, max_bodies=bodies)
        found = layout_of(raw, str(path))
        if not found.same_skeleton(layout):
            raise SmieError(f"{path}: {found.describe()} skeletons, but the backbone {cfg.backbone} expects "
                            f"{layout.describe()}" + (" (same name, other joints or bones)" if found.name ==
                                                      layout.name else ""))
        if not raw.samples:
            raise SmieError(f"{path}: holds no usable sample ({'; '.join(r for _, r in raw.skipped) or 'empty'})")
        for b in range(0, len(raw.samples), BATCH):
            chunk = raw.samples[b : b + BATCH]
            x = np.stack([preprocess_sample(s.data, layout, binfo.num_frames, center, where=f"{path} {s.sample_id}")[0]
                          for s in chunk])
            feats.append(embed(module, torch.from_numpy(x).to(device), device).cpu().numpy())
        keys += [(str(path), s.sample_id) for s in raw.samples]
    return keys, np.concatenate(feats).astype(np.float32)


def predict(cfg: PredictConfig):
    """pandas DataFrame with one row per sample and rank: file, sample_id, rank (1 = best), label, score."""
    import pandas as pd
    import torch

    from smie.pipeline.visual.backbones import load_backbone
    from smie.pipeline.device import resolve_device
    from smie.pipeline.zsl.rundir import load_run

    if cfg.top_k < 1:
        raise SmieError(f"top-k must be at least 1, got {cfg.top_k}")
    if not cfg.files:
        raise SmieError("give at least one skeleton file")
    device = resolve_device(cfg.device)
    module, binfo = load_backbone(cfg.backbone, device)  # first: the checked door says what a wrong file is
    model, info = load_run(cfg.run, device=str(device))
    if info.get("backbone_sha256") and info["backbone_sha256"] != binfo.sha256:
        raise SmieError(f"{cfg.backbone}: not the backbone the run {cfg.run} was trained on "
                        f"(its features came from a backbone with SHA-256 {info['backbone_sha256'][:12]}...)")
    if info.get("visual_dim") and int(info["visual_dim"]) != binfo.feature_dim:
        raise SmieError(f"{cfg.backbone}: {binfo.feature_dim}-d features, the run expects {info['visual_dim']}")
    labels = _candidates(cfg, info)
    template = cfg.label_template or recorded_template(info)
    encoder = _encoder(cfg, info, device.type)
    sem = class_semantics(labels, info, encoder, template)
    expected = (info.get("model_config") or {}).get("sem_dim")
    if expected and int(expected) != sem.shape[1]:
        raise SmieError(f"text encoder {encoder.id} gives {sem.shape[1]}-d class semantics; the run expects {expected}")
    keys, feats = _features(cfg, module, binfo, device)
    with torch.no_grad():
        scores = model.scores(torch.from_numpy(feats).to(device), torch.from_numpy(sem).to(device)).float().cpu()
    k = min(cfg.top_k, len(labels))
    top = torch.topk(scores, k, dim=1)
    rows = [dict(file=f, sample_id=sid, rank=r + 1, label=labels[int(top.indices[i, r])],
                 score=float(top.values[i, r])) for i, (f, sid) in enumerate(keys) for r in range(k)]
    return pd.DataFrame(rows, columns=["file", "sample_id", "rank", "label", "score"])


def format_predictions(df, as_json: bool = False) -> str:
    """Text for the CLI: a JSON list of records, or one aligned table."""
    if as_json:
        return json.dumps(df.to_dict(orient="records"), indent=2)
    return df.to_string(index=False, float_format=lambda v: f"{v:.4f}")
