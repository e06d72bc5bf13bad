"""Backbones: ST-GCN graph, forward shapes, checkpoint round trip, foreign weights, Shift-GCN shifts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from smie.features.store import SmieError, file_sha256
from smie.pipeline.visual.backbones import (
    BackboneInfo,
    build_backbone,
    check_backbone_compatible,
    load_backbone,
    load_init_weights,
    save_checkpoint,
)
from smie.pipeline.visual.backbones.graph import spatial_adjacency
from smie.pipeline.visual.backbones.shiftgcn import ShiftGCNUnit, TemporalShift
from smie.pipeline.data.layouts import LAYOUTS
from smie.pipeline.data.splits import Split, resolve_split


pytestmark = pytest.mark.usefixtures("one_thread")


def _official_stgcn_graph(num_node, edges, center):
    """The released ST-GCN ``Graph(strategy='spatial', max_hop=1)`` loop, transcribed independently."""
    A = np.zeros((num_node, num_node))
    for i, j in edges + [(k, k) for k in range(num_node)]:
        A[j, i] = A[i, j] = 1
    hop = np.full((num_node, num_node), np.inf)
    hop[np.eye(num_node) > 0] = 0
    hop[(A > 0) & (np.eye(num_node) == 0)] = 1
    norm = A @ np.diag(1.0 / A.sum(0))
    out = []
    for h in (0, 1):
        root, close, further = (np.zeros((num_node, num_node)) for _ in range(3))
        for i in range(num_node):
            for j in range(num_node):
                if hop[j, i] == h:
                    if hop[j, center] == hop[i, center]:
                        root[j, i] = norm[j, i]
                    elif hop[j, center] > hop[i, center]:
                        close[j, i] = norm[j, i]
                    else:
                        further[j, i] = norm[j, i]
        out += [root] if h == 0 else [root + close, further]
    return np.stack(out)


_NTU_EDGES_1BASED = [  # ST-GCN net/utils/graph.py, layout 'ntu-rgb+d', centre 21
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9), (11, 10), (12, 11),
    (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19), (22, 23), (23, 8), (24, 25),
    (25, 12),
]


def test_adjacency_matches_released_stgcn_graph():
    expected = _official_stgcn_graph(25, [(i - 1, j - 1) for i, j in _NTU_EDGES_1BASED], center=20)
    np.testing.assert_allclose(spatial_adjacency(LAYOUTS["ntu-25"]), expected, atol=1e-7)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_geodesic_partition_orders_by_distance_to_centre(name):
    layout = LAYOUTS[name]
    A = spatial_adjacency(layout, distance="geodesic")
    V = layout.num_joints
    assert A.shape == (3, V, V)
    np.testing.assert_allclose(A.sum(axis=(0, 1)), np.ones(V), atol=1e-6)
    np.testing.assert_allclose(np.diag(A[0]) > 0, np.ones(V, bool))
    dist = {layout.graph_center: 0}
    while len(dist) < V:
        for c, p in layout.bones:
            for a, b in ((c, p), (p, c)):
                if b in dist and a not in dist:
                    dist[a] = dist[b] + 1
    for v, w in zip(*np.nonzero(A[2])):
        assert dist[v] < dist[w]
    for v, w in zip(*np.nonzero(A[1])):
        assert dist[v] > dist[w]


@pytest.mark.parametrize("arch,size", [("stgcn", "small"), ("stgcn", "standard"), ("shiftgcn", "small")])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_forward_shapes(arch, size, layout):
    V = LAYOUTS[layout].num_joints
    model = build_backbone(arch, layout, size).eval()
    x = torch.randn(2, 3, 10, V, 2, generator=torch.Generator().manual_seed(0))  # 10 -> 5 -> 3 frames: odd
    with torch.no_grad():
        feats = model(x)
    assert feats.shape == (2, 256) and torch.isfinite(feats).all()


def test_unknown_arch_and_size_are_user_errors():
    with pytest.raises(SmieError, match="known: stgcn, shiftgcn"):
        build_backbone("resnet", "ntu-25")
    with pytest.raises(SmieError, match="unknown size 'huge'"):
        build_backbone("stgcn", "ntu-25", "huge")


def _split():
    return resolve_split("random:2:seed=0", 6)


def _save(model, path, split=None):
    save_checkpoint(path, model, split=split or _split(), partition={"protocol": None, "val_fraction": 0.1,
                    "test_fraction": 0.2, "seed": 0}, class_names=[f"c{i}" for i in range(6)], num_frames=12,
                    skeleton_sha256="ab" * 32, provenance={"config": {"note": "test"}}, epoch=3, val_acc=0.5)


@pytest.mark.parametrize("arch", ["stgcn", "shiftgcn"])
def test_checkpoint_round_trip_gives_identical_features(tmp_path, arch):
    torch.manual_seed(1)
    model = build_backbone(arch, "kinect-v1-20", "small")
    model.train()
    model(torch.randn(4, 3, 12, 20, 2))  # move BN running statistics off their initial values
    model.eval()
    path = tmp_path / "bb.pt"
    _save(model, path)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "smie.backbone" and "fc.weight" not in raw["state_dict"]
    loaded, info = load_backbone(path, "cpu")
    assert not loaded.training
    x = torch.randn(3, 3, 12, 20, 2)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert isinstance(info, BackboneInfo)
    assert (info.arch, info.layout, info.num_frames, info.feature_dim, info.epoch) == (arch, "kinect-v1-20", 12,
                                                                                       256, 3)
    assert info.split == _split() and info.sha256 == file_sha256(path)


def test_foreign_state_dict_with_module_prefix_and_classifier_imports(tmp_path):
    torch.manual_seed(2)
    source = build_backbone("stgcn", "ntu-25", "small").eval()
    foreign = {f"module.{k}": v for k, v in source.state_dict().items()}
    foreign["module.fc.weight"] = torch.randn(60, 256)
    foreign["module.fc.bias"] = torch.zeros(60)
    path = tmp_path / "foreign.pth"
    torch.save(foreign, path)
    torch.manual_seed(3)
    target = build_backbone("stgcn", "ntu-25", "small").eval()
    x = torch.randn(2, 3, 12, 25, 2)
    with torch.no_grad():
        assert not torch.equal(source(x), target(x))
        load_init_weights(target, path)
        assert torch.equal(source(x), target(x))


def test_mismatched_state_dict_names_the_offenders(tmp_path):
    standard = build_backbone("stgcn", "ntu-25", "standard").state_dict()
    path = tmp_path / "standard.pt"
    torch.save(standard, path)
    small = build_backbone("stgcn", "ntu-25", "small")
    with pytest.raises(SmieError, match=r"standard\.pt.*shape mismatches: st_gcn_networks\.0\.gcn\.conv\.weight"):
        load_init_weights(small, path)
    partial = {k: v for k, v in build_backbone("stgcn", "ntu-25", "small").state_dict().items()
               if not k.startswith("data_bn.")}
    partial["extra.weight"] = torch.zeros(1)
    torch.save(partial, path)
    with pytest.raises(SmieError, match=r"missing keys: data_bn\.weight.*unexpected keys: extra\.weight"):
        load_init_weights(small, path)


def test_compatibility_check_refuses_overlapping_seen_classes(tmp_path):
    path = tmp_path / "bb.pt"
    _save(build_backbone("stgcn", "ntu-25", "small"), path)
    _, info = load_backbone(path)
    check_backbone_compatible(info, _split(), skeleton_sha256="ab" * 32)
    other = Split("custom", 6, seen=(2, 3, 4, 5), unseen=(0, 1), val_unseen=(2,))
    with pytest.raises(SmieError, match=r"trained on 2 classes that are unseen in split custom: 0 c0, 1 c1"):
        check_backbone_compatible(info, other)
    with pytest.raises(SmieError, match="skeleton cache"):
        check_backbone_compatible(info, _split(), skeleton_sha256="cd" * 32)


def test_shift_gcn_spatial_shift_follows_released_index_formula():
    C, V = 5, 7
    unit = ShiftGCNUnit(C, C, V)
    expected = [(i * C + j + j * C) % (C * V) for i in range(V) for j in range(C)]
    assert unit.shift_in.tolist() == expected
    assert unit.shift_out.tolist() == [(i * C + j - j * C) % (C * V) for i in range(V) for j in range(C)]


def test_temporal_shift_integer_offsets_and_gradient_rule():
    shift = TemporalShift(3, stride=1)
    with torch.no_grad():
        shift.ypos.copy_(torch.tensor([0.0, 1.0, -2.0]))
    x = torch.arange(2 * 3 * 6 * 4, dtype=torch.float32).view(2, 3, 6, 4)
    out = shift(x)
    assert torch.equal(out[:, 0], x[:, 0])
    assert torch.equal(out[:, 1, :5], x[:, 1, 1:]) and torch.equal(out[:, 1, 5], torch.zeros(2, 4))
    assert torch.equal(out[:, 2, 2:], x[:, 2, :4]) and torch.equal(out[:, 2, :2], torch.zeros(2, 2, 4))
    with torch.no_grad():
        shift.ypos.copy_(torch.tensor([0.25, 0.5, 1.5]))
    x.requires_grad_(True)
    out = shift(x)
    torch.testing.assert_close(out[:, 0, :5], 0.75 * x[:, 0, :5] + 0.25 * x[:, 0, 1:])
    out[:, :, 2:4].sum().backward()
    assert torch.allclose(shift.ypos.grad.abs(), torch.full((3,), 0.01))
    assert TemporalShift(3, stride=2)(torch.randn(1, 3, 8, 4)).shape == (1, 3, 4, 4)
    assert TemporalShift(3, stride=2)(torch.randn(1, 3, 25, 4)).shape == (1, 3, 13, 4)
