"""Caches stay readable across releases: every frozen fixture in tests/fixtures/ (written by the commit that
introduced its layout, see tests/fixtures/make_caches.py) loads with today's readers; newer schema versions are
refused with a message that says a newer smie wrote them; older ones pass the header check."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from smie.cli import main
from smie.features import skeletons, text, visual
from smie.features.store import CacheError, check_header, open_checked, schema_version_of, write_header
from smie.pipeline.data.layouts import LAYOUTS, layout_of

FIXTURES = Path(__file__).resolve().parent / "fixtures"
INDEX = json.loads((FIXTURES / "caches.json").read_text())
MODULES = {"skeletons": skeletons, "visual": visual, "text": text}


def test_every_kind_has_a_frozen_fixture_of_every_version_it_writes():
    for kind, mod in MODULES.items():
        versions = {int(name.split("-v")[1].split("-")[0]) for name in INDEX if name.startswith(kind + "-")}
        assert versions >= set(range(1, mod.SCHEMA_VERSION + 1)), (
            f"{kind}: add a frozen fixture of every schema version up to {mod.SCHEMA_VERSION} "
            "(tests/fixtures/make_caches.py)")
    assert sorted(p.name for p in FIXTURES.glob("*.h5")) == sorted(INDEX)
    assert all(p.stat().st_size < 32_000 for p in FIXTURES.glob("*.h5"))


@pytest.mark.parametrize("name", sorted(n for n in INDEX if n.startswith("skeletons-")))
def test_frozen_skeleton_caches_load(name):
    s = skeletons.read_skeletons(FIXTURES / name)
    if "-v1-" in name:  # a preset by name
        assert s.data.shape == (4, 3, 6, 25, 1) and s.layout == "ntu-25" and s.layout_spec is None
        assert layout_of(s) is LAYOUTS["ntu-25"]
    else:  # version 2: a custom layout stored as data
        assert s.data.shape == (4, 3, 6, 7, 1) and s.layout == "stick-7"
        layout = layout_of(s)
        assert layout.joint_names[2] == "head" and layout.bones[3] == (4, 3) and layout.up_axis == "z"
        assert (layout.center, layout.graph_center) == (0, 1)
    assert s.data.dtype == np.float32
    assert s.class_names == ("raise left arm", "kick with right leg", "squat down")
    assert s.labels.tolist() == [0, 1, 2, 2] and s.dataset == "synthetic"
    assert s.meta["subject"].tolist() == [0, 1, 2, 0]
    chunks = list(skeletons.iter_skeleton_chunks(FIXTURES / name, 1, 3))
    np.testing.assert_array_equal(np.concatenate([c[1] for c in chunks]), s.data[1:3])


@pytest.mark.parametrize("name", sorted(n for n in INDEX if n.startswith("text-")))
def test_frozen_text_caches_load(name):
    t = text.read_text(FIXTURES / name)
    assert t.kinds == ("label", "action") and t.dim == 8 and t.class_names[2] == "squat down"
    assert t.count("action").tolist() == [2, 1, 2] and t.texts("action")[1] == ("kicks forward", "")
    np.testing.assert_allclose(np.linalg.norm(t.pooled("action"), axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("name", sorted(n for n in INDEX if n.startswith("visual-")))
def test_frozen_visual_caches_load(name):
    v = visual.read_visual(FIXTURES / name)
    W = 0 if "-v2-" in name else 2  # version 2 as imported: no masked views
    assert v.features.shape == (9, 8) and v.masked.shape == (9, W, 8) and v.views == W
    assert v.split["unseen"] == [2] and v.partition.tolist() == [0, 1, 2, 0, 1, 2, 3, 3, 3]
    assert v.backbone_arch == "stgcn" and v.masking["variant"] == "official"
    if "with a validation view" in INDEX[name]["holds"]:
        assert v.validation is not None and v.validation.trained_classes == (0,)
        assert v.head is not None and v.head.classes == (0, 1) and v.validation.head.classes == (0,)
        assert v.head.logits(v.features).shape == (9, 2)
    elif "-v2-" in name:
        assert v.validation is None and v.imported["format"] == "synse"
        assert v.logits.at([3], classes=[2]).shape == (1, 1) and v.logits.classes == (0, 1, 2)
        vs = v.validation_set
        assert vs.features.shape == (4, 8) and vs.trained_classes == (0,) and vs.partition.tolist() == [0, 1, 1, 1]
    else:
        assert v.validation is None and v.head is None


@pytest.mark.parametrize("name", sorted(INDEX))
def test_inspect_lists_every_frozen_fixture(name):
    result = CliRunner().invoke(main, ["inspect", str(FIXTURES / name)])
    assert result.exit_code == 0, result.output
    assert f"(schema-version {name.split('-v')[1].split('-')[0]})" in result.output


@pytest.mark.parametrize("kind", sorted(MODULES))
def test_a_newer_schema_version_is_refused_naming_both(tmp_path, kind):
    mod = MODULES[kind]
    src = next(FIXTURES / n for n in sorted(INDEX) if n.startswith(kind + "-"))
    future = tmp_path / "future.h5"
    shutil.copy(src, future)
    with h5py.File(future, "a") as f:
        f.attrs["schema-version"] = mod.SCHEMA_VERSION + 1
    reader = {"skeletons": skeletons.read_skeletons, "visual": visual.read_visual, "text": text.read_text}[kind]
    with pytest.raises(CacheError, match=rf"future\.h5: {mod.ENCODING_TYPE} schema-version {mod.SCHEMA_VERSION + 1} "
                                         r"is not supported: the file was written by a newer smie \(this smie reads "
                                         rf"versions? (1-)?{mod.SCHEMA_VERSION}\); upgrade smie"):
        reader(future)


def test_header_check_accepts_every_version_from_the_oldest_to_the_newest(tmp_path):
    """What a schema bump relies on: a reader declaring version N still opens N-1 (and reads its layout by
    ``schema_version_of(f)``), refuses N+1, and a kind may declare an oldest version it still migrates."""
    path = tmp_path / "v.h5"
    for found in (1, 2, 3):
        with h5py.File(path, "w") as f:
            write_header(f, "smie.visual", found, {})
        with h5py.File(path, "r") as f:
            if found <= 2:
                assert check_header(f, path, "smie.visual", 2) == found == schema_version_of(f)
            else:
                with pytest.raises(CacheError, match="written by a newer smie .this smie reads versions 1-2."):
                    check_header(f, path, "smie.visual", 2)
            if found == 1:
                with pytest.raises(CacheError, match="too old to migrate .this smie reads versions 2-3.; re-create"):
                    check_header(f, path, "smie.visual", 3, oldest=2)
    with h5py.File(path, "w") as f:
        write_header(f, "smie.visual", 1, {})
        f.attrs["schema-version"] = "one"
    with pytest.raises(CacheError, match="without a valid schema-version"):
        open_checked(path, "smie.visual", 1)
