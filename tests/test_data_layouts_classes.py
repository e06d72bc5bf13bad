"""Joint layouts and class tables."""
from __future__ import annotations

import pytest

from smie.features.store import SmieError
from smie.pipeline.data.classes import class_codes, class_table, read_class_file, resolve_classes
from smie.pipeline.data.layouts import LAYOUTS, Layout, get_layout, layout_for_joints


@pytest.mark.parametrize("name,V,center", [("ntu-25", 25, 1), ("kinect-v1-20", 20, 3), ("coco-17", 17, 0)])
def test_layouts_are_trees_rooted_at_the_centre(name, V, center):
    layout = get_layout(name)
    assert layout.num_joints == V and layout.center == center
    assert len(layout.bones) == V - 1
    parent = dict(layout.bones)
    for joint in range(V):
        hops, j = 0, joint
        while j != center:
            j, hops = parent[j], hops + 1
            assert hops < V


def test_ntu_layout_has_stgcn_edges_and_names():
    layout = LAYOUTS["ntu-25"]
    edges = {frozenset(b) for b in layout.bones}
    assert frozenset((20, 1)) in edges and frozenset((22, 7)) in edges and frozenset((21, 22)) in edges
    assert layout.joint_names[1] == "spine mid" and layout.graph_center == 20
    assert LAYOUTS["kinect-v1-20"].joint_names[3] == "spine"


def test_layout_rejects_a_cycle_and_unknown_names():
    with pytest.raises(ValueError):
        Layout("bad", ("a", "b", "c"), ((1, 2), (2, 1)), center=0, graph_center=0)
    with pytest.raises(SmieError, match="unknown joint layout 'kinect'"):
        get_layout("kinect")
    with pytest.raises(SmieError, match="no joint layout has 18 joints"):
        layout_for_joints(18)


def test_class_tables():
    assert len(class_table("ntu60")) == 60 and len(class_table("ntu120")) == 120
    assert class_table("ntu120")[:60] == class_table("ntu60")
    assert class_table("ntu60")[0] == "drink water" and class_table("ntu120")[119].startswith("finger-guessing")
    pku = class_table("pku51")
    assert len(pku) == 51 and list(pku) == sorted(pku) and pku[0] == "bow" and pku[50] == "writing"
    assert class_codes("pku51")[:3] == ("1", "2", "3")
    assert class_table("msr")[12] == "bend" and class_codes("msr")[12] == "a13"
    with pytest.raises(SmieError, match="no class table"):
        class_table("kinetics")


def test_resolve_classes_sources(tmp_path):
    plain = tmp_path / "names.txt"
    plain.write_text("wave\n\nclap\n")
    assert resolve_classes(classes_file=plain).names == ("wave", "clap")
    tsv = tmp_path / "names.tsv"
    tsv.write_text("index\tname\n0\twave\n1\tjump\n")
    assert resolve_classes(classes_file=tsv).names == ("wave", "jump")
    cl = resolve_classes(dataset="msr")
    assert cl.dataset == "msr" and len(cl) == 20 and cl.source == "dataset:msr"
    with pytest.raises(SmieError, match="exactly one source"):
        resolve_classes(dataset="msr", classes_file=plain)
    with pytest.raises(SmieError, match="exactly one source"):
        resolve_classes()


def test_bad_class_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("index\tlabel_text\n0\twave\n")
    with pytest.raises(SmieError, match=r"bad\.tsv: line 1: .*'name' column"):
        read_class_file(bad)
    dup = tmp_path / "dup.txt"
    dup.write_text("wave\nwave\n")
    with pytest.raises(SmieError, match=r"dup\.txt: class file repeats class names: wave"):
        read_class_file(dup)
    with pytest.raises(SmieError, match="not found"):
        read_class_file(tmp_path / "none.txt")
