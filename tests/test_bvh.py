"""BVH motion capture: forward kinematics against a hand computation, the rig's layout, labels from a table or a
file-name pattern, and every class of bad BVH through ``smie prepare`` (one clear line naming file and line)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from smie.cli import main
from smie.features.skeletons import read_skeletons
from smie.features.store import SmieError
from smie.pipeline.data.layouts import layout_of
from smie.pipeline.data.readers import load_raw
from smie.pipeline.data.readers.bvh import forward_kinematics, parse_bvh
from tests.bad_input_contract import prepare_args, run_bad
from tests.conftest import HIERARCHY, bvh_text, frame, upright

WIDTH = 6 + 3 + 3 + 6 + 1
MOTION_LINE = HIERARCHY.count("\n") + 1  # 1-based line of MOTION; frames start 3 lines later


def test_forward_kinematics_matches_a_hand_computation(tmp_path):
    """Rotations about each axis, nested offsets, non-ZXY orders (XYZ, ZYX), position channels at the root and
    at a non-root joint (they replace its OFFSET), a joint without position channels (its OFFSET)."""
    frames = [
        frame(root=(1, 2, 3)),  # rest pose moved to (1, 2, 3)
        frame(root_zxy=(90, 0, 0), spine_xyz=(90, 0, 0), leg_zyx=(0, 90, 0)),
        frame(spine_xyz=(90, 90, 0), leg_pos=(2, 1, 0), leg_zyx=(90, 90, 0), foot_x=45),
    ]
    f = tmp_path / "hand.bvh"
    f.write_text(bvh_text(frames))
    clip = parse_bvh(f)
    assert [j.name for j in clip.joints] == ["Hips", "Spine", "Head", "LeftLeg", "LeftFoot"]
    xyz = forward_kinematics(clip)
    expected = np.array([
        # frame 0: offsets added along the chains from (1, 2, 3)
        [[1, 2, 3], [1, 12, 3], [1, 17, 3], [3, 2, 3], [3, -6, 3]],
        # frame 1: Rz(90) at the root maps (x, y, z) -> (-y, x, z): the spine offset (0, 10, 0) -> (-10, 0, 0);
        # the spine's Rx(90) maps the head offset (0, 5, 0) -> (0, 0, 5), Rz(90) keeps it; the leg offset (2, 0, 0)
        # -> (0, 2, 0); the leg's Ry(90) keeps (0, -8, 0), the root's Rz(90) turns it into (8, 0, 0)
        [[0, 0, 0], [-10, 0, 0], [-10, 0, 5], [0, 2, 0], [8, 2, 0]],
        # frame 2: XYZ order is Rx(90) Ry(90): head offset -> Ry -> (0, 5, 0) -> Rx -> (0, 0, 5) (YX would give
        # (5, 0, 0)); ZYX order is Rz(90) Ry(90): foot offset -> (0, -8, 0) -> (8, 0, 0) (YZ would give (0, 0, -8));
        # the leg's position channels (2, 1, 0) replace its OFFSET; the foot's own rotation moves only its End Site
        [[0, 0, 0], [0, 10, 0], [0, 10, 5], [2, 1, 0], [10, 1, 0]],
    ], dtype=float)
    np.testing.assert_allclose(xyz, expected, atol=1e-12)
    assert clip.frame_time == pytest.approx(1 / 30)


def test_bone_lengths_stay_the_offsets_under_any_rotation(tmp_path):
    rng = np.random.default_rng(3)
    frames = [frame(root=tuple(rng.normal(0, 50, 3)), root_zxy=tuple(rng.uniform(-180, 180, 3)),
                    spine_xyz=tuple(rng.uniform(-180, 180, 3)), head=tuple(rng.uniform(-180, 180, 3)),
                    leg_zyx=tuple(rng.uniform(-180, 180, 3)), foot_x=rng.uniform(-180, 180)) for _ in range(40)]
    f = tmp_path / "spin.bvh"
    f.write_text(bvh_text(frames))
    xyz = forward_kinematics(parse_bvh(f))
    for child, parent, length in ((1, 0, 10), (2, 1, 5), (3, 0, 2), (4, 3, 8)):
        np.testing.assert_allclose(np.linalg.norm(xyz[:, child] - xyz[:, parent], axis=1), length, atol=1e-9)


def write_clips(d: Path, names: dict[str, int]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for i, (name, n) in enumerate(names.items()):
        (d / f"{name}.bvh").write_text(bvh_text(upright(n, seed=i)))
    return d


CLIPS = {"mocap_wave_happy_01": 12, "mocap_wave_sad_02": 14, "mocap_kick_happy_03": 10, "mocap_kick_sad_04": 11}


def test_rig_layout_and_labels_from_a_pattern(tmp_path):
    d = write_clips(tmp_path / "clips", CLIPS)
    raw = load_raw("bvh", d, max_bodies=1, label_pattern="mocap_{label}_{style}_{take}")
    assert raw.class_names == ("kick", "wave") and [s.label for s in raw.samples] == [0, 0, 1, 1]
    assert [s.meta for s in raw.samples] == [{"take": 3}, {"take": 4}, {"take": 1}, {"take": 2}]
    layout = layout_of(raw)
    assert layout.joint_names == ("Hips", "Spine", "Head", "LeftLeg", "LeftFoot")  # End Sites dropped
    assert set(layout.bones) == {(1, 0), (2, 1), (3, 0), (4, 3)} and layout.center == 0 and layout.up_axis == "y"
    x = raw.samples[0].data
    assert x.shape == (3, 10, 5, 1) and x.dtype == np.float32
    assert raw.info["frame_rates"] == [30.0] and raw.info["joints_dropped"] == []
    unlabelled = load_raw("bvh", d / "mocap_kick_sad_04.bvh", max_bodies=1)
    assert unlabelled.class_names == () and unlabelled.samples[0].label == -1


def test_prepare_bvh_with_a_label_table_selects_and_records(tmp_path):
    d = write_clips(tmp_path / "clips", CLIPS)
    table = tmp_path / "labels.tsv"
    table.write_text("stem\tlabel\n# a comment\nmocap_wave_happy_01\twave hello\nmocap_kick_sad_04.bvh\tkick a ball\n"
                     "mocap_wave_sad_02\twave hello\n")
    result = CliRunner().invoke(main, ["prepare", "--format", "bvh", "--input", str(d), "--labels", str(table),
                                       "--out", str(tmp_path / "sk.h5"), "--frames", "8", "--max-bodies", "1"])
    assert result.exit_code == 0, result.output
    assert "wrote 3 samples of 2 classes" in result.output and "skipped mocap_kick_happy_03: not in the label" \
        in result.output
    s = read_skeletons(tmp_path / "sk.h5")
    assert s.class_names == ("wave hello", "kick a ball") and s.labels.tolist() == [1, 0, 0]
    assert s.data.shape == (3, 3, 8, 5, 1) and s.layout == "bvh-5" and layout_of(s).joint_names[2] == "Head"
    assert s.provenance["source"]["frame_rates"] == [30.0] and s.provenance["source"]["units"] == "unknown"
    np.testing.assert_allclose(s.data[:, :, 0, 0], 0, atol=1e-6)  # centred on the hips of the first frame
    out = CliRunner().invoke(main, ["inspect", str(tmp_path / "sk.h5")]).output
    assert "layout: bvh-5: 5 joints, centre 0 (Hips), up y (custom" in out and "4 LeftFoot" in out


def test_an_anchor_above_the_hips_is_dropped_and_z_up_is_found(tmp_path):
    """A Reference root above the hips is a fixed anchor, not a body joint; a rig turned onto z is z-up."""
    anchored = "HIERARCHY\nROOT Reference\n{\n  OFFSET 0 0 0\n  CHANNELS 3 Xrotation Yrotation Zrotation\n" + \
        HIERARCHY.split("\n", 1)[1].replace("ROOT Hips", "JOINT Hips") + "}\n"
    frames = [[90, 0, 0, *row] for row in upright(12)]  # Rx(90) at the anchor: y -> z
    f = tmp_path / "z.bvh"
    f.write_text(bvh_text(frames, anchored))
    raw = load_raw("bvh", f, max_bodies=1)
    layout = layout_of(raw)
    assert layout.joint_names[0] == "Hips" and layout.num_joints == 5 and layout.up_axis == "z"
    assert raw.info["joints_dropped"] == ["Reference"] and raw.info["joints_in_file"] == 6


def _spoil(kind: str, f: Path) -> tuple[str, ...]:
    """Spoil ``f`` one way; the parts of the message it must get (a tuple)."""
    text, frames = HIERARCHY, upright(6)
    first = MOTION_LINE + 3  # 1-based line of the first frame
    if kind == "truncated":
        f.write_text(bvh_text(frames).rsplit("\n", 3)[0] + "\n")
        return f"line {first + 3}", "truncated MOTION block: Frames says 6 but only 4 frame lines"
    if kind == "channel-count":
        frames[2] = frames[2][:-2]
        f.write_text(bvh_text(frames))
        return f"line {first + 2}", f"{WIDTH - 2} values, but the hierarchy declares {WIDTH} channels"
    if kind == "nan":
        frames[4][7] = float("nan")
        f.write_text(bvh_text(frames))
        return f"line {first + 4}", "non-finite"
    if kind == "unknown-channel":
        f.write_text(bvh_text(frames, text.replace("3 Xrotation Yrotation Zrotation", "3 Xrot Yrotation Zrotation")))
        return "line 9", "unknown or repeated channel name", "Xrot"
    if kind == "duplicate-joint":
        f.write_text(bvh_text(frames, text.replace("JOINT LeftFoot", "JOINT Spine")))
        return "line 24", "garbled hierarchy: joint 'Spine' appears twice"
    if kind == "unbalanced":
        f.write_text(bvh_text(frames, text.replace("      }\n    }\n  }\n  JOINT LeftLeg", "      }\n    }\n  JOINT LeftLeg")))
        return "line 34", "garbled hierarchy: MOTION with 1 block(s) still open (unbalanced braces)"
    if kind == "joint-outside":
        f.write_text(bvh_text(frames, "HIERARCHY\nJOINT Hips\n{\n" + text.split("{\n", 1)[1]))
        return "line 2", "garbled hierarchy: JOINT outside the ROOT block"
    if kind == "other-rig":
        f.write_text(bvh_text(frames, text.replace("LeftFoot", "LeftToe")))
        return ("its skeleton differs from a_walk_1.bvh's",)
    raise AssertionError(kind)


BAD = ["truncated", "channel-count", "nan", "unknown-channel", "duplicate-joint", "unbalanced", "joint-outside",
       "other-rig"]


@pytest.mark.parametrize("kind", BAD)
def test_bad_bvh(tmp_path, kind):
    d = write_clips(tmp_path / "clips", {"a_walk_1": 6, "b_walk_2": 6, "c_run_3": 6})
    expect = _spoil(kind, d / "c_run_3.bvh")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    run_bad(prepare_args("bvh", d, out_dir / "x.h5", "--label-pattern", "{id}_{label}_{n}"), out_dir / "x.h5",
            "c_run_3.bvh", *expect)


@pytest.mark.parametrize("extra,expect", [
    ((), ("carry no action labels", "--label-pattern")),
    (("--label-pattern", "{label}-{x}"), ("no file name matches the label pattern",)),
    (("--labels", "TABLE"), ("names 1 file(s) not in", "nope_1")),
], ids=["unlabelled", "pattern-matches-nothing", "table-names-a-missing-file"])
def test_bad_bvh_labels(tmp_path, extra, expect):
    d = write_clips(tmp_path / "clips", {"a_walk_1": 6, "b_walk_2": 6})
    table = tmp_path / "t.csv"
    table.write_text("a_walk_1,walk\nnope_1,run\n")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    run_bad(prepare_args("bvh", d, out_dir / "x.h5", *[str(table) if e == "TABLE" else e for e in extra]),
            out_dir / "x.h5", *expect)


def test_label_options_are_checked(tmp_path):
    result = CliRunner().invoke(main, ["prepare", "--format", "bvh", "--input", str(tmp_path), "--out",
                                       str(tmp_path / "x.h5"), "--label-pattern", "{style}_{id}"])
    assert result.exit_code == 2 and "--label-pattern" in result.output and "{label}" in result.output
    with pytest.raises(SmieError, match="--label-pattern applies to the bvh format only, not npz"):
        load_raw("npz", tmp_path, label_pattern="{label}")


def test_skip_bad_skips_a_bad_clip_and_lists_it(tmp_path):
    d = write_clips(tmp_path / "clips", {"a_walk_1": 6, "b_walk_2": 6, "c_run_3": 6})
    _spoil("unknown-channel", d / "a_walk_1.bvh")  # the first file: the layout comes from the next good one
    result = CliRunner().invoke(main, ["prepare", *map(str, prepare_args("bvh", d, tmp_path / "x.h5")[1:]),
                                       "--label-pattern", "{id}_{label}_{n}", "--skip-bad"])
    assert result.exit_code == 0, result.output
    assert "wrote 2 samples of 2 classes" in result.output and "skipped a_walk_1: " in result.output
    assert "a_walk_1.bvh: line 9: unknown or repeated channel name" in result.output


def test_a_rig_lying_along_x_is_refused(tmp_path):
    f = tmp_path / "lying.bvh"
    f.write_text(bvh_text([frame(root=(0, 0, 0), root_zxy=(90, 0, 0))] * 4))  # Rz(90): the spine points along -x
    with pytest.raises(SmieError, match=r"lying\.bvh: cannot tell the up axis: the body is tallest along x"):
        load_raw("bvh", f)
