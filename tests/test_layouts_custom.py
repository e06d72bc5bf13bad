"""Layouts as data: the hand-21 preset, custom layouts validated as presets are, carried by a generic npz into the
skeleton cache (schema-version 2, round trip), shown by ``inspect``, refused clearly when malformed."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from smie.cli import main
from smie.features.skeletons import SkeletonSet, read_skeleton_header, read_skeletons, write_skeletons
from smie.features.store import CacheError, SmieError
from smie.pipeline.data.layouts import LAYOUTS, Layout, LayoutError, custom_spec, layout_of, resolve_layout
from smie.pipeline.visual.backbones import build_backbone
from smie.pipeline.visual.backbones.graph import spatial_adjacency
from tests.bad_input_contract import prepare_args, run_bad
from tests.conftest import STICK

def stick_npz(path, N=6, T=10, seed=0, **over):
    rng = np.random.default_rng(seed)
    data = rng.normal(0, 0.2, (N, 3, 1, 7, 1)) + np.sin(np.linspace(0, 3, T))[None, None, :, None, None]
    arrays = {"layout": np.array("stick-7"), **STICK, **over}
    np.savez(path, data=data.astype(np.float32), label=np.arange(N) % 3, class_names=np.array(["hop", "sway", "sit"]),
             **arrays)
    return path


def test_hand_21_preset_is_the_hand_tracker_order():
    hand = LAYOUTS["hand-21"]
    assert hand.num_joints == 21 and hand.center == 0 and hand.joint_names[0] == "wrist"
    assert hand.joint_names[1:5] == ("thumb cmc", "thumb mcp", "thumb ip", "thumb tip")
    assert hand.joint_names[5] == "index finger mcp" and hand.joint_names[20] == "pinky tip"
    parent = dict(hand.bones)
    for finger in range(5):  # base to tip, the base on the wrist
        base = 1 + 4 * finger
        assert parent[base] == 0 and [parent[base + k] for k in (1, 2, 3)] == [base, base + 1, base + 2]
    A = spatial_adjacency(hand)
    assert A.shape == (3, 21, 21) and np.allclose(A.sum(axis=(0, 1)), 1)


def test_custom_layout_from_data_is_validated_and_reoriented():
    layout = Layout.from_spec("stick-7", STICK)
    assert layout.center == 0 and layout.graph_center == 1 and layout.up_axis == "z"
    assert layout.bones[:2] == ((1, 0), (2, 1))  # given (0, 1), (1, 2): now pointing towards the pelvis
    assert Layout.from_spec("x", layout.spec()).same_skeleton(layout)
    assert resolve_layout("stick-7", layout.spec()) == layout and custom_spec(layout) == layout.spec()
    assert custom_spec(LAYOUTS["ntu-25"]) is None and resolve_layout("ntu-25", LAYOUTS["ntu-25"].spec()) \
        is LAYOUTS["ntu-25"]
    bad = [
        ({"bones": np.array([[1, 0], [2, 1], [0, 2], [4, 3], [5, 0], [6, 5]])}, "cycle through joint"),
        ({"bones": np.array([[1, 0], [2, 1], [4, 3], [4, 3], [5, 0], [6, 5]])}, r"do not connect joints \[3, 4\] to the centre 0"),
        ({"bones": np.array([[1, 0], [2, 1], [3, 0]])}, r"bones must be \(6, 2\) integer"),
        ({"bones": np.array([[1, 0], [2, 1], [3, 0], [4, 3], [5, 0], [6, 9]])}, r"bone \(6, 9\) does not join"),
        ({"center": np.array(7)}, "center 7 is not a joint"),
        ({"up_axis": np.array("x")}, "up_axis must be one of y, z"),
        ({"joint_names": np.array(["a", "b", "b", "c", "d", "e", "f"])}, "joint names repeat: b"),
        ({"center": np.array(1.5)}, "center must be one joint index"),
    ]
    for change, message in bad:
        with pytest.raises(LayoutError, match=message):
            Layout.from_spec("stick-7", {**STICK, **change}, where="f.npz")
    with pytest.raises(SmieError, match="lacks bones"):
        Layout.from_spec("stick-7", {k: v for k, v in STICK.items() if k != "bones"})
    with pytest.raises(SmieError, match="layout 'coco-17' differs from the preset of that name"):
        resolve_layout("coco-17", layout.spec())


def test_custom_layout_npz_round_trips_through_the_cache(tmp_path):
    src = stick_npz(tmp_path / "stick.npz")
    result = CliRunner().invoke(main, ["prepare", "--format", "npz", "--input", str(src), "--out",
                                       str(tmp_path / "sk.h5"), "--frames", "8", "--max-bodies", "1"])
    assert result.exit_code == 0, result.output
    s = read_skeletons(tmp_path / "sk.h5")
    assert s.layout == "stick-7" and s.data.shape == (6, 3, 8, 7, 1)
    layout = layout_of(s)
    assert layout.same_skeleton(Layout.from_spec("stick-7", STICK)) and layout.joint_names[2] == "head"
    np.testing.assert_allclose(s.data[:, :, 0, 0], 0, atol=1e-6)  # centred on the pelvis (joint 0)
    again = tmp_path / "again.h5"
    write_skeletons(again, s, {"config": {}})
    back = read_skeletons(again)
    np.testing.assert_array_equal(back.data, s.data)
    assert back.layout_spec == s.layout_spec == layout.spec() and layout_of(read_skeleton_header(again)) == layout
    out = CliRunner().invoke(main, ["inspect", str(tmp_path / "sk.h5")]).output
    assert "layout: stick-7: 7 joints, centre 0 (pelvis), up z (custom, stored in the cache)" in out
    assert "6 right foot" in out and "head-spine" in out
    model = build_backbone("stgcn", layout, "small", num_person=1)
    assert model.config["layout_spec"] == layout.spec() and model.A.shape == (3, 7, 7)
    assert "layout_spec" not in build_backbone("stgcn", LAYOUTS["hand-21"], "small").config  # a preset by name


def test_the_cache_refuses_a_joint_layout_that_does_not_fit(tmp_path):
    s = SkeletonSet(np.zeros((2, 3, 4, 7, 1), np.float32), np.array([0, 1]), np.array([4, 4], np.int32), ("a", "b"),
                    ("x", "y"), "stick-7", "toy", layout_spec=Layout.from_spec("stick-7", STICK).spec())
    path = tmp_path / "s.h5"
    write_skeletons(path, s, {"config": {}})
    with h5py.File(path, "a") as f:
        del f["joint_layout/joint_names"]
        f["joint_layout"].create_dataset("joint_names", data=np.array(["a", "b"], dtype=object),
                                         dtype=h5py.string_dtype())
    with pytest.raises(CacheError, match=r"s\.h5: 'joint_layout' has 2 joint names and 6 bones, but the skeletons have "
                                         r"V=7 joints"):
        read_skeletons(path)


@pytest.mark.parametrize("change,expect", [
    ({"bones": np.array([[1, 0], [2, 1], [0, 2], [4, 3], [5, 0], [6, 5]])}, ("x.npz", "cycle through joint")),
    ({"joint_names": np.array(["a", "b", "c", "d", "e", "f"])}, ("x.npz", "bones must be (5, 2)")),
    ({"layout": np.array("coco-17")}, ("x.npz", "layout 'coco-17' differs from the preset")),
], ids=["cycle", "names-and-bones-disagree", "preset-name"])
def test_bad_custom_layout_npz(tmp_path, change, expect):
    (tmp_path / "in").mkdir()
    src = stick_npz(tmp_path / "in" / "x.npz", **change)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    run_bad(prepare_args("npz", src, out_dir / "x.h5"), out_dir / "x.h5", *expect)
