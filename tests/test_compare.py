"""``smie compare`` on tiny real HDF5 caches: the grid, the markdown/CSV table and the bar chart."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from smie.features.store import SmieError
from smie.pipeline.zsl.compare import CompareConfig, compare, pair_caches


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.slow  # every method over folds and seeds (~25 s); test_cli's chain runs compare too
def test_compare_writes_table_csv_and_chart_over_folds_and_seeds(tmp_path, capsys, stage_caches):
    folds = []
    for i, unseen in enumerate(((0, 1, 2, 3), (4, 5, 6, 7))):
        d = tmp_path / f"fold{i}"
        d.mkdir()
        folds.append(stage_caches(d, seed=i, split_unseen=unseen))
    cfg = CompareConfig(tuple(v for v, _ in folds), folds[0][1], tmp_path / "cmp",
                        methods=("devise", "smie-notemporal", "jpose"), seeds=2, device="cpu", epochs_scale=0.03,
                        batch_size=64)
    md = compare(cfg)
    text = md.read_text()
    assert "| method | file:test0 ZSL | file:test0 H | file:test1 ZSL | file:test1 H | mean ZSL | mean H |" in text
    assert "jpose: n/a" in text and "no kind 'verb'" in text
    table = pd.read_csv(tmp_path / "cmp" / "table.csv", keep_default_na=False)
    assert list(table.method) == ["devise", "smie-notemporal", "jpose"]
    assert "±" in table.loc[0, "file:test0 ZSL"] and table.loc[2, "mean ZSL"] == "n/a"
    runs = pd.read_csv(tmp_path / "cmp" / "runs.csv")
    assert len(runs) == 2 * 2 * 2 and runs.zsl.between(0, 1).all() and runs.h.notna().all()
    assert (tmp_path / "cmp" / "table.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((tmp_path / "cmp" / "runs" / "devise" / "file_test1" / "seed1" / "metrics.json").read_text())
    assert metrics["split"] == "file:test1" and metrics["method"] == "devise"
    assert set(runs.epochs) == {3} and set(runs[runs.method == "devise"].kinds) == {"label"}
    assert "mean ZSL" in capsys.readouterr().out


def test_caches_are_matched_to_splits(tmp_path, stage_caches):
    paths = []
    for i, unseen in enumerate(((0, 1, 2, 3), (4, 5, 6, 7))):
        d = tmp_path / f"f{i}"
        d.mkdir()
        paths.append(stage_caches(d, seed=i, split_unseen=unseen)[0])
    own = pair_caches(paths, ())
    assert [(v, spec, s.id) for v, spec, s in own] == [(paths[0], None, "file:test0"), (paths[1], None, "file:test1")]
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"unseen": [8, 9], "val_unseen": [10]}))
    with pytest.raises(SmieError, match="2 visual caches for 1 splits"):
        pair_caches(paths, (f"file:{spec}",))
    assert [(v, sp) for v, sp, _ in pair_caches(paths[:1], (f"file:{spec}",))] == [(paths[0], f"file:{spec}")]
