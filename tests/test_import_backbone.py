"""``smie import-backbone``: published Shift-GCN / ST-GCN / SMIE checkpoints into smie backbones.

The forward pass is checked against the official module definitions run from their checkouts under
``../official`` (skipped where absent), on CPU, with Shift-GCN's CUDA shift replaced by a pure-torch transcription
of its kernel that lives in ``bench/parity/official_backbones.py``; that transcription is itself checked against
smie's shift here on every machine. Then an imported backbone runs ``extract-visual`` to masked views."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from bench.parity.official_backbones import OFFICIAL, ReferenceShift, compare
from smie.cli import main
from smie.features.skeletons import SkeletonSet, write_skeletons
from smie.features.visual import read_visual
from smie.pipeline.data.classes import class_table
from smie.pipeline.data.splits import resolve_split
from smie.pipeline.visual.backbones import build_backbone, load_backbone
from smie.pipeline.visual.backbones.shiftgcn import TemporalShift
from smie.pipeline.visual.extract import ExtractConfig, extract_visual
from tests.bad_input_contract import run_bad

SPLIT = "synse:ntu60:55/5"
SEEN = list(resolve_split(SPLIT, 60).seen)
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("stride", [1, 2])
def test_smie_shift_is_the_extension_kernel(stride):
    """smie's temporal shift (xpos included) equals the transcribed CUDA kernel, for even T (the kernel keeps
    T // stride rows where smie keeps ceil(T / stride), so they differ only for odd T at a stride)."""
    torch.manual_seed(0)
    ref, ours = ReferenceShift(6, stride, init_scale=1), TemporalShift(6, stride)
    with torch.no_grad():
        ref.xpos.copy_(torch.tensor([0.0, 3e-9, -0.3, 0.7, -1.6, 2.2]))
        ref.ypos.uniform_(-2, 2)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 6, 12, 5)
    torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("fmt", ["shiftgcn", "stgcn", "smie-stgcn"])
def test_forward_matches_the_official_module(fmt):
    repo = {"shiftgcn": "Shift-GCN", "stgcn": "st-gcn", "smie-stgcn": "SMIE"}[fmt]
    if not (OFFICIAL / repo).is_dir():
        pytest.skip(f"official checkout {OFFICIAL / repo} not available")
    r = compare(fmt)
    print(r)
    assert r["features"] == (3, 256)
    assert r["feature_max_rel"] < 1e-5, r
    if fmt != "smie-stgcn":
        assert r["score_max_rel"] < 1e-5, r


def shiftgcn_file(path, head_rows: int = 60, seed: int = 0):
    """A checkpoint in Shift-GCN's format (state dict, ``fc`` head over ``head_rows`` classes) of a random net."""
    torch.manual_seed(seed)
    model = build_backbone("shiftgcn", "ntu-25", "standard").eval()
    state = OrderedDict((k, v.clone()) for k, v in model.state_dict().items())
    state["fc.weight"], state["fc.bias"] = torch.randn(head_rows, 256), torch.randn(head_rows)
    torch.save(state, path)
    return model, state


def test_import_round_trip_head_rows_and_roles(tmp_path):
    model, state = shiftgcn_file(tmp_path / "w.pt")
    r = CliRunner().invoke(main, ["import-backbone", "--format", "shiftgcn", "--weights", str(tmp_path / "w.pt"),
                                  "--split", SPLIT, "--out", str(tmp_path / "b.pt"), "--frames", "20"])
    assert r.exit_code == 0, r.output
    ours, info = load_backbone(tmp_path / "b.pt")
    x = torch.randn(2, 3, 20, 25, 2)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), model(x))
    assert info.trained_classes == tuple(SEEN) and info.skeleton_sha256 == "" and info.num_frames == 20
    torch.testing.assert_close(info.head["state_dict"]["weight"], state["fc.weight"][SEEN])
    assert info.partition["protocol"] == "ntu-xsub" and info.class_names == class_table("ntu60")
    assert info.provenance["imported"]["format"] == "shiftgcn" and len(info.provenance["imported"]["sha256"]) == 64
    torch.save(state, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)  # torch < 1.6's format
    r = CliRunner().invoke(main, ["import-backbone", "--format", "shiftgcn", "--weights", str(tmp_path / "legacy.pt"),
                                  "--split", SPLIT, "--out", str(tmp_path / "l.pt"), "--frames", "20"])
    assert r.exit_code == 0, r.output
    with torch.no_grad():
        torch.testing.assert_close(load_backbone(tmp_path / "l.pt")[0](x), model(x))
    shiftgcn_file(tmp_path / "w50.pt", head_rows=50)
    from smie.pipeline.visual.import_backbone import ImportBackboneConfig, import_backbone

    val = import_backbone(ImportBackboneConfig(format="shiftgcn", weights=tmp_path / "w50.pt", split=SPLIT,
                                               out=tmp_path / "v.pt", role="validation"))
    split = resolve_split(SPLIT, 60)
    assert load_backbone(val)[1].trained_classes == tuple(c for c in SEEN if c not in split.val_unseen)


def test_bad_checkpoints(tmp_path):
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "b.pt"
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pt")
    run_bad(["import-backbone", "--format", "shiftgcn", "--weights", tmp_path / "other.pt", "--split", SPLIT,
             "--out", out], out, "other.pt", "no 'l1.gcn1.Linear_weight'")
    shiftgcn_file(tmp_path / "w37.pt", head_rows=37)
    run_bad(["import-backbone", "--format", "shiftgcn", "--weights", tmp_path / "w37.pt", "--split", SPLIT,
             "--out", out], out, "w37.pt", "head over 37 classes")
    model = build_backbone("stgcn", "ntu-25", "small")
    state = model.state_dict()
    state["A"] = torch.roll(state["A"], 1, dims=1)  # another joint order
    torch.save(state, tmp_path / "stgcn.pt")
    run_bad(["import-backbone", "--format", "smie-stgcn", "--weights", tmp_path / "stgcn.pt", "--split", SPLIT,
             "--out", out], out, "stgcn.pt", "'A' differs")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    run_bad(["import-backbone", "--format", "stgcn", "--weights", tmp_path / "junk.pt", "--split", SPLIT,
             "--out", out], out, "junk.pt", "not a torch checkpoint")


def test_extract_visual_writes_masked_views_with_an_imported_backbone(tmp_path):
    """The published backbone's use: imported, then run by extract-visual over NTU-layout skeletons (the official
    cross-subject partition decides its training samples), with keyframe-masked views for SMIE."""
    shiftgcn_file(tmp_path / "w.pt")
    runner = CliRunner()
    r = runner.invoke(main, ["import-backbone", "--format", "shiftgcn", "--weights", str(tmp_path / "w.pt"),
                             "--split", SPLIT, "--out", str(tmp_path / "b.pt"), "--frames", "16"])
    assert r.exit_code == 0, r.output
    rng = np.random.default_rng(0)
    labels = np.array([0, 1, 10, 11, 19, 26, 56, 3] * 2)
    subjects = np.array([1, 2, 3, 4] * 4, np.int32)  # 1, 2, 4: cross-subject training performers
    sset = SkeletonSet(data=rng.normal(size=(16, 3, 16, 25, 2)).astype(np.float32), labels=labels,
                       lengths=np.full(16, 16, np.int32), sample_ids=tuple(f"s{i:02d}" for i in range(16)),
                       class_names=class_table("ntu60"), layout="ntu-25", dataset="ntu60", meta={"subject": subjects})
    write_skeletons(tmp_path / "sk.h5", sset, {"test": True})
    vc = read_visual(extract_visual(ExtractConfig(skeletons=tmp_path / "sk.h5", backbone=tmp_path / "b.pt",
                                                  out=tmp_path / "v.h5", views=2, keyframes=4, random_drop=4,
                                                  batch_size=8, chunk_size=16, device="cpu")))
    assert vc.masked.shape == (16, 2, 256) and vc.head.classes == tuple(SEEN)
    assert vc.backbone_arch == "shiftgcn" and vc.split["id"] == SPLIT
    unseen = np.isin(labels, resolve_split(SPLIT, 60).unseen)
    assert set(vc.partition[unseen & (subjects == 3)]) == {3} and set(vc.partition[unseen & (subjects != 3)]) == {4}
