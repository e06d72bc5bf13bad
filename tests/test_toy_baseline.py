"""Acceptance of the method contract: a new baseline is one module (this one: its hyper-parameters, its
``nn.Module``, its spec) plus its registration line, and it runs through ``smie compare`` end to end, is
reported, and reloads from its run directory, with no other file touched."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

from smie.pipeline import registry
from smie.pipeline.zsl.method import BaseMethod, MethodContext
from smie.pipeline.zsl.spec import Epochs, MethodSpec

pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass(frozen=True)
class CosineMapParams:
    temperature: float = 0.1


class CosineMap(BaseMethod):
    """A linear map from visual features into the text space, trained by softmax over cosine similarities with
    the training classes' texts; a class scores its cosine similarity."""

    def __init__(self, visual_dim: int, sem_dim: int, hparams: CosineMapParams = CosineMapParams(),
                 context: MethodContext | None = None):
        super().__init__(visual_dim, sem_dim, hparams, context)
        self.proj = nn.Linear(visual_dim, sem_dim)

    def scores(self, visual: torch.Tensor, class_sem: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(visual), dim=-1) @ F.normalize(class_sem, dim=-1).T

    def loss(self, batch) -> torch.Tensor:
        return F.cross_entropy(self.scores(batch.visual, batch.class_sem) / self.hparams.temperature, batch.labels)


SPEC = MethodSpec("cosine-map", CosineMap, CosineMapParams, lr=1e-2, budget=Epochs(20), batch_size=64)


@pytest.fixture
def registered(monkeypatch):
    """The registration line, as it would stand in smie/pipeline/registry.py."""
    monkeypatch.setitem(registry.METHODS, "cosine-map", registry.Entry(f"{__name__}:SPEC", "a toy cosine map"))


def test_a_new_baseline_runs_through_compare_report_and_reload(tmp_path, stage_caches, registered):
    from smie.cli import main
    from smie.pipeline.zsl.rundir import load_run

    folds = []
    for i, unseen in enumerate(((0, 1, 2, 3), (4, 5, 6, 7))):
        d = tmp_path / f"fold{i}"
        d.mkdir()
        folds.append(stage_caches(d, seed=i, split_unseen=unseen))
    out = tmp_path / "cmp"
    args = ["compare", "--visual", folds[0][0], "--visual", folds[1][0], "--text", folds[0][1], "--out", out,
            "--methods", "cosine-map,devise", "--jobs", "1", "--device", "cpu", "--heap", "system",
            "--epochs-scale", "0.5"]
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    runs = pd.read_csv(out / "runs.csv")
    toy = runs[runs.method == "cosine-map"]
    assert len(toy) == 2 and set(toy.epochs) == {10} and toy.zsl.between(0, 1).all() and toy.h.notna().all()
    assert "| cosine-map |" in (out / "table.md").read_text()
    run = out / "runs" / "cosine-map" / "file_test1" / "seed0"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["method"] == "cosine-map" and len(metrics["curves"]["val_acc"]) == 10
    report = CliRunner().invoke(main, ["report", str(run)], catch_exceptions=False)
    assert report.exit_code == 0 and "cosine-map" in report.output
    model, info = load_run(run)
    assert isinstance(model, CosineMap) and info["model_config"]["temperature"] == 0.1


def test_its_options_and_defaults_come_from_its_spec(tmp_path, stage_caches, registered):
    from smie.features.store import SmieError
    from smie.pipeline.zsl.baselines.run import BaselineConfig, fit_baseline

    visual, text = stage_caches(tmp_path)
    res = fit_baseline(BaselineConfig("cosine-map", visual, text, tmp_path / "run", device="cpu",
                                      options=("temperature=0.5",), epochs=3))
    used = json.loads((res.out / "config.json").read_text())
    assert (used["lr_used"], used["batch_size_used"], used["epochs_used"]) == (1e-2, 64, 3)
    assert used["model_options"] == {"temperature": 0.5}
    with pytest.raises(SmieError, match="cosine-map has no option.*latent"):
        fit_baseline(BaselineConfig("cosine-map", visual, text, tmp_path / "bad", options=("latent=3",)))
