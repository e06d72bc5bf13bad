"""embed-labels and the text cache: real MiniLM over the MSR class table and synthetic description files."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from smie.features.skeletons import SkeletonSet, write_skeletons
from smie.features.store import CacheError, SmieError, file_sha256, write_header
from smie.features.text import TextCache, TextKind, read_text, write_text
from smie.pipeline.data.classes import class_table
from smie.pipeline.semantic.embed import EmbedConfig, embed_labels
from smie.pipeline.semantic.text_encoder import MINILM_ID, TextEncoder
from smie.prompts.descriptions import Description, write_descriptions

MSR = class_table("msr")


@pytest.fixture(scope="module")
def enc() -> TextEncoder:
    return TextEncoder("minilm")


def _desc(cid: int, kind: str, text: str, sample: int = 0, label: str | None = None) -> Description:
    return Description(
        class_id=cid, label=MSR[cid] if label is None else label, kind=kind, text=text, model="test-model",
        host="127.0.0.1", prompt_sha256="0" * 64, temperature=0.7, seed=1, sample=sample, time="2026-01-01T00:00:00Z",
    )


def _jsonl(path: Path, descriptions) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        write_descriptions(fh, descriptions)
    return path


def _full(tmp_path: Path) -> Path:
    """Two 'action' descriptions for every MSR class, 'motion' for all (a second one only for even classes)."""
    ds = [_desc(c, "action", f"a person performs {n}, variant {s}", s) for c, n in enumerate(MSR) for s in (1, 0)]
    ds += [_desc(c, "motion", f"the arms move during {n}", 0) for c, n in enumerate(MSR)]
    ds += [_desc(c, "motion", f"the legs stay still during {n}", 1) for c, n in enumerate(MSR) if c % 2 == 0]
    return _jsonl(tmp_path / "desc.jsonl", ds)


def test_embed_round_trip(tmp_path, enc):
    src = _full(tmp_path)
    out = embed_labels(EmbedConfig(out=tmp_path / "text.h5", descriptions=(src,), dataset="msr"))
    tc = read_text(out)
    K = len(MSR)
    assert tc.class_names == MSR and list(tc.class_ids) == list(range(K))
    assert tc.kinds == ("label", "action", "motion")
    assert tc.encoder == MINILM_ID and tc.encoder_spec == "minilm" and tc.dim == 384
    assert tc.weights_sha256 == enc.weights_sha256
    assert tc.sources == ({"path": str(src), "sha256": file_sha256(src)},)
    np.testing.assert_allclose(tc.embeddings("label")[:, 0], enc.encode(list(MSR)), atol=1e-5)
    assert tc.texts("label")[3] == (MSR[3],)
    act = tc.embeddings("action")
    assert act.shape == (K, 2, 384) and act.dtype == np.float32
    assert tc.texts("action")[4] == (f"a person performs {MSR[4]}, variant 0", f"a person performs {MSR[4]}, variant 1")
    np.testing.assert_allclose(act[4, 1], enc.encode([tc.texts("action")[4][1]])[0], atol=1e-5)
    np.testing.assert_array_equal(tc.count("motion"), [2 if c % 2 == 0 else 1 for c in range(K)])
    assert tc.texts("motion")[1][1] == "" and not tc.embeddings("motion")[1, 1].any()
    pooled = tc.pooled("motion")
    np.testing.assert_allclose(pooled[1], tc.embeddings("motion")[1, 0], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-5)
    prov = tc.provenance
    assert prov["encoder"]["id"] == MINILM_ID and prov["classes"]["dataset"] == "msr"
    assert prov["descriptions"]["motion"]["count"] == K + K // 2
    assert prov["descriptions"]["action"]["models"] == ["test-model"]


def test_label_template_and_kind_filter(tmp_path, enc):
    out = embed_labels(
        EmbedConfig(out=tmp_path / "t.h5", descriptions=(_full(tmp_path),), kinds=("motion",), dataset="msr",
                    label_template="a person is {}")
    )
    tc = read_text(out)
    assert tc.kinds == ("label", "motion")
    assert tc.texts("label")[0] == (f"a person is {MSR[0]}",)
    np.testing.assert_allclose(tc.embeddings("label")[0, 0], enc.encode([f"a person is {MSR[0]}"])[0], atol=1e-5)
    with pytest.raises(SmieError, match="no kind 'action'"):
        tc.embeddings("action")
    with pytest.raises(SmieError, match="exactly one"):
        embed_labels(EmbedConfig(out=tmp_path / "x.h5", dataset="msr", label_template="a person"))


def test_labels_only_from_a_class_file(tmp_path):
    classes = tmp_path / "classes.txt"
    classes.write_text("wave\nsit down\n")
    tc = read_text(embed_labels(EmbedConfig(out=tmp_path / "t.h5", classes_file=classes)))
    assert tc.class_names == ("wave", "sit down") and tc.kinds == ("label",) and tc.sources == ()


def test_missing_descriptions_are_listed(tmp_path):
    ds = [_desc(c, "action", f"doing {n}") for c, n in enumerate(MSR) if c not in (5, 11)]
    src = _jsonl(tmp_path / "d.jsonl", ds)
    with pytest.raises(SmieError, match=rf"kind 'action': 2 of 20 classes have no description: 5 '{MSR[5]}', 11"):
        embed_labels(EmbedConfig(out=tmp_path / "t.h5", descriptions=(src,), dataset="msr"))
    assert not (tmp_path / "t.h5").exists()
    with pytest.raises(SmieError, match="no descriptions of kind.*parts.*found: action"):
        embed_labels(EmbedConfig(out=tmp_path / "t.h5", descriptions=(src,), kinds=("parts",), dataset="msr"))


def test_descriptions_must_match_the_class_list(tmp_path):
    wrong = _jsonl(tmp_path / "w.jsonl", [_desc(2, "action", "x", label="drink water")])
    with pytest.raises(SmieError, match=rf"w.jsonl: class 2 is labelled 'drink water'.*{MSR[2]!r}"):
        embed_labels(EmbedConfig(out=tmp_path / "t.h5", descriptions=(wrong,), dataset="msr"))
    outside = _jsonl(tmp_path / "o.jsonl", [_desc(0, "action", "x"), _desc(25, "action", "y", label="extra")])
    with pytest.raises(SmieError, match="outside the 20-class list"):
        embed_labels(EmbedConfig(out=tmp_path / "t.h5", descriptions=(outside,), dataset="msr"))
    reserved = _jsonl(tmp_path / "r.jsonl", [_desc(0, "label", "x")])
    with pytest.raises(SmieError, match="reserved"):
        embed_labels(EmbedConfig(out=tmp_path / "t.h5", descriptions=(reserved,), dataset="msr"))
    nested = _jsonl(tmp_path / "n.jsonl", [_desc(0, "body/parts", "x")])
    with pytest.raises(SmieError, match="not a plain name"):
        embed_labels(EmbedConfig(out=tmp_path / "t.h5", descriptions=(nested,), dataset="msr"))


def _tiny_cache(dim: int = 4) -> TextCache:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(3, 2, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=2, keepdims=True)
    emb[2, 1] = 0
    kind = TextKind(emb, (("a", "b"), ("c", "d"), ("e", "")), np.array([2, 2, 1], np.int32))
    return TextCache(("x", "y", "z"), np.arange(3), {"label": kind}, "enc", "enc", "f" * 64, dim)


def test_writer_round_trip_and_tamper_detection(tmp_path):
    path = tmp_path / "t.h5"
    cache = _tiny_cache()
    write_text(path, cache, {"config": {}})
    back = read_text(path)
    np.testing.assert_array_equal(back.embeddings("label"), cache.embeddings("label"))
    assert back.texts("label") == cache.texts("label") and back.class_names == cache.class_names
    with h5py.File(path, "r+") as f:
        f["kinds/label/embeddings"][0, 0] *= 2
    with pytest.raises(CacheError, match="not unit"):
        read_text(path)
    write_text(path, cache, {})
    with h5py.File(path, "r+") as f:
        f["kinds/label/texts"][2, 1] = "stray"
    with pytest.raises(CacheError, match="padding"):
        read_text(path)
    write_text(path, cache, {})
    with h5py.File(path, "r+") as f:
        del f["class_ids"]
        f["class_ids"] = np.arange(2)
    with pytest.raises(CacheError, match="class_ids"):
        read_text(path)
    with pytest.raises(CacheError, match="expected"):
        write_text(path, TextCache(("x",), np.arange(1), cache.groups, "e", "e", "", 4), {})


def test_refuses_other_files(tmp_path):
    sk = tmp_path / "skeletons.h5"
    write_skeletons(
        sk,
        SkeletonSet(np.zeros((1, 3, 4, 20, 1), np.float32), np.zeros(1, np.int64), np.full(1, 4, np.int32),
                    ("s0",), MSR, "kinect-v1-20", "msr"),
        {},
    )
    with pytest.raises(CacheError, match="is a smie.skeletons file, expected smie.text"):
        read_text(sk)
    vis = tmp_path / "visual.h5"
    with h5py.File(vis, "w") as f:
        write_header(f, "smie.visual", 1, {})
    with pytest.raises(CacheError, match="smie.visual"):
        read_text(vis)
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    with pytest.raises(CacheError, match="cannot be read as HDF5"):
        read_text(junk)
    with h5py.File(tmp_path / "v2.h5", "w") as f:
        write_header(f, "smie.text", 2, {})
    with pytest.raises(CacheError, match="schema-version 2"):
        read_text(tmp_path / "v2.h5")
