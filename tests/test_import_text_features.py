"""``smie import-text-features`` on every real text-feature file in ``../shared/refdata`` (skips without it):
MSF-GZSSAR's CLIP ViT-B/16 and ViT-B/32 label/action/motion features and SynSE's Sentence-BERT and word2vec
verb/noun features, for NTU-60 and NTU-120, with dims, class order, values and hashes checked."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from smie.cli import main
from smie.features.store import SmieError, file_sha256
from smie.features.text import read_text
from smie.pipeline.data.classes import class_table
from smie.pipeline.semantic.import_text_features import ImportTextConfig, check_class_order, import_text_features

DATASETS = {"ntu60": 60, "ntu120": 120}


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("arch", ["ViT-B-16", "ViT-B-32"])
def test_msf_clip_features(refdata_dir, tmp_path, dataset, arch):
    K, feats = DATASETS[dataset], refdata_dir / "MSF-GZSSAR" / "text_feats" / arch
    r = CliRunner().invoke(main, ["import-text-features", "--format", "msf", "--input", str(feats), "--dataset",
                                  dataset, "--out", str(tmp_path / "t.h5")])
    assert r.exit_code == 0, r.output
    tc = read_text(tmp_path / "t.h5")
    assert tc.kinds == ("label", "action", "motion") and tc.dim == 512 and not tc.normalised
    assert tc.encoder == f"clip-{arch.lower().replace('-b-', '-b/')}, imported from MSF-GZSSAR text_feats"
    assert tc.class_names == class_table(dataset)
    for kind, short in (("label", "lb"), ("action", "ad"), ("motion", "md")):
        src = feats / f"{short}_{K}.npy"
        np.testing.assert_array_equal(tc.embeddings(kind)[:, 0], np.load(src))  # float32, bit for bit
        assert {"path": str(src), "sha256": file_sha256(src)} in tc.sources
    assert tc.texts("label")[1] == ("eat meal/snack",)
    lb = refdata_dir / "MSF-GZSSAR" / "sem_info" / f"lb_{K}.csv"
    assert {"path": str(lb), "sha256": file_sha256(lb)} in tc.sources
    assert tc.provenance["imported"]["class_order"]["rows_sharing_a_word"] == K  # every MSF name shares a word


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("model,dim", [("bert", 1024), ("w2v", 300)])
def test_synse_verb_noun_features(refdata_dir, tmp_path, dataset, model, dim):
    K, lang = DATASETS[dataset], refdata_dir / "synse-zsl" / "language_data"
    path = import_text_features(ImportTextConfig(format="synse", out=tmp_path / "t.h5", dataset=dataset,
                                                 input=lang, model=model))
    tc = read_text(path)
    assert tc.kinds == ("verb", "noun") and tc.dim == dim
    assert tc.encoder.startswith(("sentence-transformers/stsb-bert-large" if model == "bert" else "word2vec"))
    for kind in ("verb", "noun"):
        src = lang / f"{model}_{kind}.npy"
        raw = np.load(src)
        assert raw.shape == (120, dim)  # NTU-120's order; NTU-60 takes the first 60 rows
        np.testing.assert_array_equal(tc.embeddings(kind)[:, 0], raw[:K].astype(np.float32))
        assert {"path": str(src), "sha256": file_sha256(src)} in tc.sources
    assert tc.texts("verb")[2] == ("brush",) and tc.texts("noun")[2] == ("teeth",)
    agree = tc.provenance["imported"]["class_order"]["rows_sharing_a_word"]
    assert agree >= 0.9 * K and agree <= K  # SynSE rewords a few names ('capitulate' = 'hands up (both hands)')


def test_class_order_check_on_the_published_names(refdata_dir):
    names = [str(n) for n in np.load(refdata_dir / "synse-zsl" / "language_data" / "labels.npy")]
    assert check_class_order(names, class_table("ntu120"), "labels.npy") == 119
    with pytest.raises(SmieError, match="class order does not match"):
        check_class_order(names[1:] + names[:1], class_table("ntu120"), "labels.npy")
