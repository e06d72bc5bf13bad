"""The published numbers file: every entry checked on load, the headline figures present, MSF's logs read
exactly (against ../shared/refdata when there)."""
from __future__ import annotations

import re

import pytest

from smie.pipeline.data.published import METRICS, published, tables
from smie.pipeline.data.splits import registry

SYNSE_SPLITS = ["synse:ntu60:55/5", "synse:ntu60:48/12", "synse:ntu120:110/10", "synse:ntu120:96/24"]


def test_smie_table2_headline_numbers():
    got = {n.split: n.value for n in published(table="smie-table2", method="smie", metric="zsl")}
    assert got == dict(zip(SYNSE_SPLITS, [77.98, 40.18, 65.74, 45.30]))
    t = tables()["smie-table2"]
    assert t["methods"] == ["revise", "jpose", "cadavae", "synse", "smie"] and t["splits"] == SYNSE_SPLITS
    assert all(n.source and n.checked for n in published())


def test_every_number_names_a_known_table_split_and_metric():
    numbers = published()
    assert len(numbers) > 100
    for n in numbers:
        assert n.table in tables() and n.split in registry()["splits"] and n.metric in METRICS
        assert n.method in tables()[n.table]["methods"]


def test_msf_numbers_are_its_logs(refdata_dir):
    logs = refdata_dir / "MSF-GZSSAR" / "log"
    split = {"60u5": SYNSE_SPLITS[0], "60u12": SYNSE_SPLITS[1], "120u10": SYNSE_SPLITS[2], "120u24": SYNSE_SPLITS[3]}
    seen = 0
    for f in logs.glob("*.txt"):
        enc = "clip-vit-b/16" if "-B16-" in f.name else "clip-vit-b/32"
        for line in f.read_text().splitlines():
            m = re.match(r"zsl_acc: ([\d.]+), seen_acc: ([\d.]+), unseen_acc: ([\d.]+), h_mean: ([\d.]+),\s+in (\S+?)-(\S+)",
                         line)
            if not m:
                continue
            for metric, value in zip(METRICS, m.groups()[:4]):
                rows = [n for n in published(table="msf-logs", split=split[m.group(5)], metric=metric)
                        if n.variant == {"text": m.group(6), "encoder": enc}]
                assert [n.value for n in rows] == [float(value)], (f.name, line, metric)
                seen += 1
    assert seen == len(published(table="msf-logs")) == 160
