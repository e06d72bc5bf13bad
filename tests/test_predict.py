"""smie predict: a real (tiny, untrained) ST-GCN checkpoint, a real run directory, real MiniLM, synthetic npz."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from smie.features.store import SmieError, file_sha256
from smie.features.text import TextCache, TextKind, write_text
from smie.pipeline.visual.backbones import build_backbone, load_backbone, save_checkpoint
from smie.pipeline.data.layouts import get_layout
from smie.pipeline.data.preprocess import preprocess_sample
from smie.pipeline.data.splits import Split
from smie.pipeline.zsl.estimator import SMIEEstimator
from smie.pipeline.tools.predict import PredictConfig, class_semantics, format_predictions, predict, recorded_template
from smie.pipeline.zsl.rundir import write_run
from smie.pipeline.data.synthetic import SyntheticConfig, generate_synthetic
from smie.pipeline.data.synthetic_motions import CLASSES
from smie.pipeline.semantic.text_encoder import TextEncoder

NAMES = tuple(CLASSES[:4])
T = 32
CANDIDATES = ("wave a hand", "kick forward", "sit down")


@pytest.fixture(scope="module")
def enc() -> TextEncoder:
    return TextEncoder("minilm")


def _backbone(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = build_backbone("stgcn", "ntu-25", "small")
    split = Split("random:2:seed=0", 4, (0, 1), (2, 3), (1,))
    save_checkpoint(path, model, split=split, partition={"protocol": None, "val_fraction": 0.1, "seed": 0},
                    class_names=NAMES, num_frames=T, skeleton_sha256="0" * 64, provenance={})
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory, enc):
    root = tmp_path_factory.mktemp("predict")
    npz = generate_synthetic(SyntheticConfig(out=root / "syn.npz", per_class=2, num_frames=40, classes=NAMES))
    bb = _backbone(root / "backbone.pt", 0)
    torch.manual_seed(1)
    model = SMIEEstimator(256, 384)
    info = dict(kinds=["label"], combine="concat", text_encoder=enc.id, text_encoder_spec="minilm",
                text_weights_sha256=enc.weights_sha256, class_names=list(NAMES),
                split=dict(id="random:2:seed=0", num_classes=4, seen=[0, 1], unseen=[2, 3], val_unseen=[1]),
                backbone_sha256=file_sha256(bb), visual_dim=256)
    run = write_run(root / "run", method="smie", config={}, metrics={}, model=model, model_config=model.config,
                    info=info, test_scores=np.array([[0.2, 0.1], [0.0, 0.3]]), test_targets=np.array([0, 1]),
                    test_class_ids=[2, 3], class_names=NAMES, test_sample_ids=["a", "b"])
    return dict(root=root, npz=npz, backbone=bb, run=run, model=model)


def test_predict_ranks_free_text_labels(setup, enc):
    cfg = PredictConfig(setup["backbone"], setup["run"], CANDIDATES, (setup["npz"],), top_k=2, device="cpu")
    df = predict(cfg)
    z = np.load(setup["npz"])
    assert list(df.columns) == ["file", "sample_id", "rank", "label", "score"]
    assert len(df) == 8 * 2 and set(df["label"]) <= set(CANDIDATES)
    assert list(df["sample_id"].unique()) == [str(s) for s in z["sample_id"]]
    for _, g in df.groupby("sample_id"):
        assert list(g["rank"]) == [1, 2] and g["score"].iloc[0] >= g["score"].iloc[1]

    module, info = load_backbone(setup["backbone"])
    i = 5
    x, _ = preprocess_sample(z["data"][i][:, : z["lengths"][i]], get_layout("ntu-25"), T)
    with torch.no_grad():
        v = module(torch.from_numpy(x[None]))
        s = setup["model"].scores(v, torch.from_numpy(enc.encode(list(CANDIDATES))))[0]
    order = torch.argsort(s, descending=True)[:2]
    row = df[df["sample_id"] == str(z["sample_id"][i])]
    assert list(row["label"]) == [CANDIDATES[j] for j in order]
    np.testing.assert_allclose(row["score"], s[order].numpy(), rtol=1e-4, atol=1e-4)


def test_scores_do_not_depend_on_the_other_candidates(setup):
    base = PredictConfig(setup["backbone"], setup["run"], CANDIDATES, (setup["npz"],), top_k=10, device="cpu")
    full = predict(base)
    assert len(full) == 8 * 3
    other = predict(dataclasses.replace(base, labels=("jump up", "kick forward")))
    a = full[full["label"] == "kick forward"].set_index("sample_id")["score"]
    b = other[other["label"] == "kick forward"].set_index("sample_id")["score"]
    np.testing.assert_allclose(a.loc[b.index], b, atol=1e-5)
    assert format_predictions(other, as_json=True).startswith("[")
    assert "kick forward" in format_predictions(other)


def test_default_candidates_are_the_runs_unseen_classes(setup):
    df = predict(PredictConfig(setup["backbone"], setup["run"], (), (setup["npz"],), top_k=5, device="cpu"))
    assert set(df["label"]) == {NAMES[2], NAMES[3]} and df["rank"].max() == 2


def test_templates_and_description_kinds(enc, tmp_path):
    sem = class_semantics(("wave",), {"kinds": ["label"]}, enc, "a person is {}")
    np.testing.assert_allclose(sem, enc.encode(["a person is wave"]), atol=1e-5)
    with pytest.warns(UserWarning, match="description kinds action"):
        sem2 = class_semantics(("wave", "sit"), {"kinds": ["label", "action"], "combine": "concat"}, enc, "{}")
    assert sem2.shape == (2, 768)
    np.testing.assert_allclose(sem2[:, :384], sem2[:, 384:], atol=1e-5)
    text = tmp_path / "text.h5"
    emb = enc.encode(["x"])[:, None, :]
    write_text(text, TextCache(("x",), np.arange(1), {"label": TextKind(emb, (("x",),), np.ones(1, np.int32))},
                               enc.id, "minilm", enc.weights_sha256, 384),
               {"config": {"label_template": "someone does {}"}})
    info = {"config": {"provenance": {"inputs": {"text": {"path": str(text), "sha256": file_sha256(text)}}}}}
    assert recorded_template(info) == "someone does {}"
    assert recorded_template({"label_template": "a {}"}) == "a {}" and recorded_template({}) == "{}"


def test_errors(setup, tmp_path):
    base = PredictConfig(setup["backbone"], setup["run"], CANDIDATES, (setup["npz"],), device="cpu")
    other = _backbone(tmp_path / "other.pt", 7)
    with pytest.raises(SmieError, match="not the backbone the run"):
        predict(dataclasses.replace(base, backbone=other))
    odd = tmp_path / "clip.dat"
    odd.write_bytes(b"x")
    with pytest.raises(SmieError, match="--format"):
        predict(dataclasses.replace(base, files=(odd,)))
    with pytest.raises(SmieError, match="no such file"):
        predict(dataclasses.replace(base, files=(tmp_path / "gone.npz",)))
    with pytest.raises(SmieError, match="repeat"):
        predict(dataclasses.replace(base, labels=("a", "a")))
    with pytest.raises(SmieError, match="top-k"):
        predict(dataclasses.replace(base, top_k=0))
    with pytest.raises(SmieError, match="not a run directory"):
        predict(dataclasses.replace(base, run=tmp_path))


@pytest.mark.realdata
def test_predict_on_raw_ntu_files(setup, realdata_dir):
    files = tuple(sorted((realdata_dir / "ntu_rgbd_samples").glob("*.skeleton"))[:2])
    df = predict(PredictConfig(setup["backbone"], setup["run"], CANDIDATES, files, top_k=3, device="cpu"))
    assert list(df["file"].unique()) == [str(f) for f in files]
    assert list(df["sample_id"].unique()) == [f.stem for f in files]
    assert len(df) == 6 and np.isfinite(df["score"]).all()


def test_raw_files_get_exactly_the_features_of_the_visual_cache(tmp_path):
    """prepare (frame centring, one body) -> backbone -> extract-visual, against predict's own reading of the npz:
    the centring and body count are recovered from the checkpoint, so the features agree bit for bit."""
    from smie.features.visual import read_visual
    from smie.pipeline.visual.extract import ExtractConfig, extract_visual
    from smie.pipeline.tools.predict import _features, prepare_settings
    from smie.pipeline.data.prepare import PrepareConfig, prepare

    npz = generate_synthetic(SyntheticConfig(out=tmp_path / "syn.npz", per_class=3, num_frames=40, classes=NAMES))
    sk = tmp_path / "sk.h5"
    prepare(PrepareConfig(format="npz", input=npz, out=sk, num_frames=24, max_bodies=1, center="frame"))
    torch.manual_seed(0)
    model = build_backbone("stgcn", "ntu-25", "small", num_person=1)
    sha = file_sha256(sk)
    bb = tmp_path / "bb.pt"
    save_checkpoint(bb, model, split=Split("random:2:seed=0", 4, (0, 1), (2, 3), (1,)),
                    partition={"protocol": None, "val_fraction": 0.2, "seed": 0}, class_names=NAMES, num_frames=24,
                    skeleton_sha256=sha, provenance={"skeletons": {"path": str(sk), "sha256": sha}})
    vis = extract_visual(ExtractConfig(skeletons=sk, backbone=bb, out=tmp_path / "vis.h5", views=1, keyframes=4,
                                       random_drop=4, device="cpu"))
    vc = read_visual(vis)
    module, info = load_backbone(bb)
    assert prepare_settings(info) == ("frame", 1)
    cfg = PredictConfig(bb, tmp_path, (), (npz,), device="cpu")
    keys, feats = _features(cfg, module, info, torch.device("cpu"))
    assert [s for _, s in keys] == list(vc.sample_ids)
    np.testing.assert_allclose(feats, vc.features, rtol=0, atol=1e-6)
    sk.unlink()
    assert prepare_settings(info) == ("first", 1)
    _, moved = _features(cfg, module, info, torch.device("cpu"))
    assert np.abs(moved - vc.features).max() > 1e-4
