"""The BVH reader on the 174 real Bandai-Namco clips (../shared/realdata/bandai_namco_motion_1, CC BY-NC 4.0, never
copied into the repository): every clip reads, forward kinematics keeps every bone's length over time to float
precision, the feet stay near the floor on the walk clips, and the body has a plausible height (centimetres,
y up, as its SOURCES.md entry says)."""
from __future__ import annotations

import numpy as np
import pytest

from smie.pipeline.data.layouts import layout_of
from smie.pipeline.data.readers import load_raw
from smie.pipeline.data.readers.bvh import forward_kinematics, parse_bvh

PATTERN = "dataset-1_{label}_{style}_{id}"


@pytest.fixture(scope="module")
def clips(realdata_dir):
    d = realdata_dir / "bandai_namco_motion_1" / "data"
    files = sorted(d.glob("*.bvh"))
    assert len(files) == 174
    return d, files


def test_every_real_clip_reads_with_the_rig_layout(clips):
    d, files = clips
    raw = load_raw("bvh", d, max_bodies=1, label_pattern=PATTERN)
    assert len(raw.samples) == 174 and not raw.skipped
    counts = dict(zip(*np.unique([raw.class_names[s.label] for s in raw.samples], return_counts=True)))
    assert counts["walk"] == 30 and all(counts[c] == 15 for c in ("run", "dash", "bow", "bye", "guide"))
    layout = layout_of(raw)
    assert layout.num_joints == 21 and layout.joint_names[layout.center] == "Hips" and layout.up_axis == "y"
    assert raw.info["joints_dropped"] == ["joint_Root"] and raw.info["frame_rates"] == [30.0]
    assert raw.info["units"] == "cm"
    assert sum(s.data.shape[1] for s in raw.samples) == sum(_frames(f) for f in files)  # every frame line
    parent = dict(layout.bones)
    for s in raw.samples[::7]:  # the float32 positions the cache stores keep the bones too
        x = s.data[..., 0].transpose(1, 2, 0).astype(np.float64)  # (T, V, 3)
        for c, p in parent.items():
            length = np.linalg.norm(x[:, c] - x[:, p], axis=1)
            assert np.abs(length - length[0]).max() < 1e-4 * max(length[0], 1.0), (s.sample_id, c)


def _frames(path) -> int:
    text = path.read_text()
    return int(text.split("Frames:", 1)[1].split()[0])


def test_real_forward_kinematics_bones_feet_and_height(clips):
    _, files = clips
    worst, heads, lowest = 0.0, [], []
    for f in files:
        clip = parse_bvh(f)
        xyz = forward_kinematics(clip)  # (F, J, 3), centimetres, y up
        names = [j.name for j in clip.joints]
        for j, joint in enumerate(clip.joints):
            if joint.parent > 0:  # every body bone (the anchor joint_Root -> Hips link is root motion, not a bone)
                length = np.linalg.norm(xyz[:, j] - xyz[:, joint.parent], axis=1)
                worst = max(worst, float(np.abs(length - length[0]).max()))
        heads.append(float(np.median(xyz[:, names.index("Head"), 1])))
        if "_walk_" in f.name:
            feet = [names.index(n) for n in ("Foot_L", "Toes_L", "Foot_R", "Toes_R")]
            lowest.append(xyz[:, feet, 1].min(axis=1))  # (F,) the lowest foot joint per frame
    print(f"\nbone length max deviation over time: {worst:.2e} cm; head joint height median "
          f"{np.median(heads):.1f} cm (range {min(heads):.1f}-{max(heads):.1f}); walk clips' lowest foot joint: "
          f"min {min(x.min() for x in lowest):.2f}, median {np.median(np.concatenate(lowest)):.2f}, max "
          f"{max(x.max() for x in lowest):.2f} cm")
    assert worst < 1e-9  # float64 forward kinematics: rigid bones to rounding
    assert all(110 < h < 160 for h in heads) and 125 < np.median(heads) < 150  # head joint of a ~1.6 m adult
    assert len(lowest) == 30
    for low in lowest:  # a foot (ankle or toe joint) on the floor (y = 0) in every frame of a walk
        assert low.min() > 0 and np.median(low) < 6 and np.percentile(low, 95) < 10
