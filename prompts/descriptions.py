"""The description file: JSON Lines, one class description per line, appended as each one is finished.

Every line is one JSON object with the fields of :class:`Description`; ``(class_id, kind, sample)`` is its key
and occurs at most once. The file is written by ``smie expand-labels`` (one line appended, flushed and fsynced
per finished description, so a crash loses nothing finished) and by ``smie import-descriptions`` (written whole,
atomically), and read by ``smie embed-labels``.

A process killed in the middle of a write can leave a last line without its newline; readers tolerate that
one line (it is reported and ignored) and ``expand-labels`` cuts it off before appending. Any other malformed
line is an error that names the file and the line.
"""
from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import IO, Iterable

from smie.features.store import SmieError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Description:
    """One description of one class.

    ``kind`` names what the text describes (``action``, ``motion``, ``parts`` or an imported kind); ``sample``
    numbers several descriptions of the same class and kind (0-based). ``model`` is the LLM name (or
    ``import:<format>`` for imported text), ``host`` the LLM server's host (never a URL with credentials),
    ``prompt_sha256`` the SHA-256 of the prompt template file (of the imported file for imports),
    ``temperature``/``seed`` the sampling settings (None when unknown) and ``time`` an ISO-8601 UTC time.
    """

    class_id: int
    label: str
    kind: str
    text: str
    model: str
    host: str
    prompt_sha256: str
    temperature: float | None
    seed: int | None
    sample: int
    time: str

    @property
    def key(self) -> tuple[int, str, int]:
        return (self.class_id, self.kind, self.sample)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)


_FIELDS = {f.name: f for f in fields(Description)}
_TYPES: dict[str, tuple[type, ...]] = {
    "class_id": (int,), "label": (str,), "kind": (str,), "text": (str,), "model": (str,), "host": (str,),
    "prompt_sha256": (str,), "temperature": (int, float, type(None)), "seed": (int, type(None)),
    "sample": (int,), "time": (str,),
}


def _parse(obj: object, where: str) -> Description:
    if not isinstance(obj, dict):
        raise SmieError(f"{where}: expected a JSON object, found {type(obj).__name__}")
    missing = [k for k in _FIELDS if k not in obj]
    if missing:
        raise SmieError(f"{where}: missing field(s) {', '.join(missing)}")
    for name, types in _TYPES.items():
        value = obj[name]
        if isinstance(value, bool) or not isinstance(value, types):
            raise SmieError(f"{where}: field {name!r} has the wrong type ({type(value).__name__})")
    if obj["class_id"] < 0 or obj["sample"] < 0:
        raise SmieError(f"{where}: class_id and sample must be >= 0")
    if not obj["text"].strip():
        raise SmieError(f"{where}: empty text for class {obj['class_id']} kind {obj['kind']!r}")
    if not obj["kind"]:
        raise SmieError(f"{where}: empty kind")
    return Description(**{k: obj[k] for k in _FIELDS})


@dataclass(frozen=True)
class Scan:
    """What :func:`scan_descriptions` found: the descriptions, and where a torn last line starts (or None)."""

    descriptions: list[Description]
    torn_at: int | None
    torn_line: int | None


def scan_descriptions(path: str | os.PathLike) -> Scan:
    """Read a description file, tolerating a torn last line (no newline, not valid JSON) from a crash.

    Raises :class:`SmieError` naming the file and line for any other malformed line, and for a key
    ``(class_id, kind, sample)`` that appears twice or a class whose label differs between lines.
    """
    p = Path(path)
    if not p.is_file():
        raise SmieError(f"{p}: description file not found")
    data = p.read_bytes()
    out: list[Description] = []
    seen: dict[tuple[int, str, int], int] = {}
    labels: dict[int, tuple[str, int]] = {}
    offset, lineno, torn_at, torn_line = 0, 0, None, None
    for raw in data.splitlines(keepends=True):
        lineno += 1
        start, offset = offset, offset + len(raw)
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        where = f"{p}: line {lineno}"
        try:
            obj = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            if offset == len(data) and not raw.endswith(b"\n"):
                torn_at, torn_line = start, lineno
                break
            raise SmieError(f"{where}: not a JSON object ({exc})") from None
        d = _parse(obj, where)
        if d.key in seen:
            raise SmieError(
                f"{where}: class {d.class_id} kind {d.kind!r} sample {d.sample} already given on line {seen[d.key]}"
            )
        seen[d.key] = lineno
        if d.class_id in labels and labels[d.class_id][0] != d.label:
            first, at = labels[d.class_id]
            raise SmieError(f"{where}: class {d.class_id} is {d.label!r} here but {first!r} on line {at}")
        labels.setdefault(d.class_id, (d.label, lineno))
        out.append(d)
    return Scan(out, torn_at, torn_line)


def read_descriptions(path: str | os.PathLike) -> list[Description]:
    """All descriptions in a file, in file order; a torn last line is reported with a warning and skipped."""
    scan = scan_descriptions(path)
    if scan.torn_line is not None:
        msg = (f"{path}: line {scan.torn_line} is incomplete (an interrupted write); it was ignored — rerun "
               "expand-labels to redo it")
        warnings.warn(msg, stacklevel=2)
        log.warning(msg)
    return scan.descriptions


def append_description(fh: IO[str], d: Description) -> None:
    """Append one description as one line and push it to disk before returning (a crash loses nothing finished)."""
    fh.write(d.to_json() + "\n")
    fh.flush()
    os.fsync(fh.fileno())


def write_descriptions(fh: IO[str], descriptions: Iterable[Description]) -> int:
    """Write many descriptions (for whole-file writers that rename atomically afterwards); returns the count."""
    n = 0
    for d in descriptions:
        fh.write(d.to_json() + "\n")
        n += 1
    fh.flush()
    os.fsync(fh.fileno())
    return n
