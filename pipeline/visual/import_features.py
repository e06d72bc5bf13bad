"""``smie import-features``: SynSE-layout feature folders (SynSE, MSF, SA-DVAE, TDSM, SMIE) into one visual cache.

The split comes from the registry (``synse:ntu60:55/5`` ...) and is checked against the labels found
(:mod:`smie.pipeline.visual.synse_folders` reads and checks the files). Rows map onto smie's partitions so that
stage two runs the paper's protocol on them (docs/reproduce.md):

- main folder (its backbone learnt the split's seen classes): ``train`` -> ``seen_train`` (``val_fraction`` of
  each class, 0.1 by default, -> ``seen_val``, seeded; the backbone was trained on these rows too); ``gtest`` -> ``seen_test`` (seen classes) and ``unseen_test`` (unseen
  classes); ``ztest`` holds the same samples as ``gtest``'s unseen rows (checked row by row) and is not stored
  twice; when it does not (or there is no ``gtest``, or SMIE's ``test``), its rows are ``unseen_test`` and
  ``gtest``'s unseen rows ``unused``.
- validation folder -> ``validation_set`` (its backbone never learnt ``val_unseen``): ``train`` ->
  ``seen_train``, ``ztest`` and ``val`` -> ``seen_val``.
- ``X_out.npy`` -> stored ``logits`` of X's rows (MSF's seen-class expert).

The features have no keyframe-masked views (``masked`` is (N, 0, D), masking variant ``none``): SMIE's temporal
constraint cannot run on them (``--no-temporal`` / ``smie-notemporal``), and ``smie inspect`` says so. Every
input file's SHA-256 and folder are in the provenance; the cache is written atomically (nothing is left
behind on an error).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smie.features.store import SmieError, file_sha256, provenance
from smie.features.visual import StoredLogits, ValidationSet, VisualCache, write_visual
from smie.pipeline.data.classes import class_table
from smie.pipeline.data.partitions import (PARTITION_NAMES, SEEN_TEST, SEEN_TRAIN, SEEN_VAL, UNSEEN_TEST, UNUSED,
                                           stratified_split)
from smie.pipeline.data.splits import registry, resolve_split
from smie.pipeline.visual.synse_folders import (MAIN_KINDS, VALIDATION_KINDS, Part, check_dims, check_folder_name,
                                                folder_kind, match_rows, read_part, resolve_labels)

NO_MASKING = {"variant": "none", "k": 0, "drop": 0, "views": 0, "seed": 0}


@dataclass(frozen=True)
class ImportFeaturesConfig:
    """``folder``: the main feature folder; ``validation_folder``: its validation folder (None: the sibling named
    the SynSE way, ``shift_5_r`` -> ``shift_val_5_r``, when ``find_validation`` and it exists); ``labels``:
    ``auto``, ``global`` or ``local`` ids; ``val_fraction``: share of each seen class's ``train`` rows held out
    as ``seen_val`` (stage two's selection and GZSL calibration on the main features need them; 0 keeps every
    row for training, as the official codes do);
    ``dataset``: needed only for a split outside the registry; ``backbone_weights``: the published backbone
    checkpoint whose SHA-256 the cache records (None: the single ``weights/*.pt`` in the folder, if any)."""

    folder: Path
    split: str
    out: Path
    validation_folder: Path | None = None
    find_validation: bool = True
    labels: str = "auto"
    val_fraction: float = 0.1
    seed: int = 0
    arch: str = "shiftgcn"
    dataset: str | None = None
    backbone_weights: Path | None = None


@dataclass(frozen=True)
class ImportResult:
    path: Path
    num_samples: int
    partitions: dict[str, int]
    validation_rows: int
    label_convention: str
    notes: tuple[str, ...]


def _split(cfg: ImportFeaturesConfig):
    entry = registry()["splits"].get(cfg.split.strip())
    dataset = entry["dataset"] if entry else cfg.dataset
    if dataset is None:
        raise SmieError(f"split {cfg.split} is not in the registry; name its data set (--dataset ntu60 ...)")
    if cfg.dataset is not None and cfg.dataset != dataset:
        raise SmieError(f"split {cfg.split} is a {dataset} split, not {cfg.dataset}")
    return resolve_split(cfg.split, len(class_table(dataset)), dataset), dataset


def sibling_validation_folder(folder: Path) -> Path:
    """SynSE's and SA-DVAE's name for a main folder's validation folder: ``val_`` before the unseen count."""
    return folder.with_name(re.sub(r"(\d+(?:_r)?)$", r"val_\1", folder.name))


def _weights_sha(folder: Path, given: Path | None) -> tuple[str, str | None]:
    found = sorted((folder / "weights").glob("*.pt")) if (folder / "weights").is_dir() else []
    path = given or (found[0] if len(found) == 1 else None)
    return (file_sha256(path), str(path)) if path is not None else ("", None)


def _logits(parts_rows: list[tuple[Part, np.ndarray]], K: int, trained: tuple[int, ...]) -> StoredLogits | None:
    """The parts' ``*_out.npy`` scores at their rows; columns are every class (C = K) or the trained classes in
    sorted order (C = len(trained)); every file of a folder must have the same columns."""
    have = [(p, rows) for p, rows in parts_rows if p.logits is not None]
    if not have:
        return None
    C = have[0][0].logits.shape[1]
    for p, _ in have:
        if p.logits.shape[1] not in (K, len(trained)) or p.logits.shape[1] != C:
            raise SmieError(f"{p.files[2]}: {p.logits.shape[1]} score columns; expected {K} (every class) or "
                            f"{len(trained)} (the classes its backbone learnt), the same in every *_out.npy file")
    rows = np.concatenate([r for _, r in have])
    values = np.concatenate([p.logits for p, _ in have])
    order = np.argsort(rows, kind="stable")
    classes = tuple(range(K)) if C == K else tuple(sorted(trained))
    source = tuple({"file": str(p.files[2]), "rows": int(len(r))} for p, r in have)
    return StoredLogits(rows[order], values[order], classes, source)


def _main_rows(cfg, kind: str, parts: dict[str, Part], labels: dict[str, np.ndarray], split, notes: list[str]):
    """(features, labels, partition, sample ids, [(part, its rows in the cache)], val_fraction) of the main
    folder, rows in file order."""
    tag = Path(cfg.folder).name
    feats, labs, codes, ids, at = [], [], [], [], []

    def add(role: str, code: np.ndarray, rows: np.ndarray | None = None) -> None:
        p = parts[role]
        start = sum(len(f) for f in feats)
        feats.append(p.features)
        labs.append(labels[role])
        codes.append(code)
        ids.append([f"{tag}/{p.files[0].stem}:{i:06d}" for i in range(len(p.labels))])
        at.append((p, start + np.arange(len(p.labels)) if rows is None else rows))

    code = np.full(len(labels["train"]), SEEN_TRAIN, np.int8)
    vf = cfg.val_fraction
    if not 0.0 <= vf < 1.0:
        raise SmieError(f"val_fraction must be in [0, 1), got {vf}")
    if vf > 0:
        _, held = stratified_split(labels["train"], np.arange(len(code)), (vf,), cfg.seed)
        code[held] = SEEN_VAL
    add("train", code)
    test_role = "test" if kind == "smie" else "ztest"
    if "gtest" in parts:
        g, gl = parts["gtest"], labels["gtest"]
        gcode = np.where(np.isin(gl, list(split.unseen)), UNSEEN_TEST, SEEN_TEST).astype(np.int8)
        u = np.flatnonzero(gcode == UNSEEN_TEST)
        m = match_rows(parts["ztest"].features, g.features[u], labels["ztest"], gl[u])
        base = sum(len(f) for f in feats)
        if m is not None:
            add("gtest", gcode)
            if g.logits is None:  # ztest's scores then belong to the gtest rows of its samples
                at.append((parts["ztest"], base + u[m]))
            notes.append(f"ztest.npy holds the same {len(m)} samples as gtest.npy's unseen-class rows (matched row "
                         "by row); stored once, as unseen_test")
        else:
            gcode[u] = UNUSED
            add("gtest", gcode)
            add("ztest", np.full(len(labels["ztest"]), UNSEEN_TEST, np.int8))
            notes.append("ztest.npy is not the same samples as gtest.npy's unseen rows: ztest rows are unseen_test "
                         "(ZSL and GZSL's unseen half), gtest's unseen rows are unused")
    else:
        add(test_role, np.full(len(labels[test_role]), UNSEEN_TEST, np.int8))
        notes.append("no gtest.npy: seen_test is empty, so GZSL tests the seen classes on seen_val "
                     "(stage two flags it as optimistic)")
    return (np.concatenate(feats), np.concatenate(labs), np.concatenate(codes), tuple(i for b in ids for i in b),
            at, vf)


def _validation_set(cfg, folder: Path, split, dataset: str, convention: str, D: int, inputs: dict) -> ValidationSet:
    """The validation folder as a :class:`ValidationSet` (its files' hashes added to ``inputs``)."""
    K = len(class_table(dataset))
    check_folder_name(folder, split, dataset)
    folder_kind(folder, VALIDATION_KINDS)
    train_classes = tuple(c for c in split.seen if c not in set(split.val_unseen))
    parts = {r: read_part(folder, r) for r in ("train", "ztest", "val")}
    if check_dims(list(parts.values())) != D:
        raise SmieError(f"{parts['train'].files[0]}: {parts['train'].features.shape[1]}-d features, but the main "
                        f"folder's are {D}-d: the folders come from different backbones")
    allowed = {"train": train_classes, "ztest": tuple(split.val_unseen), "val": tuple(split.seen)}
    local = dict(allowed, val=train_classes)
    labels, _ = resolve_labels(list(parts.values()), allowed, local, convention, folder)
    order = ("train", "ztest", "val")
    starts = np.cumsum([0] + [len(parts[r].labels) for r in order])
    codes = [np.full(len(parts[r].labels), SEEN_TRAIN if r == "train" else SEEN_VAL, np.int8) for r in order]
    for p in parts.values():
        inputs.update({f"{folder.name}/{f.name}": {"path": str(f), "sha256": file_sha256(f)} for f in p.files})
    sha, weights = _weights_sha(folder, None)
    logits = _logits([(parts[r], starts[i] + np.arange(len(parts[r].labels))) for i, r in enumerate(order)],
                     K, train_classes)
    return ValidationSet(
        features=np.concatenate([parts[r].features for r in order]), labels=np.concatenate([labels[r] for r in order]),
        partition=np.concatenate(codes),
        sample_ids=tuple(f"{folder.name}/{r}:{i:06d}" for r in order for i in range(len(parts[r].labels))),
        backbone_sha256=sha, backbone_arch=cfg.arch, trained_classes=train_classes, logits=logits,
        provenance={"folder": str(folder), "backbone_weights": weights})


def import_features(cfg: ImportFeaturesConfig) -> ImportResult:
    """Read, check and map the folders of ``cfg``; write the visual cache; say what went where."""
    split, dataset = _split(cfg)
    names = class_table(dataset)
    K, folder = len(names), Path(cfg.folder)
    check_folder_name(folder, split, dataset)
    kind = folder_kind(folder, MAIN_KINDS)
    roles = {"synse": ("train", "ztest", "gtest"), "synse-zsl": ("train", "ztest"), "smie": ("train", "test")}[kind]
    parts = {r: read_part(folder, r) for r in roles}
    D = check_dims(list(parts.values()))
    allowed = {"train": split.seen, "ztest": split.unseen, "test": split.unseen, "gtest": tuple(range(K))}
    labels, convention = resolve_labels(list(parts.values()), allowed, allowed, cfg.labels, folder)
    val_folder = cfg.validation_folder
    if val_folder is None and cfg.find_validation and sibling_validation_folder(folder).is_dir():
        val_folder = sibling_validation_folder(folder)
    inputs: dict = {}
    vset = (_validation_set(cfg, Path(val_folder), split, dataset, convention, D, inputs)
            if val_folder is not None else None)
    notes: list[str] = []
    feats, labs, codes, ids, at, vf = _main_rows(cfg, kind, parts, labels, split, notes)
    for p in parts.values():
        inputs.update({f"{folder.name}/{f.name}": {"path": str(f), "sha256": file_sha256(f)} for f in p.files})
    sha, weights = _weights_sha(folder, cfg.backbone_weights)
    imported = {"format": kind, "folder": str(folder), "validation_folder": None if vset is None else str(val_folder),
                "label_convention": convention, "backbone_weights": weights, "notes": notes,
                "rows": {r: int(len(p.labels)) for r, p in parts.items()}}
    cache = VisualCache(
        features=feats, masked=np.zeros((len(feats), 0, D), np.float32), labels=labs, sample_ids=ids,
        partition=codes, class_names=names,
        split={k: getattr(split, k) for k in ("id", "num_classes", "seen", "unseen", "val_unseen")},
        masking=dict(NO_MASKING), partition_settings={"protocol": None, "val_fraction": vf, "test_fraction": 0.0,
                                                      "seed": cfg.seed},
        backbone_sha256=sha, backbone_arch=cfg.arch, backbone_config={}, skeleton_sha256="",
        logits=_logits(at, K, tuple(split.seen)), validation_set=vset, imported=imported)
    prov = provenance(cfg)
    prov["inputs"] = inputs  # every file read: folder/name -> path and SHA-256
    path = write_visual(cfg.out, cache, prov)
    counts = {name: int((codes == i).sum()) for i, name in enumerate(PARTITION_NAMES)}
    return ImportResult(path, len(labs), counts, 0 if vset is None else vset.num_samples, convention, tuple(notes))
