"""Any skeleton end to end (the acceptance of issue 28): a synthetic 7-joint custom layout and a synthetic hand-21
set, each written as a plain npz, and a directory of synthetic BVH clips, run through prepare ->
pretrain-backbone -> extract-visual -> embed-labels -> fit-estimator at tiny sizes with the real ST-GCN and the
real MiniLM encoder; the custom layout travels into the checkpoint, so ``predict`` checks a raw file (an npz, a
``.bvh``) against it and ranks free-text labels for it, and ``show`` draws the cache with its own bones."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from smie.cli import main
from smie.features.skeletons import read_skeletons
from smie.pipeline.data.layouts import LAYOUTS, layout_of
from smie.pipeline.visual.backbones import load_backbone
from tests.conftest import STICK, bvh_text, upright

pytestmark = pytest.mark.usefixtures("one_thread")
CLASSES = {"stick-7": ("hop on both feet", "sway side to side", "sit down", "kick forward"),
           "hand-21": ("thumbs up", "wave the hand", "make a fist", "point with the index finger"),
           "bvh-5": ("kick", "wave", "bow", "run")}


def run(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def write_npz(path, name: str, per_class: int = 8, T: int = 16, seed: int = 0):
    """(N, 3, T, V, 1) seeded motions: a rest pose plus a class-specific oscillation of a class-specific joint set."""
    rng = np.random.default_rng(seed)
    V = len(STICK["joint_names"]) if name == "stick-7" else 21
    rest = rng.normal(0, 0.3, (3, 1, V))
    t = np.linspace(0, 2 * np.pi, T)[None, :, None]
    data, label = [], []
    for k in range(len(CLASSES[name])):
        moving = np.arange(V) % len(CLASSES[name]) == k
        for _ in range(per_class):
            wave = (0.3 + 0.05 * rng.normal()) * np.sin((k + 1) * t + rng.normal(0, 0.3)) * moving[None, None, :]
            data.append(rest + wave + rng.normal(0, 0.02, (3, T, V)))
            label.append(k)
    layout = {"layout": np.array(name)} | ({k: v for k, v in STICK.items()} if name == "stick-7" else {})
    np.savez(path, data=np.asarray(data, np.float32)[..., None], label=np.array(label),
             class_names=np.array(CLASSES[name]), **layout)
    return path


def write_bvh_clips(d, per_class: int = 8):
    """A directory of synthetic BVH clips ``mocap_<class>_<i>.bvh`` of the 5-joint rig of tests/test_bvh.py."""
    d.mkdir()
    for k, name in enumerate(CLASSES["bvh-5"]):
        for i in range(per_class):
            (d / f"mocap_{name}_{i:02d}.bvh").write_text(bvh_text(upright(10 + i % 5, seed=100 * k + i)))
    return d


@pytest.fixture(scope="module", params=["stick-7", "hand-21", "bvh-5"])
def chain(request, tmp_path_factory):
    name = request.param
    d = tmp_path_factory.mktemp(name)
    if name == "bvh-5":
        raw = write_bvh_clips(d / "clips")
        fmt = ["bvh", "--label-pattern", "mocap_{label}_{take}"]
    else:
        raw, fmt = write_npz(d / f"{name}.npz", name), ["npz"]
    run("prepare", "--format", *fmt, "--input", raw, "--out", d / "sk.h5", "--frames", "16", "--max-bodies", "1")
    run("pretrain-backbone", "--skeletons", d / "sk.h5", "--split", "random:1:seed=0", "--epochs", "1",
        "--batch-size", "8", "--device", "cpu", "--out", d / "b.pt")
    run("extract-visual", "--skeletons", d / "sk.h5", "--backbone", d / "b.pt", "--out", d / "v.h5", "--views", "2",
        "--keyframes", "3", "--random-drop", "3", "--device", "cpu")
    run("embed-labels", "--skeletons", d / "sk.h5", "--out", d / "t.h5")
    out = run("fit-estimator", "--visual", d / "v.h5", "--text", d / "t.h5", "--out", d / "run", "--epochs", "3",
              "--warmup", "1", "--lr", "1e-4", "--device", "cpu")
    assert "run written" in out
    return name, d, raw


def test_the_chain_runs_on_the_layout(chain):
    name, d, _ = chain
    s = read_skeletons(d / "sk.h5")
    layout = layout_of(s)
    assert s.layout == name and s.data.shape[3] == layout.num_joints
    _, info = load_backbone(d / "b.pt")
    assert info.layout == name and layout_of(info).same_skeleton(layout)
    if name == "hand-21":
        assert layout is LAYOUTS["hand-21"] and info.layout_spec is None  # a preset travels by name
    else:
        assert info.layout_spec == layout.spec()  # a custom layout travels as data
        assert layout.up_axis == ("z" if name == "stick-7" else "y")
    metrics = json.loads((d / "run" / "metrics.json").read_text())
    assert 0.0 <= metrics["zsl"]["selected"]["acc"] <= 1.0


def test_predict_ranks_free_text_labels_for_a_raw_file_of_the_layout(chain, tmp_path):
    name, d, raw = chain
    files = sorted(raw.glob("*.bvh"))[:3] if name == "bvh-5" else [raw]  # raw .bvh files: the format from the name
    fmt = [] if name == "bvh-5" else ["--format", "npz"]
    out = run("predict", "--backbone", d / "b.pt", "--estimator", d / "run", "--labels", "jumping", "--labels",
              "waving", "--json", *fmt, "--device", "cpu", "--top-k", "2", *files)
    rows = json.loads(out)
    assert len(rows) == 2 * (3 if name == "bvh-5" else 32) and {r["label"] for r in rows} == {"jumping", "waving"}
    other = write_npz(tmp_path / "other.npz", "hand-21" if name != "hand-21" else "stick-7")
    result = CliRunner().invoke(main, ["predict", "--backbone", str(d / "b.pt"), "--estimator", str(d / "run"),
                                       "--labels", "jumping", "--format", "npz", "--device", "cpu", str(other)])
    assert result.exit_code == 1 and "other.npz" in result.output and "but the backbone" in result.output
    assert f"expects {name}:" in result.output and "Traceback" not in result.output


def test_show_draws_the_layout_bones(chain, tmp_path):
    name, d, raw = chain
    png = tmp_path / f"{name}.png"
    run("show", d / "sk.h5", "--out", png, "--index", "0", "--index", "9")
    assert png.stat().st_size > 5000
    if name == "bvh-5":  # a raw clip, read and drawn with the rig's own bones
        run("show", sorted(raw.glob("*.bvh"))[0], "--out", tmp_path / "raw.png")
        assert (tmp_path / "raw.png").stat().st_size > 5000
