"""``smie expand-labels``: ask an LLM for descriptions of every class, resumably, into a description file.

SMIE (Zhou et al. 2023) expands each label into one sentence with ChatGPT (kind ``action``); MSF (Li et al. 2023)
adds motion descriptions (kind ``motion``); STAR (Chen et al. 2024) describes each body part (kind ``parts``).
The papers' exact prompts are not published with their code, so the built-in templates are our wording of the
same request; the papers' own texts can be brought in with ``smie import-descriptions`` instead.

Loss-free and resumable: each finished description is appended to the JSONL file and fsynced at once; a rerun
skips every ``(class_id, kind, sample)`` already there; Ctrl-C or a crash loses only the request in flight.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

from tqdm import tqdm

from smie.features.store import SmieError
from smie.pipeline.data.classes import ClassList, resolve_classes
from smie.prompts.descriptions import Description, append_description, scan_descriptions
from smie.prompts.llm_client import ChatClient
from smie.prompts.prompt_template import Template, resolve_template

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExpandConfig:
    """What to ask, of which model, for which classes, and where to write.

    ``kinds``: template names (``action``, ``motion``, ``parts``, or ``<template_dir>/<kind>.txt``) or paths to
    template files. Classes come from exactly one of ``skeletons`` / ``dataset`` / ``classes_file``.
    ``base_url``: an OpenAI-compatible server (e.g. ``http://127.0.0.1:8080/v1``); None means OpenAI itself.
    ``samples`` descriptions per class and kind; sample ``s`` is requested with seed ``seed + s``.
    ``max_retries`` per request; ``backoff`` the first wait in seconds (doubling); ``max_wait`` caps the total
    seconds waited for one request. The API key is read from ``OPENAI_API_KEY`` and never stored.
    """

    model: str
    out: Path
    kinds: tuple[str, ...] = ("action",)
    skeletons: Path | None = None
    dataset: str | None = None
    classes_file: Path | None = None
    base_url: str | None = None
    samples: int = 1
    temperature: float = 0.7
    seed: int = 0
    max_tokens: int = 96
    timeout: float = 60.0
    max_retries: int = 5
    template_dir: Path | None = None
    backoff: float = 1.0
    max_wait: float = 300.0
    progress: bool = True


@dataclass(frozen=True)
class ExpandResult:
    """The description file, how many descriptions this run added, found already done, and gave up on."""

    path: Path
    written: int
    skipped_done: int
    failed: int


def _check_config(cfg: ExpandConfig) -> None:
    if not cfg.model:
        raise SmieError("give a model name (--model)")
    if not cfg.kinds:
        raise SmieError("give at least one description kind")
    if cfg.samples < 1 or cfg.max_tokens < 1 or cfg.max_retries < 0 or cfg.timeout <= 0:
        raise SmieError("samples and max_tokens must be >= 1, max_retries >= 0 and timeout > 0")
    if not 0.0 <= cfg.temperature <= 2.0:
        raise SmieError(f"temperature {cfg.temperature} is outside 0..2")


def _templates(cfg: ExpandConfig) -> list[Template]:
    templates = [resolve_template(k, cfg.template_dir) for k in cfg.kinds]
    kinds = [t.kind for t in templates]
    dupes = sorted({k for k in kinds if kinds.count(k) > 1})
    if dupes:
        raise SmieError(f"kind(s) {', '.join(dupes)} given twice")
    return templates


def _existing(path: Path, fh: IO[str], names: tuple[str, ...]) -> list[Description]:
    """Descriptions already in ``path``, after checking they are of these classes and cutting off a torn last line."""
    if path.stat().st_size == 0:
        return []
    scan = scan_descriptions(path)
    for d in scan.descriptions:
        if d.class_id >= len(names) or d.label != names[d.class_id]:
            now = repr(names[d.class_id]) if d.class_id < len(names) else "absent"
            raise SmieError(
                f"{path}: holds class {d.class_id} as {d.label!r}, but it is {now} in the class list given now; "
                "write to another --out file"
            )
    if scan.torn_at is not None:
        log.warning("%s: line %d was cut off by an interrupted run; removing it and redoing it",
                    path, scan.torn_line)
        os.ftruncate(fh.fileno(), scan.torn_at)
    size = os.fstat(fh.fileno()).st_size
    if size > 0:
        with open(path, "rb") as raw:
            raw.seek(size - 1)
            if raw.read(1) != b"\n":
                fh.write("\n")
                fh.flush()
    return scan.descriptions


@contextlib.contextmanager
def _open_locked(path: Path) -> Iterator[IO[str]]:
    """Open for appending with an exclusive lock, so two runs never interleave lines in one file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        try:
            import fcntl
        except ImportError:
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise SmieError(f"{path}: another expand-labels run is writing this file") from None
        yield fh


def expand_labels(cfg: ExpandConfig) -> ExpandResult:
    """Ask for every missing ``(class, kind, sample)`` description and append each as soon as it arrives."""
    _check_config(cfg)
    classes = resolve_classes(skeletons=cfg.skeletons, dataset=cfg.dataset, classes_file=cfg.classes_file)
    templates = _templates(cfg)
    out = Path(cfg.out)
    client = ChatClient(cfg.base_url, cfg.timeout, cfg.max_retries, cfg.backoff, cfg.max_wait)
    with _open_locked(out) as fh:
        existing = _existing(out, fh, classes.names)
        _warn_stale(out, existing, templates, cfg.model)
        return _run(cfg, client, fh, classes, templates, {d.key for d in existing})


def _warn_stale(path: Path, existing: list[Description], templates: list[Template], model: str) -> None:
    """Descriptions already there are kept even if another template or model made them; say so when that is so."""
    for t in templates:
        other = [d for d in existing if d.kind == t.kind and (d.prompt_sha256 != t.sha256 or d.model != model)]
        if other:
            log.warning("%s: %d %s descriptions were made with another template or model (e.g. %s); they are "
                        "kept, not redone; write to another --out to regenerate them", path, len(other), t.kind,
                        other[0].model)


def _run(cfg: ExpandConfig, client: ChatClient, fh: IO[str], classes: ClassList, templates: list[Template],
         done: set[tuple[int, str, int]]) -> ExpandResult:
    todo = [
        (cid, t, s)
        for cid in range(len(classes.names))
        for t in templates
        for s in range(cfg.samples)
        if (cid, t.kind, s) not in done
    ]
    skipped = len(classes.names) * len(templates) * cfg.samples - len(todo)
    written = failed = 0
    with tqdm(total=len(todo), desc="expand-labels", unit="desc", disable=not cfg.progress) as bar:
        try:
            for cid, t, s in todo:
                label = classes.names[cid]
                what = f"class {cid} ({label!r}) kind {t.kind} sample {s}"
                reply = client.complete(cfg.model, t.render(label, classes.dataset), cfg.temperature,
                                        cfg.max_tokens, cfg.seed + s, what)
                if reply is None:
                    failed += 1
                else:
                    append_description(fh, Description(
                        class_id=cid, label=label, kind=t.kind, text=reply.text, model=cfg.model,
                        host=client.host, prompt_sha256=t.sha256, temperature=cfg.temperature, seed=reply.seed,
                        sample=s, time=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    ))
                    written += 1
                bar.update(1)
        except KeyboardInterrupt:
            log.warning("interrupted: %d descriptions written this run are kept in %s; rerun to resume",
                        written, cfg.out)
            raise
    if failed:
        log.warning("%d descriptions got no usable reply and were not stored; rerun to try them again", failed)
    return ExpandResult(Path(cfg.out), written, skipped, failed)
