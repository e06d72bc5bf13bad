"""``smie inspect``: a readable summary of any smie artifact, to see what a file holds and what made it.

HDF5 caches (``smie.skeletons``, ``smie.visual``, ``smie.text``, any ``smie.*``) are listed generically: type and
schema version, root attributes (JSON values pretty-printed), every dataset with shape and dtype, class names
(shortened when there are many), a few per-type summaries (label/length/partition counts) and the provenance.
Backbone checkpoints (``.pt``) are loaded with ``torch.load(weights_only=True)`` and summarised: architecture,
split, validation accuracy, provenance. Files are opened through the checked doors of ``features/store.py``
(``open_hdf5``, ``load_checkpoint_checked``), so anything else (garbage, a truncated or damaged file, a foreign
HDF5 or torch file) raises one :class:`CacheError` line that says what the file is. A cache of a schema version
newer than this smie reads is still listed (the listing is generic), with a line saying so.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from smie.features.store import BACKBONE, CacheError, load_checkpoint_checked, open_hdf5, sniff

_SHOW_CLASSES = 12


def _names(values) -> str:
    names = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]
    if len(names) <= _SHOW_CLASSES:
        return ", ".join(names)
    head, tail = names[: _SHOW_CLASSES - 2], names[-2:]
    return f"{', '.join(head)}, ... ({len(names) - len(head) - 2} more) ..., {', '.join(tail)}"


def _value(v) -> str:
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if isinstance(v, str) and v[:1] in "[{":
        try:
            return json.dumps(json.loads(v), indent=2, sort_keys=True).replace("\n", "\n    ")
        except ValueError:
            pass
    if isinstance(v, np.ndarray) and v.size > 8:
        return f"array{v.shape} {v.dtype}"
    return str(v.tolist() if isinstance(v, np.ndarray) else v)


def _counts(arr: np.ndarray, names: tuple[str, ...] | None = None) -> str:
    values, counts = np.unique(arr, return_counts=True)
    return ", ".join(f"{names[v] if names and 0 <= v < len(names) else v}: {c}" for v, c in zip(values, counts))


def _summaries(f, kind: str) -> list[str]:
    out = []
    if "labels" in f and f["labels"].ndim == 1 and len(f["labels"]):
        labels = f["labels"][()]
        out.append(f"samples: {len(labels)}; classes present: {len(np.unique(labels))}")
    if kind == "smie.skeletons" and "skeletons" in f:
        out.append(_layout_line(f))
    if kind == "smie.skeletons" and "lengths" in f and len(f["lengths"]):
        lengths = f["lengths"][()]
        out.append(f"valid frames before resampling: min {lengths.min()}, median {int(np.median(lengths))}, "
                   f"max {lengths.max()}")
        for col, ds in (f["meta"].items() if "meta" in f else []):
            vals = ds[()]
            out.append(f"meta/{col}: {len(np.unique(vals))} distinct values in [{vals.min()}, {vals.max()}]")
    if "partition" in f:
        from smie.pipeline.data.splits import PARTITION_NAMES

        out.append("partition: " + _counts(f["partition"][()], PARTITION_NAMES))
    if kind == "smie.visual":
        out += _visual_summaries(f)
    return out


def _layout_line(f) -> str:
    """The cache's joint layout: a preset by name (version 1) or the stored ``joint_layout`` (version 2)."""
    from smie.features.store import SmieError
    from smie.pipeline.data.layouts import LAYOUTS, resolve_layout

    name = f.attrs.get("layout", "?")
    name = name.decode() if isinstance(name, bytes) else str(name)
    g = f.get("joint_layout")
    try:
        spec = None if g is None else {
            "joint_names": [n.decode() if isinstance(n, bytes) else str(n) for n in g["joint_names"][()]],
            "bones": g["bones"][()].tolist(), **{k: g.attrs[k] for k in g.attrs}}
        layout = resolve_layout(name, spec)
    except (SmieError, KeyError, ValueError) as exc:
        return f"layout: {name} (cannot be built: {exc})"
    kind = "preset" if name in LAYOUTS else "custom, stored in the cache"
    bones = ", ".join(f"{layout.joint_names[c]}-{layout.joint_names[p]}" for c, p in layout.bones)
    joints = ", ".join(f"{i} {n}" for i, n in enumerate(layout.joint_names))
    return (f"layout: {layout.describe()} ({kind})\n    joints: {joints}"
            f"\n    bones (child-parent): {bones if len(layout.bones) <= 30 else str(len(layout.bones)) + ' bones'}")


def _visual_summaries(f) -> list[str]:
    """What a visual cache offers stage two: masked views (or why there are none), validation features, scores."""
    out = []
    if "masked" in f and f["masked"].ndim == 3:
        W = f["masked"].shape[1]
        out.append(f"masked views: {W} per sample" if W else
                   "masked views: none (imported features); SMIE's temporal constraint needs them: fit with "
                   "--no-temporal (fit-estimator) or the method smie-notemporal, or extract masked features with "
                   "the published backbone (import-backbone, then extract-visual)")
    if "validation" in f:
        out.append("validation view: the same rows from the validation backbone (stage two selects on it)")
    if "validation_set" in f:
        from smie.pipeline.data.splits import PARTITION_NAMES

        g = f["validation_set"]
        out.append(f"validation set: {len(g['labels'])} rows of its own from the validation backbone ("
                   + _counts(g["partition"][()], PARTITION_NAMES) + ")")
    for where in ("", "validation_set/"):
        if where + "logits" in f:
            g = f[where + "logits"]
            out.append(f"{where}logits: the backbone's stored class scores of {len(g['rows'])} rows over "
                       f"{len(g['classes'])} classes")
    return out


def _readable_versions() -> dict[str, int]:
    """The schema version this smie writes (and so the newest it reads) of each cache type."""
    from smie.features import skeletons, text, visual

    return {m.ENCODING_TYPE: m.SCHEMA_VERSION for m in (skeletons, visual, text)}


def _version_line(kind: str, version) -> str:
    newest = _readable_versions().get(kind)
    try:
        newer = newest is not None and int(version) > newest
    except (TypeError, ValueError):
        return f"  type: {kind} (schema-version {version!r}: not a version number; smie cannot read this file)"
    note = (f": newer than this smie reads ({newest}); other commands refuse it, upgrade smie to use it"
            if newer else "")
    return f"  type: {kind} (schema-version {version}{note})"


def _inspect_h5(path: Path) -> str:
    try:
        with open_hdf5(path, expected="an smie cache") as f:
            return _list_h5(f, path)
    except (OSError, KeyError, ValueError) as exc:  # a file that opens but whose objects cannot be read
        raise CacheError(path, f"damaged HDF5: reading it failed ({exc})") from None


def _list_h5(f, path: Path) -> str:
    import h5py

    kind = f.attrs.get("encoding-type")
    kind = kind.decode() if isinstance(kind, bytes) else kind
    if not kind or not str(kind).startswith("smie."):
        raise CacheError(path, "an HDF5 file but not an smie cache (no smie 'encoding-type' attribute)")
    lines = [f"{path}", _version_line(str(kind), f.attrs.get("schema-version", "?"))]
    attrs = [(k, v) for k, v in f.attrs.items() if k not in ("encoding-type", "schema-version", "provenance")]
    if attrs:
        lines.append("  attributes:")
        lines += [f"    {k}: {_value(v)}" for k, v in sorted(attrs)]
    lines.append("  datasets:")

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            lines.append(f"    {name}: {obj.shape} {obj.dtype}")

    f.visititems(visit)
    if "class_names" in f:
        names = f["class_names"][()]
        lines.append(f"  class names ({len(names)}): {_names(names)}")
    lines += [f"  {s}" for s in _summaries(f, str(kind))]
    prov = f.attrs.get("provenance")
    prov = json.dumps(json.loads(prov), indent=2, sort_keys=True) if prov else "(none)"
    lines.append("  provenance: " + prov.replace("\n", "\n  "))
    return "\n".join(lines)


def _inspect_pt(path: Path) -> str:
    ckpt = load_checkpoint_checked(path, expected=BACKBONE)
    if not isinstance(ckpt, dict) or ckpt.get("format") != "smie.backbone":
        raise CacheError(path, "a torch file but not an smie backbone checkpoint (no format='smie.backbone')")
    split = ckpt.get("split") or {}
    spec = (ckpt.get("model_config") or {}).get("layout_spec")
    params = sum(int(t.numel()) for t in ckpt.get("state_dict", {}).values() if hasattr(t, "numel"))
    lines = [
        f"{path}",
        f"  type: smie.backbone (version {ckpt.get('version')})",
        f"  arch: {ckpt.get('arch')}  config: {json.dumps(ckpt.get('model_config', {}), sort_keys=True)}",
        f"  parameters: {params:,}; feature dim: {ckpt.get('feature_dim', '?')}",
        f"  layout: {ckpt.get('layout')}"
        + (f" (custom: {len(spec['joint_names'])} joints: {_names(spec['joint_names'])})" if spec else "")
        + f"; frames: {ckpt.get('num_frames')}",
        f"  split: {split.get('id')} ({len(split.get('seen', []))} seen / {len(split.get('unseen', []))} unseen; "
        f"unseen {split.get('unseen')})",
        f"  partition: {json.dumps(ckpt.get('partition', {}), sort_keys=True)}",
        f"  epoch: {ckpt.get('epoch')}; val acc: {ckpt.get('val_acc')}",
        f"  skeleton cache sha256: {ckpt.get('skeleton_sha256')}",
    ]
    names = ckpt.get("class_names") or []
    lines.append(f"  class names ({len(names)}): {_names(names)}")
    prov = json.dumps(ckpt.get("provenance", {}), indent=2, sort_keys=True)
    lines.append("  provenance: " + prov.replace("\n", "\n  "))
    return "\n".join(lines)


_WHAT = {"empty": "an empty file", "text": "a text file", "binary": "a binary file"}


def inspect_file(path: str | os.PathLike) -> str:
    """A multi-line description of an smie HDF5 cache or backbone checkpoint; :class:`CacheError` otherwise."""
    p = Path(path)
    if not p.is_file():
        raise CacheError(p, "is a directory" if p.is_dir() else "no such file")
    kind = sniff(p)
    if kind == "hdf5":
        return _inspect_h5(p)
    if kind == "zip" or (kind == "binary" and zipfile.is_zipfile(p)):
        return _inspect_pt(p)
    raise CacheError(p, f"neither an smie HDF5 cache nor an smie backbone checkpoint (.pt): it is {_WHAT[kind]}")
