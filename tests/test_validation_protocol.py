"""The honest validation protocol end to end: main + validation backbones, one cache with a validation view,
stage-two selection on the view (and the optimistic fallback, labelled as such)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from smie.features.store import CacheError, SmieError
from smie.features.visual import attach_validation, read_visual, read_visual_header
from smie.pipeline.data.splits import resolve_split
from smie.pipeline.visual.extract import ExtractConfig, extract_visual
from smie.pipeline.visual.pretrain import PretrainConfig, pretrain_backbone
from smie.pipeline.zsl.experiment import FitConfig, fit_estimator

K = 8  # classes of conftest.write_skeletons_and_text
SPLIT = "random:2:seed=0"  # conftest.SKELETON_SPLIT
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def fold(tmp_path_factory, one_thread, skeletons_and_text):
    d = tmp_path_factory.mktemp("valproto")
    skeletons_and_text(d)
    base = dict(skeletons=d / "sk.h5", split=SPLIT, epochs=1, batch_size=8, val_fraction=0.25, device="cpu",
                progress=False)
    pretrain_backbone(PretrainConfig(out=d / "main.pt", **base))
    pretrain_backbone(PretrainConfig(out=d / "val.pt", validation=True, **base))
    ex = ExtractConfig(skeletons=d / "sk.h5", backbone=d / "main.pt", out=d / "visual.h5", views=2, keyframes=3,
                       random_drop=3, batch_size=16, chunk_size=32, device="cpu", validation_backbone=d / "val.pt")
    extract_visual(ex)
    return d, ex


def test_cache_holds_a_validation_view_from_a_backbone_that_never_saw_val_unseen(fold):
    d, ex = fold
    vc = read_visual(ex.out)
    split = resolve_split(SPLIT, K)
    assert vc.validation is not None
    assert vc.validation.features.shape == vc.features.shape and vc.validation.masked.shape == vc.masked.shape
    assert not set(vc.validation.trained_classes) & (set(split.unseen) | set(split.val_unseen))
    assert vc.validation.backbone_sha256 != vc.backbone_sha256
    assert not np.allclose(vc.validation.features, vc.features)
    assert read_visual_header(ex.out).validation.features.shape[0] == 0
    assert not list(d.glob(".*validation*"))


def test_selection_runs_on_the_validation_view_and_the_optimistic_one_says_so(fold):
    d, ex = fold
    common = dict(visual=ex.out, text=d / "text.h5", epochs=3, warmup=0, lr=1e-3, batch_size=16, hidden=(16, 8),
                  device="cpu", gzsl=True)
    honest = fit_estimator(FitConfig(out=d / "honest", **common))
    optimistic = fit_estimator(FitConfig(out=d / "optimistic", val_features="main", **common))
    hm, om = (json.loads((r.out / "metrics.json").read_text()) for r in (honest, optimistic))
    h, o = hm["selection"], om["selection"]
    assert (h["validation_features"], h["optimistic"]) == ("validation-backbone", False)
    assert (o["validation_features"], o["optimistic"]) == ("main-backbone", True)
    assert hm["curves"]["val_loss"] != om["curves"]["val_loss"]  # trained on other features
    assert hm["curves"]["test_acc"] != [] and om["zsl"]["selected"]["epoch"] == o["epoch"]


def test_validation_view_is_refused_where_it_does_not_fit(fold, tmp_path):
    d, ex = fold
    vc = read_visual(ex.out)
    split = resolve_split(SPLIT, K)
    with pytest.raises(CacheError, match="unseen or val_unseen"):
        attach_validation(ex.out, vc, tuple(split.val_unseen), {})
    other = dataclasses.replace(vc, labels=np.roll(vc.labels, 1))
    with pytest.raises(CacheError, match="labels or partition"):
        attach_validation(ex.out, other, vc.validation.trained_classes, {})
    with pytest.raises(SmieError, match="is a main backbone"):
        extract_visual(dataclasses.replace(ex, out=tmp_path / "v.h5", validation_backbone=d / "main.pt"))
    common = dict(text=d / "text.h5", epochs=1, warmup=0, hidden=(16, 8), device="cpu")
    plain = tmp_path / "plain.h5"
    extract_visual(dataclasses.replace(ex, out=plain, validation_backbone=None))
    with pytest.raises(SmieError, match="no validation view"):
        fit_estimator(FitConfig(visual=plain, out=tmp_path / "r", val_features="validation", **common))
