"""``smie import-descriptions``: turn the description files that papers share into smie's description JSONL.

Formats (``format``):

- ``smie-txt``: SMIE's ``descriptions/<dataset>_des.txt``, one sentence per class in class order (CRLF
  tolerated); kind ``action``. It carries no labels, so a class source (dataset, class file, skeletons) is needed.
- ``msf-csv``: MSF's ``sem_info`` CSVs (``idx,<text>``, idx 1-based): ``ad_*.csv`` kind ``action``,
  ``md_*.csv`` kind ``motion``. A directory imports its ``ad_K``/``md_K`` pair, K being the number of classes;
  ``lb_K.csv`` beside the files names the classes when no class source is given (it can also be the class file).
- ``star-txt``: STAR's part descriptions, ``label; Head: ...; Hand: ...; ...`` per line; kind ``parts``, the text
  being everything after the label.
- ``neuron-json``: Neuron's ``{label: [text, ...]}``; kind = the file name's stem (``spatial_cg``...), the list
  position = the sample. A directory imports every ``*.json`` under it, one kind per file.
- ``purls-csv``: PURLS's description table (header ``Action Labels,Head,Hands,...,Global Desc``); one kind per
  column (``head``, ``hands``, ``torso``, ``legs``, ``start``, ``middle``, ``end``, ``global``).

The number of classes in the file is checked against the class source; without one, the file's own labels are
used. Descriptions of kinds already in ``out`` that are not imported now are kept; the file is rewritten
atomically. Imported descriptions record ``model = "import:<format>"`` and, as ``prompt_sha256``, the SHA-256
of the imported file.
"""
from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from smie.features.store import SmieError, atomic_path, file_sha256
from smie.pipeline.data.classes import DATASETS, class_table, resolve_classes
from smie.prompts.descriptions import Description, scan_descriptions, write_descriptions
from smie.prompts.prompt_template import check_kind

log = logging.getLogger(__name__)
PURLS_KINDS = {"global desc": "global"}
MSF_KINDS = {"ad": "action", "md": "motion"}


@dataclass(frozen=True)
class ImportConfig:
    """``format`` (see the module doc), the ``input`` file or directory, the ``out`` JSONL, an optional ``kind``
    (overrides the format's kind; for ``purls-csv`` selects one column) and an optional class source."""

    format: str
    input: Path
    out: Path
    kind: str | None = None
    dataset: str | None = None
    classes_file: Path | None = None
    skeletons: Path | None = None


@dataclass(frozen=True)
class Table:
    """What one source file holds: per kind, per class (file order), the list of texts; and the file's labels."""

    path: Path
    labels: tuple[str, ...] | None
    texts: dict[str, list[list[str]]]


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SmieError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise SmieError(f"{path}: not UTF-8 text ({exc})") from None


def _lines(path: Path) -> list[tuple[int, str]]:
    return [(i, line.strip()) for i, line in enumerate(_read_text(path).splitlines(), start=1) if line.strip()]


def _read_smie(path: Path, kind: str | None) -> list[Table]:
    rows = _lines(path)
    return [Table(path, None, {kind or "action": [[text] for _, text in rows]})]


def _read_star(path: Path, kind: str | None) -> list[Table]:
    labels, texts = [], []
    for lineno, line in _lines(path):
        label, sep, rest = line.partition(";")
        if not sep or not rest.strip() or ":" not in rest:
            raise SmieError(f"{path}: line {lineno}: expected 'label; Head: ...; Hand: ...', found {line[:60]!r}")
        labels.append(label.strip())
        texts.append([rest.strip().rstrip(";").strip()])
    return [Table(path, tuple(labels), {kind or "parts": texts})]


def _msf_csv(path: Path) -> list[str]:
    rows = list(csv.reader(io.StringIO(_read_text(path))))
    if not rows or len(rows[0]) != 2 or rows[0][0].strip().lower() != "idx":
        found = rows[0] if rows else "nothing"
        raise SmieError(f"{path}: line 1: expected an MSF header 'idx,<column>', found {found}")
    out = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 2 or not row[1].strip():
            raise SmieError(f"{path}: line {lineno}: expected 'idx,text', found {row}")
        if row[0].strip() != str(len(out) + 1):
            raise SmieError(f"{path}: line {lineno}: idx {row[0]!r} out of order (expected {len(out) + 1})")
        out.append(row[1].strip())
    return out


def _read_msf(path: Path, kind: str | None, n_classes: int | None) -> list[Table]:
    if path.is_dir():
        if n_classes is None:
            raise SmieError(f"{path}: importing an MSF directory needs a class source (--dataset ...) "
                            "to pick ad_K/md_K")
        files = [path / f"{p}_{n_classes}.csv" for p in ("ad", "md") if (path / f"{p}_{n_classes}.csv").is_file()]
        if not files:
            raise SmieError(f"{path}: no ad_{n_classes}.csv or md_{n_classes}.csv for {n_classes} classes")
        if kind is not None:
            raise SmieError(f"{path}: --kind applies to one MSF file, not a directory")
    else:
        files = [path]
    tables = []
    for f in files:
        if f.stem.startswith("lb_"):
            raise SmieError(f"{f}: MSF's lb_K.csv holds the class names, not descriptions; give it as --classes-file")
        m = re.match(r"(ad|md)_(\d+)$", f.stem)
        if kind is None and m is None:
            raise SmieError(f"{f}: cannot tell the kind from the name (expected ad_K.csv or md_K.csv); give --kind")
        lb = f.with_name(f"lb_{m.group(2)}.csv") if m else None
        labels = tuple(_msf_csv(lb)) if lb is not None and lb.is_file() else None
        tables.append(Table(f, labels, {kind or MSF_KINDS[m.group(1)]: [[t] for t in _msf_csv(f)]}))
    return tables


def _read_neuron_file(path: Path, kind: str | None) -> Table:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise SmieError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or not data:
        raise SmieError(f"{path}: expected a JSON object mapping each class label to a list of descriptions")
    texts = []
    for label, value in data.items():
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(isinstance(t, str) and t.strip() for t in items):
            raise SmieError(f"{path}: class {label!r}: expected a non-empty list of non-empty strings")
        texts.append([t.strip() for t in items])
    return Table(path, tuple(data), {kind or path.stem: texts})


def _read_neuron(path: Path, kind: str | None) -> list[Table]:
    if not path.is_dir():
        return [_read_neuron_file(path, kind)]
    files = sorted(path.rglob("*.json"))
    if not files:
        raise SmieError(f"{path}: no .json files in this directory")
    stems = [f.stem for f in files]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes or kind is not None:
        raise SmieError(f"{path}: a directory imports one kind per file stem; " +
                        (f"stems {dupes} repeat" if dupes else "--kind applies to one file only"))
    return [_read_neuron_file(f, None) for f in files]


def _read_purls(path: Path, kind: str | None) -> list[Table]:
    rows = list(csv.reader(io.StringIO(_read_text(path))))
    if not rows or rows[0][0].strip().lower() != "action labels":
        raise SmieError(f"{path}: line 1: expected a PURLS header starting with 'Action Labels'")
    header = [h.strip() for h in rows[0]]
    kinds = [PURLS_KINDS.get(h.lower(), re.sub(r"[^a-z0-9]+", "_", h.lower()).strip("_")) for h in header[1:]]
    if kind is not None and kind not in kinds:
        raise SmieError(f"{path}: no column for kind {kind!r}; columns give kinds {kinds}")
    labels, texts = [], {k: [] for k in kinds if kind in (None, k)}
    for lineno, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise SmieError(f"{path}: line {lineno}: {len(row)} columns, the header has {len(header)}")
        labels.append(row[0].strip())
        for k, cell in zip(kinds, row[1:]):
            if k in texts:
                if not cell.strip():
                    raise SmieError(f"{path}: line {lineno}: empty {k!r} description for {row[0]!r}")
                texts[k].append([cell.strip()])
    return [Table(path, tuple(labels), texts)]


READERS: dict[str, Callable[..., list[Table]]] = {
    "smie-txt": _read_smie, "msf-csv": _read_msf, "star-txt": _read_star,
    "neuron-json": _read_neuron, "purls-csv": _read_purls,
}


def _count_mismatch(table: Table, n: int, names: tuple[str, ...], source: str) -> str:
    msg = f"{table.path}: {n} classes in the file, but {source} has {len(names)}"
    same = [d for d in DATASETS if len(class_table(d)) == n]
    if same:
        msg += f" (data sets with {n} classes: {', '.join(same)})"
    if table.labels is not None:
        extra = [lb for lb in table.labels[len(names):]][:3]
        msg += f"; file labels after class {len(names)}: {extra}" if extra else \
            f"; the file ends at {table.labels[-1]!r}, class {n} of the table is {names[n]!r}"
    return msg


def _words(label: str) -> set[str]:
    return {w[:4] for w in re.findall(r"[a-z]+", label.lower()) if len(w) > 2}


def _warn_label_drift(table: Table, names: tuple[str, ...]) -> None:
    """Warn when the file's labels share no word with the class table's names (a different class order?)."""
    if table.labels is None or table.labels == names:
        return
    off = [(i, a, b) for i, (a, b) in enumerate(zip(table.labels, names)) if not _words(a) & _words(b)]
    if len(off) > len(names) // 4:
        shown = "; ".join(f"class {i}: file {a!r} vs table {b!r}" for i, a, b in off[:3])
        log.warning("%s: %d of %d labels share no word with the class table (%s); is the class order the same?",
                    table.path, len(off), len(names), shown)


def import_descriptions(cfg: ImportConfig) -> Path:
    """Read ``cfg.input`` in ``cfg.format`` and write (merge into) the description JSONL ``cfg.out``."""
    if cfg.format not in READERS:
        raise SmieError(f"unknown description format {cfg.format!r}; known: {', '.join(READERS)}")
    path = Path(cfg.input)
    if not path.exists():
        raise SmieError(f"{path}: no such file or directory")
    has_source = any(s is not None for s in (cfg.dataset, cfg.classes_file, cfg.skeletons))
    classes = resolve_classes(cfg.skeletons, cfg.dataset, cfg.classes_file) if has_source else None
    if cfg.format == "msf-csv":
        tables = _read_msf(path, cfg.kind, len(classes.names) if classes else None)
    else:
        tables = READERS[cfg.format](path, cfg.kind)
    names = classes.names if classes else None
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    new: list[Description] = []
    for table in tables:
        for kind, per_class in table.texts.items():
            n = len(per_class)
            if names is None:
                if table.labels is None:
                    raise SmieError(f"{table.path}: {cfg.format} files carry no class names; give --dataset, "
                                    "--classes-file or --skeletons")
                names = table.labels
            if n != len(names):
                raise SmieError(_count_mismatch(table, n, names, classes.source if classes else str(tables[0].path)))
            _warn_label_drift(table, names)
            sha = file_sha256(table.path)
            new += [Description(class_id=cid, label=names[cid], kind=kind, text=text, model=f"import:{cfg.format}",
                                host="", prompt_sha256=sha, temperature=None, seed=None, sample=s, time=now)
                    for cid, texts in enumerate(per_class) for s, text in enumerate(texts)]
    kinds = {d.kind for d in new}
    for kind in sorted(kinds):
        check_kind(kind, f"{path}: ")
    out = Path(cfg.out)
    kept = []
    if out.exists():
        for d in scan_descriptions(out).descriptions:
            if d.kind in kinds:
                continue
            if d.class_id >= len(names) or d.label != names[d.class_id]:
                raise SmieError(f"{out}: holds class {d.class_id} as {d.label!r}, which is not class {d.class_id} "
                                f"of the imported descriptions; import into another --out file")
            kept.append(d)
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        write_descriptions(fh, kept + new)
    return out
