"""The description file format, prompt templates and reply cleaning."""
from __future__ import annotations

import hashlib
import json

import pytest

from smie.features.store import SmieError
from smie.prompts.descriptions import Description, append_description, read_descriptions, scan_descriptions
from smie.prompts.llm_client import clean_reply
from smie.prompts.prompt_template import BUILTIN_DIR, builtin_kinds, load_template_file, resolve_template


def _d(cid=0, kind="action", sample=0, label="wave", text="A person waves a hand."):
    return Description(class_id=cid, label=label, kind=kind, text=text, model="m", host="127.0.0.1:8080",
                       prompt_sha256="ab" * 32, temperature=0.7, seed=3, sample=sample,
                       time="2026-01-01T00:00:00+00:00")


def test_append_read_round_trip(tmp_path):
    path = tmp_path / "d.jsonl"
    ds = [_d(0), _d(1, label="clap", text="Hands meet — “twice”."), _d(0, kind="motion"), _d(0, sample=1)]
    with open(path, "a", encoding="utf-8") as fh:
        for d in ds:
            append_description(fh, d)
    assert read_descriptions(path) == ds
    assert len(path.read_text(encoding="utf-8").splitlines()) == 4
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[1])["text"] == "Hands meet — “twice”."


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    good = _d().to_json()
    path.write_text(good + "\n{broken\n" + _d(1, label="clap").to_json() + "\n", encoding="utf-8")
    with pytest.raises(SmieError, match=r"d.jsonl: line 2: not a JSON object"):
        read_descriptions(path)
    bad = json.loads(good)
    del bad["text"]
    path.write_text(json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(SmieError, match=r"line 1: missing field\(s\) text"):
        read_descriptions(path)
    bad = json.loads(good) | {"class_id": "0"}
    path.write_text(json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(SmieError, match="field 'class_id' has the wrong type"):
        read_descriptions(path)


def test_torn_last_line_is_tolerated_and_reported(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(_d().to_json() + "\n" + _d(1, label="clap").to_json()[:30], encoding="utf-8")
    with pytest.warns(UserWarning, match=r"line 2 is incomplete"):
        assert [d.class_id for d in read_descriptions(path)] == [0]
    scan = scan_descriptions(path)
    assert scan.torn_line == 2 and scan.torn_at == len(_d().to_json()) + 1
    path.write_text(_d().to_json() + "\n" + _d(1, label="clap").to_json()[:30] + "\n", encoding="utf-8")
    with pytest.raises(SmieError, match="line 2"):
        read_descriptions(path)


def test_duplicates_and_label_conflicts_are_errors(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(_d().to_json() + "\n" + _d(text="again").to_json() + "\n", encoding="utf-8")
    with pytest.raises(SmieError, match="line 2: class 0 kind 'action' sample 0 already given on line 1"):
        read_descriptions(path)
    path.write_text(_d().to_json() + "\n" + _d(kind="motion", label="clap").to_json() + "\n", encoding="utf-8")
    with pytest.raises(SmieError, match="line 2: class 0 is 'clap' here but 'wave' on line 1"):
        read_descriptions(path)


def test_builtin_templates_are_versioned_and_hashed():
    assert set(builtin_kinds()) >= {"action", "motion", "parts"}
    for kind in ("action", "motion", "parts"):
        t = resolve_template(kind)
        assert t.version == 1 and t.kind == kind
        assert t.sha256 == hashlib.sha256((BUILTIN_DIR / f"{kind}.txt").read_text("utf-8").encode()).hexdigest()
        prompt = t.render("tennis serve")
        assert '"tennis serve"' in prompt and "#" not in prompt and "{" not in prompt


def test_user_templates(tmp_path):
    tdir = tmp_path / "tpl"
    tdir.mkdir()
    (tdir / "action.txt").write_text("# smie-template: action v7\nDefine {label} ({dataset}); use {{braces}}.\n")
    (tdir / "pose.txt").write_text("Describe the pose of {label}.")
    t = resolve_template("action", tdir)
    assert t.version == 7 and t.render("wave", "msr") == "Define wave (msr); use {braces}."
    assert resolve_template("pose", tdir).version is None
    assert resolve_template("motion", tdir).path.parent == BUILTIN_DIR
    p = resolve_template(str(tdir / "pose.txt"))
    assert p.kind == "pose" and p.render("jump") == "Describe the pose of jump."
    (tdir / "bad.txt").write_text("Describe {label} with {style}.")
    with pytest.raises(SmieError, match=r"bad.txt: unknown placeholder\(s\) \['style'\]"):
        resolve_template("bad", tdir)
    (tdir / "nolabel.txt").write_text("Describe something.")
    with pytest.raises(SmieError, match="never uses {label}"):
        load_template_file(tdir / "nolabel.txt")
    with pytest.raises(SmieError, match="no template for kind 'dance'"):
        resolve_template("dance", tdir)
    assert resolve_template("pose", tdir / "pose.txt").path == tdir / "pose.txt"
    assert resolve_template("action", tdir / "pose.txt").path.parent == BUILTIN_DIR
    (tdir / "label.txt").write_text("Name {label}.")
    for bad in ("label", "a b", str(tdir / "label.txt")):
        with pytest.raises(SmieError, match="reserved for the class names"):
            resolve_template(bad, tdir)


@pytest.mark.parametrize("raw,truncated,expected", [
    ('  "A person raises a hand."  \n', False, "A person raises a hand."),
    ("\u201cWaving is moving a hand.\u201d", False, "Waving is moving a hand."),
    ('"Drink water" refers to drinking.', False, '"Drink water" refers to drinking.'),
    ("Sure, here it is:\n\nThe arm rises.\n\nI hope this helps!", False, "The arm rises."),
    ("Head: tilts\nHand: grips the cup\nArm: lifts.", False, "Head: tilts; Hand: grips the cup; Arm: lifts."),
    ("- **The arm** rises\r\n  and falls.", False, "The arm rises and falls."),
    ("1. Lift the cup\n2. Drink", False, "Lift the cup; Drink"),
    ("The arm rises. Then the hand opens and the fin", True, "The arm rises."),
    ("The arm rises and the fin", True, "The arm rises and the fin"),
    ("   \n\n ", False, ""),
])
def test_clean_reply(raw, truncated, expected):
    assert clean_reply(raw, truncated) == expected
