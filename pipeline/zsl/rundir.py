"""The run directory every stage-two method writes (SMIE via ``smie fit-estimator``, baselines via
``smie fit-baseline``), and :func:`load_run` that rebuilds the trained model from it (``smie predict``).

A run directory holds:

- ``config.json``: the command's config; ``metrics.json``: the protocol's results (keys in docs/evaluation.md);
- ``model.pt``: a ``torch.save`` dict loadable with ``weights_only=True``: ``format`` ("smie.run"),
  ``version``, ``method`` (a name of :data:`smie.pipeline.registry.METHODS`), ``model_config`` (``visual_dim``,
  ``sem_dim`` and the hyper-parameters: the method's spec rebuilds the module from it,
  :meth:`~smie.pipeline.zsl.spec.MethodSpec.rebuild`), ``state_dict``, ``info`` (semantic kinds and combine mode,
  text encoder id/spec/weights hash, class table, split, class semantics (K, E) tensor, ...);
- ``per_class.csv`` (ZSL test accuracy per unseen class), ``confusion.png``, ``top5.png``, and, when the metrics
  hold per-epoch curves, ``curves.png`` (validation and test accuracy at each evaluated point, selected and oracle points).

The directory is built beside its target and renamed into place only when complete.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from smie.features.store import SmieError, load_checkpoint_checked, to_json

RUN_FORMAT = "smie.run"
RUN_VERSION = 1


def per_class_table(targets: np.ndarray, preds: np.ndarray, class_names: list[str], class_ids: list[int]):
    """pandas DataFrame: one row per class (column order of the scores) with n, correct, accuracy."""
    import pandas as pd

    rows = []
    for col, (name, cid) in enumerate(zip(class_names, class_ids)):
        sel = np.asarray(targets) == col
        n, correct = int(sel.sum()), int((np.asarray(preds)[sel] == col).sum())
        rows.append(dict(class_index=int(cid), class_name=name, n=n, correct=correct,
                         accuracy=correct / n if n else float("nan")))
    return pd.DataFrame(rows)


def install_dir(src: Path, out: Path) -> None:
    """Move the finished directory ``src`` onto ``out`` (same file system), replacing an older ``out`` only
    after the new one is complete."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(src, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, out)


def write_run(out: str | os.PathLike, *, method: str, config: dict, metrics: dict, model: torch.nn.Module,
              model_config: dict, info: dict, test_scores: np.ndarray, test_targets: np.ndarray,
              test_class_ids: list[int], class_names: tuple[str, ...], test_sample_ids: list[str],
              installed_as: str | os.PathLike | None = None) -> Path:
    """Write one run directory atomically (shared by SMIE and the baselines).

    ``installed_as`` is where the directory will finally live when ``out`` is itself a staging path (the
    pictures' provenance names it); default ``out``.

    ``test_scores`` (N, U) are the ZSL test scores over the unseen classes ``test_class_ids`` (indices into
    ``class_names``, the caches' class table), ``test_targets`` (N,) their column indices, ``test_sample_ids``
    (N,). ``info`` must be JSON/tensor-only (it goes into ``model.pt``); ``model_config`` rebuilds the module.
    An existing ``out`` is replaced only once the new directory is complete.
    """
    from smie.pipeline.zsl.plots import confusion_png, curves_png, picture_provenance, top5_png

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        (tmp / "config.json").write_text(json.dumps(json.loads(to_json(config)), indent=2, sort_keys=True))
        (tmp / "metrics.json").write_text(json.dumps(json.loads(to_json(metrics)), indent=2, sort_keys=True))
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        torch.save(dict(format=RUN_FORMAT, version=RUN_VERSION, method=method, model_config=model_config,
                        state_dict=state, info=info), tmp / "model.pt")
        names = [class_names[c] for c in test_class_ids]
        preds = np.asarray(test_scores).argmax(axis=1) if len(test_scores) else np.zeros(0, int)
        per_class_table(test_targets, preds, names, test_class_ids).to_csv(tmp / "per_class.csv", index=False)
        prov = picture_provenance({}, run=str(installed_as or out))
        prov["inputs"] = (config.get("provenance") or {}).get("inputs") or {}  # hashed when the run started
        split_id = info.get("split", {}).get("id", "")
        confusion_png(tmp / "confusion.png", test_targets, preds, names, f"{method} {split_id}: ZSL test, unseen "
                      "classes", prov)
        top5_png(tmp / "top5.png", test_scores, test_targets, names, list(test_sample_ids), prov=prov)
        if (metrics.get("curves") or {}).get("test_acc"):
            first = int((metrics.get("selection") or {}).get("first_eligible", 0))
            curves_png(tmp / "curves.png", metrics, f"{method} {split_id}: ZSL top-1 at each evaluated point", prov,
                       first_eligible=first)
        install_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def load_run(path: str | os.PathLike, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild the trained module of a run directory (or its ``model.pt``), in eval mode, and its run info:
    ``info`` plus ``method``, ``model_config``, and the run's ``metrics``/``config`` when present."""
    path = Path(path)
    ckpt = path / "model.pt" if path.is_dir() else path
    if not ckpt.exists():
        raise SmieError(f"{path}: not a run directory (no model.pt)")
    blob = load_checkpoint_checked(ckpt, "an smie run checkpoint (model.pt of fit-estimator/fit-baseline)", device)
    if not isinstance(blob, dict) or blob.get("format") != RUN_FORMAT:
        raise SmieError(f"{ckpt}: not an smie run checkpoint")
    if blob.get("version") != RUN_VERSION:
        raise SmieError(f"{ckpt}: run version {blob.get('version')} is not supported (this smie reads {RUN_VERSION})")
    from smie.pipeline.zsl.spec import method_spec

    try:
        spec = method_spec(blob["method"])
    except SmieError as exc:
        raise SmieError(f"{ckpt}: run was made by {exc}") from None
    model = spec.rebuild(blob["model_config"])
    model.load_state_dict(blob["state_dict"])
    model.to(device).eval()
    run_info = dict(blob["info"], method=blob["method"], model_config=blob["model_config"])
    for name in ("metrics", "config"):
        f = ckpt.parent / f"{name}.json"
        if f.exists():
            run_info[name] = json.loads(f.read_text())
    return model, run_info
