"""import-descriptions: tiny synthetic files of every format round-trip into the JSONL; real files when present."""
from __future__ import annotations

import collections
import json
import logging

import pytest

from smie.features.store import SmieError, file_sha256
from smie.pipeline.data.classes import class_table
from smie.prompts.descriptions import read_descriptions
from smie.prompts.importers import ImportConfig, import_descriptions

MSR = class_table("msr")


@pytest.fixture
def three(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("wave\nclap hands\njump up\n", encoding="utf-8")
    return path


def _by_kind(path):
    out = collections.defaultdict(dict)
    for d in read_descriptions(path):
        out[d.kind][(d.class_id, d.sample)] = d
    return out


def test_smie_txt_crlf(tmp_path, three):
    src = tmp_path / "des.txt"
    src.write_bytes(b'"Wave" is moving a hand.\r\n"Clap" is hitting palms.\r\n\r\nJumping up is leaving the ground.')
    out = import_descriptions(ImportConfig("smie-txt", src, tmp_path / "d.jsonl", classes_file=three))
    got = _by_kind(out)["action"]
    assert [got[(i, 0)].text for i in range(3)] == [
        '"Wave" is moving a hand.', '"Clap" is hitting palms.', "Jumping up is leaving the ground."]
    assert [got[(i, 0)].label for i in range(3)] == ["wave", "clap hands", "jump up"]
    d = got[(0, 0)]
    assert d.model == "import:smie-txt" and d.host == "" and d.prompt_sha256 == file_sha256(src)
    assert d.temperature is None and d.seed is None


def test_smie_txt_needs_class_source_and_count(tmp_path, three):
    src = tmp_path / "des.txt"
    src.write_text("one\ntwo\n", encoding="utf-8")
    with pytest.raises(SmieError, match="carry no class names"):
        import_descriptions(ImportConfig("smie-txt", src, tmp_path / "d.jsonl"))
    with pytest.raises(SmieError, match=r"des.txt: 2 classes in the file, but file:.*classes.txt has 3"):
        import_descriptions(ImportConfig("smie-txt", src, tmp_path / "d.jsonl", classes_file=three))
    assert not (tmp_path / "d.jsonl").exists()


def test_msf_csv_file_and_directory(tmp_path, three):
    sem = tmp_path / "sem_info"
    sem.mkdir()
    (sem / "lb_3.csv").write_text("idx,label\n1,wave\n2,clap hands\n3,jump up", encoding="utf-8")
    (sem / "ad_3.csv").write_text("idx,label\n1,to move a hand\n2,to hit palms\n3,to leave the ground\n")
    (sem / "md_3.csv").write_text('idx,dcp\n1,"raise, then swing the arm"\n2,bring palms together\n3,bend knees\n')
    out = import_descriptions(ImportConfig("msf-csv", sem / "md_3.csv", tmp_path / "one.jsonl"))
    one = _by_kind(out)
    assert list(one) == ["motion"] and one["motion"][(0, 0)].text == "raise, then swing the arm"
    assert one["motion"][(2, 0)].label == "jump up"
    out = import_descriptions(ImportConfig("msf-csv", sem, tmp_path / "both.jsonl", classes_file=three))
    both = _by_kind(out)
    assert sorted(both) == ["action", "motion"] and both["action"][(1, 0)].text == "to hit palms"
    with pytest.raises(SmieError, match="lb_3.csv: MSF.s lb_K.csv holds the class names, not descriptions"):
        import_descriptions(ImportConfig("msf-csv", sem / "lb_3.csv", tmp_path / "x.jsonl"))
    out = import_descriptions(ImportConfig("msf-csv", sem, tmp_path / "lb.jsonl", classes_file=sem / "lb_3.csv"))
    assert _by_kind(out)["action"][(2, 0)].label == "jump up"
    (sem / "ad_3.csv").write_text("idx,label\n1,a\n3,b\n")
    with pytest.raises(SmieError, match=r"ad_3.csv: line 3: idx '3' out of order"):
        import_descriptions(ImportConfig("msf-csv", sem / "ad_3.csv", tmp_path / "x.jsonl"))


def test_star_txt(tmp_path):
    src = tmp_path / "parts.txt"
    src.write_text("".join(f"{n}; Head: still; Hand: moves {i}; Arm: up; Hip: still; Leg: still; Foot: flat.\n"
                           for i, n in enumerate(MSR)), encoding="utf-8")
    out = import_descriptions(ImportConfig("star-txt", src, tmp_path / "d.jsonl", dataset="msr"))
    got = _by_kind(out)["parts"]
    assert len(got) == 20
    assert got[(3, 0)].text == "Head: still; Hand: moves 3; Arm: up; Hip: still; Leg: still; Foot: flat."
    assert got[(3, 0)].label == MSR[3]
    src.write_text("wave Head still\n", encoding="utf-8")
    with pytest.raises(SmieError, match=r"parts.txt: line 1: expected 'label; Head"):
        import_descriptions(ImportConfig("star-txt", src, tmp_path / "d.jsonl"))


def test_neuron_json_dir_and_kinds(tmp_path, three):
    root = tmp_path / "neuron"
    (root / "spatial").mkdir(parents=True)
    (root / "temporal").mkdir()
    (root / "spatial" / "spatial_cg.json").write_text(json.dumps(
        {"wave": ["arm up", "hand swings"], "clap": ["palms meet", "hands hit"], "jump": ["legs push", "body up"]}))
    (root / "temporal" / "temporal_fp.json").write_text(json.dumps({"wave": ["a"], "clap": ["b"], "jump": ["c"]}))
    out = import_descriptions(ImportConfig("neuron-json", root, tmp_path / "d.jsonl", classes_file=three))
    got = _by_kind(out)
    assert sorted(got) == ["spatial_cg", "temporal_fp"]
    assert got["spatial_cg"][(1, 1)].text == "hands hit" and got["spatial_cg"][(1, 1)].label == "clap hands"
    assert len(got["spatial_cg"]) == 6 and len(got["temporal_fp"]) == 3
    (root / "bad.json").write_text('{"wave": [')
    with pytest.raises(SmieError, match=r"bad.json: line 1: not valid JSON"):
        import_descriptions(ImportConfig("neuron-json", root / "bad.json", tmp_path / "x.jsonl"))


def test_purls_csv_columns_and_merge(tmp_path, three):
    src = tmp_path / "purls.csv"
    src.write_text("Action Labels,Head,Hands,Torso,Legs,Start,Middle,End,Global Desc\r\n"
                   + "".join(f'{n},h{i},"a, b{i}",t{i},l{i},s{i},m{i},e{i},g{i}\r\n'
                             for i, n in enumerate(["wave", "clap hands", "jump up"])), encoding="utf-8")
    out = tmp_path / "d.jsonl"
    import_descriptions(ImportConfig("purls-csv", src, out))
    got = _by_kind(out)
    assert sorted(got) == sorted(["head", "hands", "torso", "legs", "start", "middle", "end", "global"])
    assert got["hands"][(2, 0)].text == "a, b2" and got["global"][(0, 0)].text == "g0"
    smie = tmp_path / "smie.txt"
    smie.write_text("x\ny\nz\n")
    import_descriptions(ImportConfig("smie-txt", smie, out, classes_file=three))
    merged = _by_kind(out)
    assert len(merged) == 9 and merged["action"][(2, 0)].text == "z" and merged["head"][(1, 0)].text == "h1"
    import_descriptions(ImportConfig("purls-csv", src, out, kind="head"))
    assert len(_by_kind(out)) == 9
    with pytest.raises(SmieError, match="no column for kind 'face'"):
        import_descriptions(ImportConfig("purls-csv", src, out, kind="face"))
    other = tmp_path / "other.txt"
    other.write_text("sit\nstand\nrun\n")
    with pytest.raises(SmieError, match="holds class 0 as 'wave'"):
        import_descriptions(ImportConfig("smie-txt", smie, out, classes_file=other))


def test_label_order_drift_is_reported(tmp_path, caplog):
    src = tmp_path / "parts.txt"
    src.write_text("".join(f"{n}; Head: x; Hand: y.\n" for n in reversed(MSR)), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        import_descriptions(ImportConfig("star-txt", src, tmp_path / "d.jsonl", dataset="msr"))
    assert "share no word with the class table" in caplog.text and "class 0: file 'pickup and throw'" in caplog.text


def test_unknown_format(tmp_path):
    with pytest.raises(SmieError, match="unknown description format 'xml'"):
        import_descriptions(ImportConfig("xml", tmp_path, tmp_path / "d.jsonl"))


REAL = [
    ("smie-txt", "SMIE/ntu60_des.txt", "ntu60", {"action": 60}),
    ("smie-txt", "SMIE/ntu120_des.txt", "ntu120", {"action": 120}),
    ("smie-txt", "SMIE/pku_des.txt", "pku51", {"action": 51}),
    ("msf-csv", "MSF-GZSSAR/sem_info", "ntu60", {"action": 60, "motion": 60}),
    ("msf-csv", "MSF-GZSSAR/sem_info", "ntu120", {"action": 120, "motion": 120}),
    ("star-txt", "STAR/text/ntu120_part_descriptions.txt", "ntu120", {"parts": 120}),
    ("star-txt", "STAR/text/pkuv1_part_descriptions.txt", "pku51", {"parts": 51}),
    ("star-txt", "STAR_pp/semantics/Gemini-ntu120.txt", "ntu60", {"parts": 60}),
    ("neuron-json", "Neuron/semantics/ntu", "ntu120", {k: 1200 for k in (
        "spatial_cg", "spatial_fg", "spatial_mg", "temporal_fp", "temporal_sp", "temporal_tp")}),
    ("neuron-json", "Neuron/semantics/pku/spatial/spatial_cg.json", "pku51", {"spatial_cg": 510}),
    ("purls-csv", "derived/purls_gpt3_desc_NTU_RGB_D.csv", "ntu120", {k: 120 for k in (
        "head", "hands", "torso", "legs", "start", "middle", "end", "global")}),
]


@pytest.mark.realdata
@pytest.mark.parametrize("fmt,rel,dataset,counts", REAL, ids=[f"{r[0]}:{r[1]}:{r[2]}" for r in REAL])
def test_real_files(refdata_dir, tmp_path, caplog, fmt, rel, dataset, counts):
    src = refdata_dir / rel
    if not src.exists():
        pytest.skip(f"{src} not available")
    with caplog.at_level(logging.WARNING):
        out = import_descriptions(ImportConfig(fmt, src, tmp_path / "d.jsonl", dataset=dataset))
    descs = read_descriptions(out)
    assert dict(collections.Counter(d.kind for d in descs)) == counts
    names = class_table(dataset)
    assert all(d.label == names[d.class_id] and d.text.strip() for d in descs)
    assert "share no word" not in caplog.text


@pytest.mark.realdata
def test_real_count_mismatch_is_explained(refdata_dir, tmp_path):
    src = refdata_dir / "STAR_pp/semantics/Gemini-ntu120.txt"
    if not src.exists():
        pytest.skip(f"{src} not available")
    with pytest.raises(SmieError, match=r"60 classes in the file, but dataset:ntu120 has 120 \(data sets with 60 "
                                        r"classes: ntu60\); the file ends at 'walking apart'"):
        import_descriptions(ImportConfig("star-txt", src, tmp_path / "d.jsonl", dataset="ntu120"))
