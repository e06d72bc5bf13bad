"""Class labels of inputs whose files carry none (BVH motion capture): a table of file stem -> class name, or a
pattern over the file names.

- ``--labels TABLE``: a text file, one ``stem<TAB>class name`` (or ``stem,class name``) per line; blank lines and
  ``#`` comments are skipped, a first line ``stem<TAB>label`` (or ``file``/``class``) is a header. The stem may
  keep its suffix (``walk_01.bvh``). Classes are numbered in the order they first appear, so the table also fixes
  the class index. Files the table does not list are left out and reported as skipped (a table may select a
  subset); a stem that names no file is an error (a typo would otherwise drop a clip silently).
- ``--label-pattern PATTERN``: the file stem must match ``PATTERN`` in full, e.g.
  ``dataset-1_{label}_{style}_{id}``. ``{label}`` is required; other ``{field}`` s match too, and a field whose
  value is an integer in every file becomes a per-sample metadata column (``{subject}``, ``{id}``). A field
  matches any characters but the one that follows it in the pattern (the rest of the stem at the end), so
  ``walk-back`` fills ``{label}`` in ``dataset-1_walk-back_happy_001``. Classes are sorted by name. A file
  that does not match is left out and reported as skipped.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from smie.features.store import SmieError

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HEADER = ("label", "class", "class_name", "classname", "action")


@dataclass(frozen=True)
class FileLabels:
    """``label`` per labelled file stem (index into ``class_names``), ``meta`` int columns per stem, and the
    ``skipped`` files with the reason."""

    class_names: tuple[str, ...]
    label: dict[str, int]
    meta: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def meta_columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c for cols in self.meta.values() for c in cols))


def read_label_table(path: Path) -> dict[str, str]:
    """``{stem: class name}`` from a label table (see the module docstring); errors name the file and line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SmieError(f"{path}: cannot be read as a label table ({exc})") from None
    table: dict[str, str] = {}
    for lineno, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        sep = "\t" if "\t" in line else ","
        stem, _, name = (p.strip() for p in line.partition(sep))
        if not table and lineno == _first_row(lines) and name.lower() in _HEADER:
            continue
        if not stem or not name:
            raise SmieError(f"{path}: line {lineno}: expected 'file stem<TAB>class name', got {line!r}")
        stem = Path(stem).stem if Path(stem).suffix.lower() == ".bvh" else stem
        if table.get(stem, name) != name:
            raise SmieError(f"{path}: line {lineno}: {stem} is labelled twice ({table[stem]!r} and {name!r})")
        table[stem] = name
    if not table:
        raise SmieError(f"{path}: the label table lists no file")
    return table


def _first_row(lines: list[str]) -> int:
    return next(i for i, ln in enumerate(lines, start=1) if ln.strip() and not ln.lstrip().startswith("#"))


def compile_label_pattern(pattern: str) -> re.Pattern:
    """The regular expression of a file-name pattern; :class:`SmieError` without ``{label}`` or with a field
    named twice."""
    names = _FIELD.findall(pattern)
    if "label" not in names:
        raise SmieError(f"label pattern {pattern!r} has no {{label}} field (e.g. 'dataset-1_{{label}}_{{style}}_{{id}}')")
    if len(set(names)) != len(names):
        raise SmieError(f"label pattern {pattern!r} names a field twice")
    parts, at = [], 0
    for m in _FIELD.finditer(pattern):
        parts.append(re.escape(pattern[at : m.start()]))
        after = pattern[m.end() : m.end() + 1]
        parts.append(f"(?P<{m.group(1)}>" + (f"[^{re.escape(after)}]+)" if after and after != "{" else ".+?)"))
        at = m.end()
    parts.append(re.escape(pattern[at:]))
    return re.compile("".join(parts))


def label_files(stems: list[str], where: Path, labels: Path | None = None,
                pattern: str | None = None) -> FileLabels | None:
    """Labels of the files ``stems`` (of input ``where``) from a table or a pattern; None when neither is given
    (unlabelled input: fine for predict and show)."""
    if labels is not None and pattern is not None:
        raise SmieError("give either --labels (a table) or --label-pattern, not both")
    if labels is not None:
        table = read_label_table(labels)
        unknown = sorted(set(table) - set(stems))
        if unknown:
            raise SmieError(f"{labels}: names {len(unknown)} file(s) not in {where}: {', '.join(unknown[:5])}")
        classes = tuple(dict.fromkeys(table.values()))
        return FileLabels(classes, {s: classes.index(table[s]) for s in stems if s in table},
                          skipped=[(s, f"not in the label table {labels}") for s in stems if s not in table])
    if pattern is None:
        return None
    rx = compile_label_pattern(pattern)
    found = {s: m.groupdict() for s in stems if (m := rx.fullmatch(s))}
    skipped = [(s, f"file name does not match the label pattern {pattern!r}") for s in stems if s not in found]
    if not found:
        raise SmieError(f"{where}: no file name matches the label pattern {pattern!r} (e.g. {stems[0]!r})")
    classes = tuple(sorted({f["label"] for f in found.values()}))
    ints = [k for k in rx.groupindex if k != "label" and all(f[k].isdigit() for f in found.values())]
    meta = {s: {k: int(f[k]) for k in ints} for s, f in found.items()}
    return FileLabels(classes, {s: classes.index(f["label"]) for s, f in found.items()}, meta, skipped)
