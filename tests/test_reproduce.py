"""``smie reproduce`` and stage two on imported features: the validation folder's own rows are the validation
view, MSF's gate reads the stored ``*_out.npy`` scores, SMIE without masked views says what to run instead, and a
tiny SynSE-layout folder runs the whole published table end to end, the oracle protocol labelled everywhere."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from smie.cli import main
from smie.features.visual import read_visual
from smie.pipeline import registry
from smie.pipeline.zsl.rundir import load_run
from smie.pipeline.visual.import_features import ImportFeaturesConfig, import_features

SPLIT = "synse:ntu60:55/5"
TABLE = "synse-ntu60-55/5"
KINDS = ("label", "verb", "noun", "action", "motion")
pytestmark = pytest.mark.usefixtures("one_thread")


def text_cache(semantics, out, kinds=KINDS, dataset="ntu60"):
    args = ["import-text-features", "--format", "npy", "--dataset", dataset, "--out", str(out),
            "--encoder", "synthetic class vectors"]
    for kind in kinds:
        args += ["--file", f"{kind}={semantics}"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def inputs(synse_folders, tmp_path_factory):
    d = tmp_path_factory.mktemp("repro")
    visual = d / "visual.h5"
    import_features(ImportFeaturesConfig(folder=synse_folders["main"], split=SPLIT, out=visual, val_fraction=0.0))
    return dict(visual=visual, text=text_cache(synse_folders["semantics"], d / "text.h5"), dir=d)


def fit(name, inputs, out, *extra):
    return CliRunner().invoke(main, ["fit-baseline", name, "--visual", str(inputs["visual"]), "--text",
                                     str(inputs["text"]), "--out", str(out), "--epochs", "2", *extra])


def test_validation_phase_reads_the_validation_folders_own_rows(inputs):
    from smie.pipeline.zsl.protocol import StageData
    from smie.pipeline.zsl.runner import cache_split
    from smie.pipeline.zsl.views import validation_view

    vc = read_visual(inputs["visual"])
    vs = vc.validation_set
    data = StageData(vc.features, None, vc.labels, vc.partition, np.zeros((60, 4), np.float32), vc.class_names,
                     vc.sample_ids)
    view, sel = validation_view(vc, data, cache_split(vc), "auto", "here")
    assert view.features is vs.features and (view.labels == vs.labels).all() and view.masked is None
    assert (view.partition == vs.partition).all() and view.sample_ids == vs.sample_ids
    assert sel == dict(validation_features="validation-set", optimistic=False)
    assert validation_view(vc, data, cache_split(vc), "main", "here")[0] is None


def test_fit_baseline_selects_on_the_validation_set_and_msf_gates_with_stored_scores(inputs, tmp_path):
    r = fit("devise", inputs, tmp_path / "devise")
    assert r.exit_code == 0, r.output
    sel = json.loads((tmp_path / "devise" / "metrics.json").read_text())["selection"]
    assert sel["validation_features"] == "validation-set" and not sel["optimistic"]
    assert sel["test_unit"] == "validation" and "oracle" not in sel
    r = fit("msf", inputs, tmp_path / "msf", "--gzsl", "--option", "gate='msf'")
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "msf" / "metrics.json").read_text())
    assert {"seen", "unseen", "h"} <= set(m["gzsl"]["msf_gate"]) and "msf_gate" in m["selection"]["val_gzsl"]
    r = fit("msf", inputs, tmp_path / "msf-main", "--gzsl", "--option", "gate='msf'", "--val-features", "main")
    assert r.exit_code != 0 and "validation folder" in r.output and str(inputs["visual"]) in r.output, r.output


def test_msf_seen_expert_is_the_softmax_of_the_stored_scores(inputs):
    from smie.pipeline.zsl.baselines.msf import MSFGate
    from smie.pipeline.zsl.evaluate import softmax
    from smie.pipeline.zsl.method import GateRows

    vc = read_visual(inputs["visual"])
    rows = vc.logits.rows[[0, 3, 5]]
    seen = tuple(sorted(set(vc.split["seen"]))[:7])
    gate = MSFGate(2.0, {"main": None}, {"main": vc.logits})
    got = gate.seen_expert(GateRows(np.zeros((3, 5)), vc.features[rows], seen, (), "main", rows=rows))
    col = [list(vc.logits.classes).index(c) for c in seen]
    raw = vc.logits.values[np.searchsorted(vc.logits.rows, rows)][:, col].astype(np.float64) / 2.0
    want = np.exp(raw - raw.max(1, keepdims=True))
    np.testing.assert_allclose(got, want / want.sum(1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(got, softmax(raw * 2.0, 2.0), rtol=1e-6)


def test_smie_on_features_without_masked_views_names_the_alternatives(inputs, tmp_path):
    r = fit("smie", inputs, tmp_path / "smie")
    assert r.exit_code != 0 and str(inputs["visual"]) in r.output, r.output
    assert "smie-notemporal" in r.output and "--no-temporal" in r.output and "import-features" in r.output


def test_reproduce_two_methods_write_the_table_and_a_rerun_reuses_their_runs(synse_folders, inputs, tmp_path):
    """The default suite's short form of the end-to-end test below: two methods, both protocols, then resume."""
    out = tmp_path / "out"
    text = shutil.copy(inputs["text"], tmp_path / "text.h5")
    args = ["reproduce", TABLE, "--features", str(synse_folders["main"]), "--text", str(text),
            "--out", str(out), "--epochs", "2", "--method", "smie", "--method", "revise"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert "published |" in lines[1] and "ours, honest" in lines[1]
    rows = list(csv.DictReader((out / "table.csv").open()))
    assert {row["method"] for row in rows} == {"smie", "revise"}
    smie = next(row for row in rows if row["method"] == "smie")
    assert smie["run_as"] == "smie-notemporal" and float(smie["published"]) == 77.98
    for method in ("smie", "revise"):
        hon = json.loads((out / "runs" / "honest" / method / "metrics.json").read_text())
        assert hon["selection"]["test_unit"] == "validation"
        assert hon["selection"]["validation_features"] == "validation-set"
        zsl = next(row for row in rows if row["method"] == method and row["metric"] == "zsl")
        assert float(zsl["ours_honest"]) == pytest.approx(100 * hon["zsl"]["selected"]["acc"])
        assert float(zsl["ours_published"]) == pytest.approx(100 * hon["zsl"]["oracle"]["acc"])
    stamp = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/metrics.json")}
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert stamp == {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/metrics.json")}
    assert not list(out.rglob(".*tmp*"))
    text_cache(synse_folders["semantics"], text, kinds=("label",))  # other bytes at the same path: runs redone
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert all(p.stat().st_mtime_ns != t for p, t in stamp.items())


@pytest.mark.slow  # every method of the table, both protocols, twice (SynSE and MSF cycles: about a minute)
def test_reproduce_runs_the_published_table_end_to_end_and_resumes(synse_folders, inputs, tmp_path):
    out = tmp_path / "out"
    args = ["reproduce", TABLE, "--features", str(synse_folders["main"]), "--text", str(inputs["text"]),
            "--out", str(out), "--epochs", "2"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    methods = ["revise", "jpose", "cadavae", "synse", "smie", "msf"]
    lines = r.output.splitlines()
    assert "published |" in lines[1] and "ours, published protocol" in lines[1] and "ours, honest" in lines[1]
    for method in methods:
        assert any(line.startswith(method + " ") for line in lines), (method, r.output)
    assert "test-selected (oracle)" in r.output and "77.98" in r.output and "smie-notemporal" not in lines[0]
    assert "SMIE without its temporal constraint" in r.output
    rows = list(csv.DictReader((out / "table.csv").open()))
    assert {row["method"] for row in rows} == set(methods)
    assert all(row["published_selection"] == "test-selected (oracle)" for row in rows)
    smie = next(row for row in rows if row["method"] == "smie")
    assert smie["run_as"] == "smie-notemporal" and float(smie["published"]) == 77.98
    assert abs(float(smie["gap_honest"]) - (float(smie["ours_honest"]) - 77.98)) < 1e-9
    zsl = {row["method"]: row for row in rows if row["metric"] == "zsl"}
    for method in methods:
        hon = json.loads((out / "runs" / "honest" / method / "metrics.json").read_text())
        assert hon["selection"]["test_unit"] == "validation" and "selected_on" not in hon["zsl"]["selected"]
        assert hon["selection"]["validation_features"] == "validation-set"
        assert float(zsl[method]["ours_honest"]) == pytest.approx(100 * hon["zsl"]["selected"]["acc"])
        assert float(zsl[method]["ours_published"]) == pytest.approx(100 * hon["zsl"]["oracle"]["acc"]), method
        assert hon["zsl"]["selected"]["acc"] <= hon["zsl"]["oracle"]["acc"] + 1e-12, method
    # methods with published GZSL numbers get their own test-selected run; its ZSL is the honest run's oracle
    # (same training), which is what the ZSL-only methods' published-protocol figure is read from
    assert sorted(p.name for p in (out / "runs" / "published").iterdir()) == ["msf", "synse"]
    for method in ("msf", "synse"):
        pub = json.loads((out / "runs" / "published" / method / "metrics.json").read_text())
        hon = json.loads((out / "runs" / "honest" / method / "metrics.json").read_text())
        assert pub["selection"]["test_unit"] == "test-oracle" and pub["selection"]["oracle"] is True
        assert "oracle" in pub["selection"]["note"] and pub["zsl"]["selected"]["selected_on"] == "unseen test (oracle)"
        assert pub["zsl"]["selected"]["acc"] == pub["zsl"]["oracle"]["acc"] == hon["zsl"]["oracle"]["acc"]
        assert pub["curves"]["test_acc"] == hon["curves"]["test_acc"], method
        summary_txt = (out / "runs" / "published" / method / "summary.txt").read_text()
        assert "test columns at the test-selected (oracle) epoch" in summary_txt
        _, info = load_run(out / "runs" / "published" / method)
        assert info["selected_epoch"] == pub["zsl"]["selected"]["epoch"]
    msf = json.loads((out / "runs" / "published" / "msf" / "metrics.json").read_text())
    assert "msf_gate" in msf["gzsl"]
    for protocol in ("published", "honest"):  # MSF's own fusion of its kinds in both protocols
        config = json.loads((out / "runs" / protocol / "msf" / "config.json").read_text())
        assert config["combine"] == "concat-raw" and config["options"] == ["gate='msf'"]
    results = json.loads((out / "results.json").read_text())
    assert results["selection"]["published"].startswith("test-oracle") and results["table"] == TABLE
    assert "test-selected (oracle)" in (out / "table.md").read_text()
    assert "(zsl.oracle)" in next(r for r in rows if r["method"] == "revise")["run_published"]
    stamp = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/metrics.json")}
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert stamp == {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/metrics.json")}
    assert not list(out.rglob(".*tmp*"))


def test_reproduce_skips_a_method_whose_text_kinds_are_missing(synse_folders, tmp_path):
    text = text_cache(synse_folders["semantics"], tmp_path / "label.h5", kinds=("label",))
    r = CliRunner().invoke(main, ["reproduce", TABLE, "--features", str(synse_folders["main"]), "--text", str(text),
                                  "--out", str(tmp_path / "out"), "--epochs", "1", "--method", "jpose",
                                  "--method", "revise", "--protocol", "honest"])
    assert r.exit_code == 0, r.output
    assert "skipped: no --text cache holds kinds verb, noun" in r.output and "--format synse" in r.output
    assert not (tmp_path / "out" / "runs" / "published").exists()
    config = tmp_path / "out" / "runs" / "honest" / "revise" / "config.json"
    assert json.loads(config.read_text())["epochs"] == 1
    # a finished run of other settings is not taken for this one: it runs again and is replaced
    r = CliRunner().invoke(main, ["reproduce", TABLE, "--features", str(synse_folders["main"]), "--text", str(text),
                                  "--out", str(tmp_path / "out"), "--epochs", "2", "--method", "revise",
                                  "--protocol", "honest"])
    assert r.exit_code == 0, r.output
    assert json.loads(config.read_text())["epochs"] == 2


def test_reproduce_bad_inputs_give_clear_errors(synse_folders, tmp_path):
    run = CliRunner().invoke
    text = text_cache(synse_folders["semantics"], tmp_path / "text.h5", kinds=("label",))
    base = ["--features", str(synse_folders["main"]), "--text", str(text), "--out", str(tmp_path / "o")]
    r = run(main, ["reproduce", "synse-ntu60-1/59", *base])
    assert r.exit_code != 0 and "synse-ntu60-55/5" in r.output, r.output
    r = run(main, ["reproduce", TABLE, *base, "--method", "devise"])
    assert r.exit_code != 0 and "has no method(s) devise" in r.output, r.output
    r = run(main, ["reproduce", TABLE, "--features", str(tmp_path / "nope"), "--text", str(text)])
    assert r.exit_code != 0 and "nope" in r.output, r.output
    # the 48/12 table on a 55/5 folder: the split check names the folder
    r = run(main, ["reproduce", "synse-ntu60-48/12", *base])
    assert r.exit_code != 0 and "shift_5_r" in r.output, r.output
    # a text cache of another class table names both files
    sem120 = tmp_path / "sem120.npy"
    np.save(sem120, np.random.default_rng(0).standard_normal((120, 16)).astype(np.float32))
    t120 = text_cache(sem120, tmp_path / "t120.h5", kinds=("label",), dataset="ntu120")
    r = run(main, ["reproduce", TABLE, "--features", str(synse_folders["main"]), "--text", str(t120), "--out",
                   str(tmp_path / "o2"), "--epochs", "1", "--method", "revise"])
    assert r.exit_code != 0 and "t120.h5" in r.output and "class table" in r.output, r.output
    assert not list((tmp_path / "o2").glob("runs/*/*/metrics.json"))


def test_every_table_names_a_published_table_and_its_split():
    from smie.pipeline.data.published import tables
    from smie.pipeline.data.splits import registry as split_registry

    for name, t in registry.TABLES.items():
        assert t.split in split_registry()["splits"] and all(p in tables() for p in t.published), name
        assert all(t.split in tables()[p]["splits"] for p in t.published), name
