"""Prompt templates: one text file per description kind, versioned, hashed into every description they produce.

A template file holds an optional header of ``#`` lines (the first one ``# smie-template: <kind> v<N>`` names
its version) followed by the prompt sent to the model as one user message. ``{label}`` is replaced by the
class name; ``{dataset}`` by the data set name (empty when unknown). Literal braces are written ``{{`` ``}}``.

A kind is looked up as ``<template_dir>/<kind>.txt`` first, then among the built-in templates
(``prompts/templates/``: ``action`` for SMIE, ``motion`` for MSF, ``parts`` for STAR). A kind given as a path
to a ``.txt`` file uses that file, and the kind is its stem.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path

from smie.features.store import SmieError, text_sha256

BUILTIN_DIR = Path(__file__).with_name("templates")
PLACEHOLDERS = ("label", "dataset")
KIND_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_VERSION = re.compile(r"^#\s*smie-template:\s*(\S+)\s+v(\d+)\s*$")


@dataclass(frozen=True)
class Template:
    """A loaded template: its kind, file, version (None for a user file without a header), body and hash."""

    kind: str
    path: Path
    version: int | None
    body: str
    sha256: str

    def render(self, label: str, dataset: str | None = None) -> str:
        return self.body.format(label=label, dataset=dataset or "")


def builtin_kinds() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in BUILTIN_DIR.glob("*.txt")))


def load_template_file(path: str | Path, kind: str | None = None) -> Template:
    """Read and check one template file; the SHA-256 covers the whole file text, header included."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SmieError(f"{p}: template file not found") from None
    except UnicodeDecodeError as exc:
        raise SmieError(f"{p}: template is not UTF-8 text ({exc})") from None
    lines = text.splitlines()
    version = None
    n_header = 0
    while n_header < len(lines) and lines[n_header].lstrip().startswith("#"):
        m = _VERSION.match(lines[n_header].strip())
        if m and version is None:
            version = int(m.group(2))
        n_header += 1
    body = "\n".join(lines[n_header:]).strip()
    if not body:
        raise SmieError(f"{p}: template has no prompt text after its '#' header")
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(body) if name is not None}
    except ValueError as exc:
        raise SmieError(
            f"{p}: template has a malformed placeholder ({exc}); write literal braces as {{{{ }}}}"
        ) from None
    unknown = sorted(n for n in names if n not in PLACEHOLDERS)
    if unknown:
        raise SmieError(f"{p}: unknown placeholder(s) {unknown} in template; known: {list(PLACEHOLDERS)}")
    if "label" not in names:
        raise SmieError(f"{p}: template never uses {{label}}, so every class would get the same prompt")
    return Template(kind or p.stem, p, version, body, text_sha256(text))


def check_kind(kind: str, where: str = "") -> None:
    """Kinds become names in the text cache: plain names only, and not ``label`` (the class names' own kind)."""
    if not KIND_NAME.fullmatch(kind) or kind == "label":
        raise SmieError(f"{where}kind {kind!r}: use letters, digits, '_' and '-' (starting with a letter or digit); "
                        "'label' is reserved for the class names themselves")


def _checked(t: Template) -> Template:
    check_kind(t.kind, f"{t.path}: ")
    return t


def resolve_template(kind: str, template_dir: str | Path | None = None) -> Template:
    """The template for ``kind``: a ``.txt`` path, ``<template_dir>/<kind>.txt``, or a built-in template.

    ``template_dir`` may also be one template file, which then serves the kind named by its stem.
    """
    if kind.endswith(".txt") or "/" in kind or "\\" in kind:
        return _checked(load_template_file(kind))
    check_kind(kind)
    candidates = []
    if template_dir is not None:
        tdir = Path(template_dir)
        if tdir.is_file():
            candidates += [tdir] if tdir.stem == kind else []
        elif tdir.is_dir():
            candidates.append(tdir / f"{kind}.txt")
        else:
            raise SmieError(f"{tdir}: template directory or file not found")
    candidates.append(BUILTIN_DIR / f"{kind}.txt")
    for c in candidates:
        if c.is_file():
            return load_template_file(c, kind)
    where = f"{template_dir} or the built-ins" if template_dir is not None else "the built-in templates"
    raise SmieError(f"no template for kind {kind!r} in {where} (built-in kinds: {', '.join(builtin_kinds())})")
