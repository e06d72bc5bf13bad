"""``smie embed-labels``: encode class names and their descriptions into a text cache (``smie.text``).

The ``label`` kind is always written: one text per class, the class name put through ``label_template``
(``"{}"`` keeps the bare name, as SMIE does; ``"a person is {}"`` is a common prompt). Every other kind comes
from description JSONL files (``smie expand-labels`` / ``smie import-descriptions``): each class must have at
least one description of every kind that is embedded, and the class ids and labels in the files must agree
with the class list. Classes may have different numbers of descriptions; the cache pads them (see
features/text.py).
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smie.features.store import SmieError, file_sha256, provenance
from smie.features.text import TextCache, TextKind, write_text
from smie.prompts.prompt_template import KIND_NAME

LABEL_KIND = "label"


@dataclass(frozen=True)
class EmbedConfig:
    """Where to write, which description files and kinds, which encoder, and exactly one class source."""

    out: Path
    descriptions: tuple[Path, ...] = ()
    kinds: tuple[str, ...] = ()
    encoder: str = "minilm"
    skeletons: Path | None = None
    dataset: str | None = None
    classes_file: Path | None = None
    batch_size: int = 64
    device: str = "cpu"
    label_template: str = "{}"


def _norm(label: str) -> str:
    return re.sub(r"[\s_]+", " ", label).strip().casefold()


def _label_texts(names: tuple[str, ...], template: str) -> list[list[str]]:
    if template.count("{}") != 1 or re.search(r"\{[^}]", template):
        raise SmieError(f"label template {template!r} must contain exactly one '{{}}' where the class name goes")
    return [[template.replace("{}", n)] for n in names]


def _collect(paths: tuple[Path, ...], names: tuple[str, ...], wanted: tuple[str, ...]):
    """Read the JSONL files -> ({kind: K lists of texts}, {kind: list of Description}), checked against names."""
    from smie.prompts.descriptions import read_descriptions

    K = len(names)
    texts: dict[str, list[list[str]]] = defaultdict(lambda: [[] for _ in range(K)])
    records: dict[str, list] = defaultdict(list)
    seen: set[str] = set()
    for path in paths:
        for d in sorted(read_descriptions(path), key=lambda d: d.sample):
            if not KIND_NAME.fullmatch(d.kind):
                raise SmieError(f"{path}: kind {d.kind!r} of class {d.class_id} is not a plain name "
                                "(letters, digits, '_', '-')")
            if d.kind == LABEL_KIND:
                raise SmieError(f"{path}: kind 'label' is reserved for the class names themselves; rename it")
            cid = d.class_id
            if not 0 <= cid < K:
                raise SmieError(
                    f"{path}: description of class {d.class_id!r} ({d.label!r}) is outside the {K}-class list"
                )
            if _norm(d.label) != _norm(names[cid]):
                raise SmieError(
                    f"{path}: class {cid} is labelled {d.label!r} but the class list names it {names[cid]!r}; "
                    "were the descriptions made for another data set or class order?"
                )
            seen.add(d.kind)
            if wanted and d.kind not in wanted:
                continue
            texts[d.kind][cid].append(d.text)
            records[d.kind].append(d)
    missing_kinds = [k for k in wanted if k != LABEL_KIND and k not in texts]
    if missing_kinds:
        raise SmieError(
            f"no descriptions of kind(s) {', '.join(missing_kinds)} in {', '.join(map(str, paths)) or 'no files'}; "
            f"found: {', '.join(sorted(seen)) or 'none'}"
        )
    for kind, per_class in texts.items():
        lacking = [f"{i} {names[i]!r}" for i, t in enumerate(per_class) if not t]
        if lacking:
            shown = ", ".join(lacking[:20]) + (f" and {len(lacking) - 20} more" if len(lacking) > 20 else "")
            raise SmieError(f"kind {kind!r}: {len(lacking)} of {K} classes have no description: {shown}")
    return dict(texts), dict(records)


def _encode_kind(encoder, per_class: list[list[str]], kind: str) -> TextKind:
    """Encode K lists of texts -> TextKind with (K, P, E) embeddings, P the longest list, zero-padded."""
    K, P = len(per_class), max(len(t) for t in per_class)
    flat = [t for texts in per_class for t in texts]
    emb = encoder.encode(flat, progress=f"embed {kind}")
    out = np.zeros((K, P, encoder.dim), np.float32)
    rows: list[tuple[str, ...]] = []
    pos = 0
    for k, texts in enumerate(per_class):
        out[k, : len(texts)] = emb[pos : pos + len(texts)]
        pos += len(texts)
        rows.append(tuple(texts) + ("",) * (P - len(texts)))
    return TextKind(out, tuple(rows), np.array([len(t) for t in per_class], np.int32))


def _summary(records: list) -> dict:
    """What produced a kind's descriptions: models, hosts, prompt hashes, temperatures, count."""
    def values(attr):
        return sorted({str(getattr(d, attr)) for d in records if getattr(d, attr, None) is not None})

    return {
        "count": len(records),
        "models": values("model"),
        "hosts": values("host"),
        "prompt_sha256": values("prompt_sha256"),
        "temperatures": values("temperature"),
    }


def embed_labels(cfg: EmbedConfig) -> Path:
    """Encode the ``label`` kind and every (or every requested) description kind; write ``cfg.out``."""
    from smie.pipeline.data.classes import resolve_classes
    from smie.pipeline.semantic.text_encoder import TextEncoder

    classes = resolve_classes(skeletons=cfg.skeletons, dataset=cfg.dataset, classes_file=cfg.classes_file)
    names = classes.names
    for path in cfg.descriptions:
        if not Path(path).is_file():
            raise SmieError(f"{path}: description file not found")
    label_texts = _label_texts(names, cfg.label_template)
    texts, records = _collect(tuple(Path(p) for p in cfg.descriptions), names, tuple(cfg.kinds))
    encoder = TextEncoder(cfg.encoder, device=cfg.device, batch_size=cfg.batch_size)
    groups = {LABEL_KIND: _encode_kind(encoder, label_texts, LABEL_KIND)}
    for kind in sorted(texts):
        groups[kind] = _encode_kind(encoder, texts[kind], kind)
    sources = tuple({"path": str(p), "sha256": file_sha256(p)} for p in cfg.descriptions)
    cache = TextCache(
        class_names=names,
        class_ids=np.arange(len(names), dtype=np.int64),
        groups=groups,
        encoder=encoder.id,
        encoder_spec=encoder.spec,
        weights_sha256=encoder.weights_sha256,
        dim=encoder.dim,
        normalised=True,
        sources=sources,
    )
    prov = provenance(
        cfg,
        inputs={f"descriptions[{i}]": p for i, p in enumerate(cfg.descriptions)},
        encoder={"id": encoder.id, "spec": encoder.spec, "weights_sha256": encoder.weights_sha256, "dim": encoder.dim},
        classes={"source": classes.source, "dataset": classes.dataset, "num_classes": len(names)},
        descriptions={kind: _summary(recs) for kind, recs in records.items()},
    )
    write_text(cfg.out, cache, prov)
    return Path(cfg.out)
