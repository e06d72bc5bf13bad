"""smie show and smie show-features on tiny seeded synthetic data and real HDF5 caches; run curves."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from smie.cli import main
from smie.features.skeletons import read_skeleton_header
from smie.features.store import SmieError, file_sha256
from smie.features.text import TextCache, TextKind, write_text
from smie.features.visual import VisualCache, write_visual
from smie.pipeline.data.synthetic import SyntheticConfig, generate_synthetic
from smie.pipeline.data.synthetic_motions import CLASSES
from smie.pipeline.tools.show_features import embed_2d, semantic_positions
from smie.pipeline.zsl.estimator import SMIEEstimator, SMIEParams
from smie.pipeline.zsl.rundir import write_run

NAMES = tuple(CLASSES[:4])
T = 24
D, E = 8, 6


def _ok(args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def _drawn(img: Image.Image) -> tuple[float, float]:
    """Fractions of non-white pixels and of saturated (coloured: bones, markers) pixels."""
    a = np.asarray(img.convert("RGB")).astype(int)
    return float((a < 250).any(axis=2).mean()), float((a.max(axis=2) - a.min(axis=2) > 60).mean())


@pytest.fixture(scope="module")
def data(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("show")
    npz = generate_synthetic(SyntheticConfig(out=root / "syn.npz", per_class=2, num_frames=40, classes=NAMES, seed=3))
    _ok(["prepare", "--format", "npz", "--input", npz, "--out", root / "syn.h5", "--frames", T])
    head = read_skeleton_header(root / "syn.h5")
    rng = np.random.default_rng(0)
    N, K = head.num_samples, len(head.class_names)
    sem = rng.normal(size=(K, E)).astype(np.float32)
    feats = (sem[head.labels] @ rng.normal(size=(E, D)) + 0.1 * rng.normal(size=(N, D))).astype(np.float32)
    split = dict(id="file:test", num_classes=K, seen=[0, 1], unseen=[2, 3], val_unseen=[1])
    part = np.where(np.isin(head.labels, [2, 3]), 3, 0).astype(np.int8)
    vc = VisualCache(feats, feats[:, None], head.labels, head.sample_ids, part, head.class_names, split,
                     {"variant": "official", "k": 4, "drop": 4, "views": 1, "seed": 0},
                     {"protocol": None, "val_fraction": 0.1, "seed": 0}, "ab" * 32, "stgcn", {}, "cd" * 32)
    write_visual(root / "visual.h5", vc, {})
    emb = (sem / np.linalg.norm(sem, axis=1, keepdims=True))[:, None]
    write_text(root / "text.h5", TextCache(head.class_names, np.arange(K), {"label": TextKind(
        emb, tuple((n,) for n in head.class_names), np.ones(K, np.int32))}, "test", "test", "ef" * 32, E), {})
    torch.manual_seed(0)
    model = SMIEEstimator(D, E, SMIEParams(hidden=(16, 8)))
    info = dict(kinds=["label"], class_names=list(head.class_names), split=split, class_sem=torch.from_numpy(sem),
                backbone_sha256="ab" * 32, visual_dim=D)
    metrics = dict(zsl=dict(selected=dict(acc=0.5, epoch=3), oracle=dict(acc=0.75, epoch=5)),
                   curves=dict(val_acc=[float("nan"), 0.3, 0.4, 0.6, 0.5, 0.55], test_acc=[0.2, 0.3, 0.4, 0.5, 0.6,
                               0.75, 0.7], val_loss=[1.0, 0.8, 0.7, 0.6, 0.5, 0.5], loss=[1.0, 0.9, 0.7, 0.6, 0.5,
                               0.4, 0.4]))
    run = write_run(root / "run", method="smie", config={"provenance": {"inputs": {"visual": {"path": "v.h5"}}}},
                    metrics=metrics, model=model, model_config=model.config, info=info,
                    test_scores=np.zeros((2, 2)), test_targets=np.array([0, 1]), test_class_ids=[2, 3],
                    class_names=head.class_names, test_sample_ids=["a", "b"])
    return dict(root=root, npz=npz, h5=root / "syn.h5", visual=root / "visual.h5", text=root / "text.h5", run=run,
                head=head)


def test_gif_has_every_frame_drawn_and_a_sidecar(data):
    out = data["root"] / "two.gif"
    res = _ok(["show", data["h5"], "--class", NAMES[1], "--index", 0, "--masking", "official", "--keyframes", 4,
               "--random-drop", 4, "--out", out])
    assert str(out) in res.output
    img = Image.open(out)
    assert img.n_frames == T
    assert img.size[0] > 300 and img.size[1] > 200
    for t in (0, T // 2, T - 1):
        img.seek(t)
        nonwhite, coloured = _drawn(img)
        assert nonwhite > 0.01 and coloured > 0.002, (t, nonwhite, coloured)
    side = json.loads(out.with_name("two.gif.json").read_text())
    assert side["command"].startswith("smie show ") and "--masking official" in side["command"]
    assert side["inputs"]["source"]["sha256"] == file_sha256(data["h5"])
    assert side["samples"] == [data["head"].sample_ids[0],  # indices first, then ids, then classes
                               data["head"].sample_ids[int(np.flatnonzero(data["head"].labels == 1)[0])]]


def test_png_still_grid_records_its_provenance(data):
    out = data["root"] / "grid.png"
    _ok(["show", data["h5"], "--grid", "--masking", "paper", "--keyframes", 5, "--frame", 3, "--out", out])
    img = Image.open(out)
    nonwhite, coloured = _drawn(img)
    assert nonwhite > 0.01 and coloured > 0.002
    assert img.size == (4 * 320, 400 + 35)  # one row of 4 panels of 3.2 x 4.0 in at 100 dpi, 0.35 in of title
    prov = json.loads(img.text["smie-provenance"])
    assert prov["command"].startswith("smie show ") and "--grid" in prov["command"]
    assert prov["config"]["masking"] == "paper" and prov["inputs"]["source"]["path"] == str(data["h5"])
    assert len(prov["samples"]) == len(NAMES)


def test_raw_file_and_run_ranking(data):
    raw = data["root"] / "raw.png"
    _ok(["show", data["npz"], "--index", 1, "--frames", 20, "--out", raw])
    assert _drawn(Image.open(raw))[1] > 0.002
    ranked = data["root"] / "ranked.png"
    _ok(["show", data["h5"], "--class", NAMES[2], "--run", data["run"], "--visual", data["visual"], "--top-k", 2,
         "--out", ranked])
    prov = json.loads(Image.open(ranked).text["smie-provenance"])
    assert set(prov["inputs"]) == {"source", "run", "visual"}


def test_bad_inputs_fail_naming_the_file(data):
    runner = CliRunner()
    for args, words in ((["--class", "not a class"], "unknown class"), (["--index", 99], "out of range"),
                        (["--sample", "nope"], "no sample with id")):
        res = runner.invoke(main, ["show", str(data["h5"]), *map(str, args), "--out", str(data["root"] / "x.png")])
        assert res.exit_code != 0 and str(data["h5"]) in res.output and words in res.output, res.output
    res = runner.invoke(main, ["show", str(data["h5"]), "--run", str(data["run"]), "--out", str(data["root"] / "x.png")])
    assert res.exit_code != 0 and "--visual" in res.output
    from matplotlib import animation

    if not animation.writers.is_available("ffmpeg"):
        res = runner.invoke(main, ["show", str(data["h5"]), "--out", str(data["root"] / "x.mp4")])
        assert res.exit_code != 0 and "ffmpeg" in res.output
    assert not (data["root"] / "x.png").exists()


def test_show_features_on_a_real_visual_cache(data):
    out = data["root"] / "feat.png"
    _ok(["show-features", data["visual"], "--text", data["text"], "--out", out])
    img = Image.open(out)
    nonwhite, coloured = _drawn(img)
    assert nonwhite > 0.01 and coloured > 0.001  # 8 points and 2 stars
    prov = json.loads(img.text["smie-provenance"])
    assert prov["inputs"]["visual"]["sha256"] == file_sha256(data["visual"]) and "text" in prov["inputs"]
    assert prov["command"].startswith("smie show-features")


def test_tsne_needs_scikit_learn(monkeypatch):
    x = np.random.default_rng(0).normal(size=(12, 5))
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)
    with pytest.raises(SmieError, match="scikit-learn"):
        embed_2d(x, "tsne", 0)
    xy, names = embed_2d(x, "pca", 0)
    assert xy.shape == (12, 2) and names[0].startswith("PC1")


def test_semantic_map_is_fitted_on_seen_classes_only():
    rng = np.random.default_rng(0)
    sem, W = rng.normal(size=(6, 3)), rng.normal(size=(3, 2))
    cent = sem @ W
    pos = semantic_positions(sem, cent, [0, 1, 2, 3, 4])
    before = pos[5].copy()
    cent[5] = 100.0  # the unseen centroid never enters the fit
    np.testing.assert_allclose(semantic_positions(sem, cent, [0, 1, 2, 3, 4])[5], before)


def test_fit_runs_plot_their_curves(data):
    img = Image.open(data["run"] / "curves.png")
    assert _drawn(img)[1] > 0.002
    prov = json.loads(img.text["smie-provenance"])
    assert prov["inputs"] == {"visual": {"path": "v.h5"}} and prov["run"] == str(data["run"])
