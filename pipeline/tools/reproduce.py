"""``smie reproduce TABLE``: every method of a published table on the paper's own inputs, beside its number.

The inputs are the files the field shares: a SynSE-layout feature folder (``shift_5_r`` and its validation
folder ``shift_val_5_r``; ``smie import-features`` reads them into ``OUT/visual.h5``) and text caches
(``smie import-text-features``). Each method of the table (:data:`smie.pipeline.registry.TABLES`, the published
tables of ``pipeline/data/published.json`` on that split) runs under two protocols (:data:`PROTOCOLS`):

- ``published``: the official code's recipe (the method spec's epochs, learning rate, batch size and schedule,
  which are the codes'; MSF with its own gate) and its selection rule, the best unseen-*test* evaluation point
  (``selection="test-oracle"``). This is how the published numbers were obtained; it is *not* an estimate of
  accuracy on new data, and every output labels it "test-selected (oracle)".
- ``honest``: smie's protocol, the same recipe with the unit selected on the validation folder's features
  (the backbone trained without the ``val_unseen`` classes), never on the test set.

Both protocols train the same way (same seed); they differ in the unit reported. A method whose published
numbers are ZSL only therefore trains once: its published-protocol figure is the honest run's ``zsl.oracle``
(:func:`from_oracle`). A method with published GZSL numbers (SynSE, MSF) gets its own ``test-oracle`` run, so
that its GZSL numbers are read at the oracle unit.

SMIE's temporal constraint needs keyframe-masked views, which shared features do not have: the ``smie`` row
runs ``smie-notemporal`` (the paper's global-MI ablation) and says so. A method whose text kinds no given text
cache holds (JPoSE and SynSE read ``verb``/``noun``; MSF ``label``/``action``/``motion``) is listed as skipped,
with the import that would add them.

Resumable: every run directory is installed atomically when finished and reused on the next call; the table
files (``table.md``, ``table.csv``, ``results.json``) are written atomically after every run.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

from smie.features.store import SmieError, atomic_path, provenance, to_json
from smie.pipeline import registry

PROTOCOLS = tuple(registry.REPRO_PROTOCOLS)
ORACLE_LABEL = "test-selected (oracle)"
KIND_CODES = {"label": "lb", "action": "ad", "motion": "md"}
GZSL_METRICS = {"gzsl_seen": "seen", "gzsl_unseen": "unseen", "gzsl_h": "h"}


@dataclass(frozen=True)
class ReproduceConfig:
    """``table``: a name of :data:`~smie.pipeline.registry.TABLES`; ``features``: its SynSE-layout main folder;
    ``validation_folder``: its validation folder (None: the sibling ``shift_val_*``); ``text``: text caches, each
    method reading the first that holds its kinds; ``methods``: a subset (default: every method of the table);
    ``protocols``: of :data:`PROTOCOLS`; ``epochs``: every method's budget (None: each method's own)."""

    table: str
    features: Path
    text: tuple[Path, ...]
    out: Path
    validation_folder: Path | None = None
    methods: tuple[str, ...] = ()
    protocols: tuple[str, ...] = PROTOCOLS
    epochs: int | None = None
    device: str = "auto"
    seed: int = 0


@dataclass(frozen=True)
class Result:
    """``out`` the directory; ``table`` the printable comparison; ``rows`` one dict per method and metric."""

    out: Path
    table: str
    rows: tuple[dict, ...]


def table_methods(table: registry.ReproTable) -> list[str]:
    """The methods of the table's published tables, in their order, once each."""
    from smie.pipeline.data.published import tables

    known = tables()
    out: list[str] = []
    for name in table.published:
        out += [m for m in known[name]["methods"] if m not in out]
    return out


def published_numbers(table: registry.ReproTable, method: str, kinds: tuple[str, ...], encoder: str) -> dict:
    """metric -> the published number of ``method`` on the table's split (MSF: the text mode of ``kinds``, the
    encoder named in ``encoder`` when one matches)."""
    from smie.pipeline.data.published import published

    numbers = [n for t in table.published for n in published(table=t, method=method, split=table.split)]
    mode = "_".join(KIND_CODES.get(k, k) for k in kinds)
    plain = [n for n in numbers if not n.variant]
    moded = [n for n in numbers if n.variant.get("text") == mode]
    matched = [n for n in moded if n.variant.get("encoder", "").lower() in encoder.lower()] or moded
    out: dict = {}
    for n in plain + matched:
        out.setdefault(n.metric, n)
    return out


def _text_for(spec, texts: dict[Path, tuple[str, ...]]) -> tuple[Path | None, tuple[str, ...]]:
    need = (spec.kinds[0],) if spec.kinds_if_available else tuple(spec.kinds)
    for path, have in texts.items():
        if all(k in have for k in need):
            return path, tuple(k for k in spec.kinds if k in have)
    return None, tuple(spec.kinds)


def _visual(cfg: ReproduceConfig, table: registry.ReproTable) -> Path:
    """``OUT/visual.h5``, imported once (reused when it was imported from the same folders)."""
    from smie.features.visual import read_visual_header
    from smie.pipeline.visual.import_features import ImportFeaturesConfig, import_features, sibling_validation_folder

    folder = Path(cfg.features)
    sibling = sibling_validation_folder(folder)
    val = cfg.validation_folder or (sibling if sibling.is_dir() else None)
    path = Path(cfg.out) / "visual.h5"
    if path.exists():
        head = read_visual_header(path)
        same = (head.imported or {}).get("folder") == str(folder) and \
            (head.imported or {}).get("validation_folder") == (None if val is None else str(val))
        if same and head.split["id"] == table.split:
            return path
    # with the validation folder, its rows select and calibrate, so every training row trains (as the codes do)
    import_features(ImportFeaturesConfig(folder=folder, split=table.split, out=path, validation_folder=val,
                                         find_validation=False, val_fraction=0.0 if val is not None else 0.1,
                                         seed=cfg.seed))
    return path


def _run(cfg: ReproduceConfig, visual: Path, method: str, run_as: str, protocol: str, text: Path,
         kinds: tuple[str, ...], gzsl: bool) -> dict:
    """One method under one protocol; its metrics (the run directory reused when finished)."""
    from smie.pipeline.zsl.baselines.run import BaselineConfig, fit_baseline

    out = Path(cfg.out) / "runs" / protocol / method
    options = ("gate='msf'",) if run_as == "msf" and gzsl else ()
    run = BaselineConfig(name=run_as, visual=visual, text=text, out=out, kinds=kinds, gzsl=gzsl, epochs=cfg.epochs,
                         device=cfg.device, seed=cfg.seed, options=options, combine=COMBINE.get(run_as, "concat"),
                         selection="test-oracle" if protocol == "published" else "validation",
                         budget="code-epochs")  # the codes' recipes as they count them: the tables' own inputs
    if not finished(out, run):
        fit_baseline(run)
    metrics = json.loads((out / "metrics.json").read_text())
    metrics["_dir"] = str(out)
    return metrics


REUSE_KEYS = ("name", "visual", "text", "kinds", "options", "epochs", "gzsl", "seed", "selection", "combine",
              "budget")
COMBINE = {"msf": "concat-raw"}
"""A method's kind fusion where its code's differs from smie's default (MSF: the raw kinds concatenated, one L2
norm; ``--combine concat-raw``), in both protocols."""


def finished(out: Path, run) -> bool:
    """Whether ``out`` is a finished run of ``run``'s settings (:data:`REUSE_KEYS`) on the same input bytes (the
    sha256 its provenance recorded), so that a resumed command reuses it; a run of other settings or of other
    inputs (an older command's, or caches re-imported at the same path) is run again and replaced atomically."""
    from smie.features.store import file_sha256

    if not (out / "metrics.json").is_file() or not (out / "config.json").is_file():
        return False
    done = json.loads((out / "config.json").read_text())
    want = json.loads(to_json({k: getattr(run, k) for k in REUSE_KEYS}))
    if not all(done.get(k) == v for k, v in want.items()):
        return False
    inputs = (done.get("provenance") or {}).get("inputs") or {}
    return all((inputs.get(role) or {}).get("sha256") == file_sha256(getattr(run, role))
               for role in ("visual", "text"))


def from_oracle(honest: dict) -> dict:
    """The published protocol's ZSL figure from the honest run of the same training: its ``zsl.oracle`` (the best
    unseen-test unit of the same final-phase training, same seed) is exactly what a ``test-oracle`` run reports
    (``tests/test_reproduce.py`` checks it), so a method with only ZSL numbers published trains once."""
    return dict(zsl=dict(selected=dict(honest["zsl"]["oracle"], selected_on="unseen test (oracle)")),
                _dir=honest["_dir"] + " (zsl.oracle)")


def _ours(metrics: dict | None, metric: str, run_as: str) -> float:
    """Percent: ZSL at the protocol's unit; GZSL from MSF's gate (published MSF) or calibrated stacking."""
    if metrics is None:
        return math.nan
    if metric == "zsl":
        return 100.0 * metrics["zsl"]["selected"]["acc"]
    gz = metrics.get("gzsl") or {}
    rule = "msf_gate" if run_as == "msf" and "msf_gate" in gz else "stacking"
    return 100.0 * gz.get(rule, {}).get(GZSL_METRICS[metric], math.nan)


def reproduce(cfg: ReproduceConfig) -> Result:
    """Import the features, run every method of ``cfg.table`` under each protocol, write and return the table."""
    from smie.features.text import read_text
    from smie.features.visual import read_visual_header
    from smie.pipeline.zsl.spec import method_spec

    if cfg.table not in registry.TABLES:
        raise SmieError(f"unknown table {cfg.table!r}; known: {', '.join(registry.TABLES)}")
    bad = sorted(set(cfg.protocols) - set(PROTOCOLS))
    if bad or not cfg.protocols:
        raise SmieError(f"protocols must be among {', '.join(PROTOCOLS)}, got {', '.join(cfg.protocols) or 'none'}")
    table = registry.TABLES[cfg.table]
    methods = table_methods(table)
    unknown = sorted(set(cfg.methods) - set(methods))
    if unknown:
        raise SmieError(f"table {cfg.table} has no method(s) {', '.join(unknown)} (it has {', '.join(methods)})")
    methods = [m for m in methods if not cfg.methods or m in cfg.methods]
    if not cfg.text:
        raise SmieError("give at least one text cache (--text), e.g. from smie import-text-features")
    texts = {Path(p): read_text(p) for p in cfg.text}
    kinds_of = {p: tuple(tc.kinds) for p, tc in texts.items()}
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    visual = _visual(cfg, table)
    head = read_visual_header(visual)
    has_views = head.masked.ndim == 3 and head.masked.shape[1] > 0
    rows: list[dict] = []
    for method in methods:
        run_as = "smie-notemporal" if method == "smie" and not has_views else method
        spec = method_spec(run_as)
        text, kinds = _text_for(replace(spec, kinds=method_spec(method).kinds), kinds_of)
        note = ("SMIE without its temporal constraint (shared features have no masked views)"
                if run_as != method else "")
        encoder = texts[text].encoder if text is not None else ""
        numbers = published_numbers(table, method, kinds, encoder)
        metrics_wanted = list(numbers) or ["zsl"]
        gzsl = any(m != "zsl" for m in metrics_wanted)
        runs: dict[str, dict | None] = {}
        if text is None:
            note = (f"skipped: no --text cache holds kinds {', '.join(kinds)} "
                    "(smie import-text-features --format synse for verb/noun, --format msf for label/action/motion)")
        for protocol in sorted(cfg.protocols, key=lambda p: p != "honest"):  # honest first: published may reuse it
            if text is None:
                runs[protocol] = None
            elif protocol == "published" and not gzsl and runs.get("honest") is not None:
                runs[protocol] = from_oracle(runs["honest"])
            else:
                runs[protocol] = _run(cfg, visual, method, run_as, protocol, text, kinds, gzsl)
        for metric in metrics_wanted:
            pub = numbers.get(metric)
            row = dict(method=method, run_as=run_as, metric=metric,
                       published=math.nan if pub is None else pub.value,
                       source="" if pub is None else pub.source,
                       variant="" if pub is None or not pub.variant else to_json(pub.variant),
                       kinds=",".join(kinds), text=str(text or ""), note=note)
            for protocol in PROTOCOLS:
                value = _ours(runs.get(protocol), metric, run_as)
                row[f"ours_{protocol}"] = value
                row[f"gap_{protocol}"] = value - row["published"]
                row[f"run_{protocol}"] = (runs.get(protocol) or {}).get("_dir", "")
            row["published_selection"] = ORACLE_LABEL
            rows.append(row)
        _write(out, cfg, rows)
    return Result(out, format_table(cfg.table, rows), tuple(rows))


def _f(v: float, sign: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:+.2f}" if sign else f"{v:.2f}"


def format_table(name: str, rows: list[dict]) -> str:
    """``published | ours, published protocol | ours, honest`` per method and metric, with the gaps."""
    lines = [f"{name}: top-1 accuracy (%); gaps are ours minus published",
             f"{'method':8s} {'metric':11s} {'published':>9s} | {'ours, published protocol':>24s} {'gap':>7s} | "
             f"{'ours, honest':>12s} {'gap':>7s}",
             f"{'':8s} {'':11s} {'':>9s} | {ORACLE_LABEL:>24s} {'':>7s} | {'val-selected':>12s} {'':>7s}"]
    for r in rows:
        lines.append(f"{r['method']:8s} {r['metric']:11s} {_f(r['published']):>9s} | "
                     f"{_f(r['ours_published']):>24s} {_f(r['gap_published'], True):>7s} | "
                     f"{_f(r['ours_honest']):>12s} {_f(r['gap_honest'], True):>7s}")
    notes = sorted({f"{r['method']}: {r['note']}" for r in rows if r["note"]})
    lines += [f"note: {n}" for n in notes]
    lines.append(f"'{ORACLE_LABEL}': the official code's recipe and selection rule, the evaluation point with the "
                 "best unseen-test accuracy; not an estimate of accuracy on new data. 'honest': the same recipe, "
                 "the point selected on the validation folder (a backbone trained without the validation classes).")
    return "\n".join(lines)


COLUMNS = ("method", "run_as", "metric", "published", "ours_published", "gap_published", "ours_honest",
           "gap_honest", "published_selection", "kinds", "text", "variant", "source", "note", "run_published",
           "run_honest")


def _write(out: Path, cfg: ReproduceConfig, rows: list[dict]) -> None:
    """``table.md`` (the printed table), ``table.csv`` (:data:`COLUMNS`) and ``results.json`` (rows, config,
    provenance), each written atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    docs = {"table.md": "```\n" + format_table(cfg.table, rows) + "\n```\n", "table.csv": buf.getvalue(),
            "results.json": to_json(dict(table=cfg.table, rows=rows, selection=dict(
                published="test-oracle: " + ORACLE_LABEL, honest="validation"), provenance=provenance(cfg))) + "\n"}
    for name, text in docs.items():
        with atomic_path(out / name) as tmp:
            tmp.write_text(text, encoding="utf-8")
