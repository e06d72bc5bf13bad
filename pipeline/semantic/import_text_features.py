"""``smie import-text-features``: class-text features that papers publish, into a text cache (``smie.text``).

Formats (docs/reproduce.md says which code reads which file):

- ``msf``: MSF-GZSSAR's CLIP text features, a ``text_feats/ViT-B-32`` (or ``ViT-B/32``) folder of
  ``{lb,ad,md}_{60,120}.npy`` (K, 512): ``lb`` -> kind ``label``, ``ad`` -> ``action``, ``md`` -> ``motion``.
  The ``sem_info`` folder beside it (found up the tree, or ``--texts``) gives the encoded texts and, from
  ``lb_K.csv``, the published class names the order is checked with.
- ``synse``: SynSE's ``language_data`` (``resources``) folder: ``{bert,w2v}_{verb,noun}.npy`` (120 rows, the
  NTU-120 order; NTU-60 is its first 60 classes) or the loader's own names ``ntu{K}_{bert,w2v}_{verb,noun}.npy``:
  kinds ``verb`` and ``noun`` (what JPoSE and SynSE use), 1024-d Sentence-BERT (stsb-bert-large) or 300-d
  word2vec. ``labels.npy`` gives the class names for the order check; the vocabularies and one-hot files
  (``{verbs,nouns}_{vocab,ohe}.npy``) give each class's verb and noun, stored as its texts.
- ``npy``: any (K, E) or (K, P, E) arrays, one per kind (``--file KIND=PATH``), e.g. SMIE's
  ``ntu60_embeddings.npy``; ``--encoder`` names the encoder, ``--names`` (optional) the class names to check.

Vectors are stored as published (float32, not re-normalised: ``normalised`` is false, and stage two
L2-normalises each kind as the official loaders do). The class order is checked against the data set's class
table; a table whose rows do not line up (a shifted or shuffled file) is refused naming the rows. The encoder
id records where the vectors came from; no local encoder rebuilds them (``encoder_spec`` is empty).
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smie.features.store import SmieError, file_sha256, provenance
from smie.features.text import TextCache, TextKind, write_text
from smie.pipeline.data.classes import class_table

FORMATS = ("msf", "synse", "npy")
MSF_KINDS = {"lb": "label", "ad": "action", "md": "motion"}
SYNSE_MODELS = {"bert": "sentence-transformers/stsb-bert-large", "w2v": "word2vec 300-d (GoogleNews vectors)"}
_STOP = frozenset("a an the of on with other person something to from and or in at s one".split())


@dataclass(frozen=True)
class ImportTextConfig:
    """``input``: the published folder (``msf``, ``synse``); ``files``: (kind, path) pairs (``npy``); ``kinds``:
    only these kinds (default: all the source has); ``model``: ``bert`` or ``w2v`` (``synse``); ``names``: a
    file of published class names for the order check; ``texts``: MSF's ``sem_info`` folder; ``encoder``: the
    encoder id to record (required for ``npy``)."""

    format: str
    out: Path
    dataset: str
    input: Path | None = None
    files: tuple[tuple[str, Path], ...] = ()
    kinds: tuple[str, ...] = ()
    model: str = "bert"
    names: Path | None = None
    texts: Path | None = None
    encoder: str | None = None


def _norm(name: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", str(name).lower()).split())


def _shares_word(a: str, b: str) -> bool:
    """Whether two class names share a content word (the same word, or one with a common stem of 4+ letters)."""
    def same(x: str, y: str) -> bool:
        n = next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), min(len(x), len(y)))
        return x == y or n >= min(4, len(x), len(y)) >= 3

    words = [[w for w in _norm(s).split() if w not in _STOP] for s in (a, b)]
    return any(same(x, y) for x in words[0] for y in words[1])


def check_class_order(published: list[str], table: tuple[str, ...], source: Path) -> int:
    """Refuse published class names that do not line up with the class table: a name found verbatim at another
    row, or fewer than 90% of rows sharing a word with the table's row (papers reword some names: SynSE's
    'capitulate' is NTU's 'hands up (both hands)'). Returns how many rows share a word."""
    if len(published) != len(table):
        raise SmieError(f"{source}: {len(published)} class names, the class table has {len(table)}")
    where = {_norm(n): i for i, n in enumerate(table)}
    moved = [(i, n, where[_norm(n)]) for i, n in enumerate(published) if where.get(_norm(n), i) != i]
    agree = [_shares_word(p, t) for p, t in zip(published, table)]
    if moved or sum(agree) < 0.9 * len(table):
        rows = [f"row {i} {n!r} is row {j} of the table" for i, n, j in moved[:3]] or [
            f"row {i} {published[i]!r} vs {table[i]!r}" for i, ok in enumerate(agree) if not ok][:3]
        raise SmieError(f"{source}: class order does not match the data set's class table ({'; '.join(rows)}); "
                        "the features' rows would be attached to the wrong classes")
    return sum(agree)


def _array(path: Path, K: int, allow_more: bool = False) -> np.ndarray:
    """(K, P, E) float32 from a (K, E) or (K, P, E) .npy; with ``allow_more`` the first K of more rows."""
    if not path.is_file():
        raise SmieError(f"{path}: missing file")
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise SmieError(f"{path}: not a plain numeric .npy array ({exc})") from None
    if x.ndim not in (2, 3) or not np.issubdtype(x.dtype, np.floating):
        raise SmieError(f"{path}: wrong dtype or shape {x.dtype} {x.shape}: expected float (classes, dims)")
    if x.shape[0] != K and not (allow_more and x.shape[0] > K):
        raise SmieError(f"{path}: {x.shape[0]} rows, the class table has {K}")
    x = x[:K] if x.ndim == 3 else x[:K, None, :]
    bad = np.flatnonzero(~np.isfinite(x).reshape(K, -1).all(axis=1))
    if bad.size:
        raise SmieError(f"{path}: {bad.size} rows hold NaN or infinite values (rows {', '.join(map(str, bad[:5]))})")
    return x.astype(np.float32)


def _read_names(path: Path) -> list[str]:
    """Class names from a .npy of strings, a CSV with a ``label`` (or ``name``) column, or one name per line."""
    if path.suffix == ".npy":
        return [str(n) for n in np.load(path, allow_pickle=False)]
    if path.suffix == ".csv":
        with open(path, encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.DictReader(fh))
        key = next((k for k in ("label", "name") if rows and k in rows[0]), None)
        if key is None:
            raise SmieError(f"{path}: a class-name CSV needs a 'label' or 'name' column")
        return [r[key] for r in rows]
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def _find_up(start: Path, name: str) -> Path | None:
    for d in [start, *start.parents][:4]:
        if (d / name).is_dir():
            return d / name
    return None


def _msf(cfg: ImportTextConfig, K: int):
    d = Path(cfg.input)
    arch = (d.parent.name + "-" + d.name) if d.parent.name.startswith("ViT") else d.name  # ViT-B/32 or ViT-B-32
    wanted = {v: k for k, v in MSF_KINDS.items()}
    kinds = cfg.kinds or tuple(v for k, v in MSF_KINDS.items() if (d / f"{k}_{K}.npy").is_file())
    if not kinds or any(k not in wanted for k in kinds):
        raise SmieError(f"{d / f'lb_{K}.npy'}: missing file (an MSF text_feats folder holds lb/ad/md_{K}.npy; "
                        f"kinds {', '.join(MSF_KINDS.values())})")
    files = {k: d / f"{wanted[k]}_{K}.npy" for k in kinds}
    sem = Path(cfg.texts) if cfg.texts else _find_up(d, "sem_info")
    texts, names = {}, None
    if sem is not None:
        for k in kinds:
            csv_path = sem / f"{wanted[k]}_{K}.csv"
            if csv_path.is_file():
                with open(csv_path, encoding="utf-8-sig", newline="") as fh:
                    texts[k] = [row[1] for row in list(csv.reader(fh))[1:]]
        if (sem / f"lb_{K}.csv").is_file():
            names = (sem / f"lb_{K}.csv", _read_names(sem / f"lb_{K}.csv"))
    encoder = f"clip-{arch.lower().replace('-b-', '-b/')}, imported from MSF-GZSSAR text_feats"
    return files, texts, names, encoder, False


def _synse(cfg: ImportTextConfig, K: int):
    d, m = Path(cfg.input), cfg.model
    if m not in SYNSE_MODELS:
        raise SmieError(f"--model must be one of {', '.join(SYNSE_MODELS)} for synse, got {m!r}")
    kinds = cfg.kinds or ("verb", "noun")
    files = {k: next((p for p in (d / f"ntu{K}_{m}_{k}.npy", d / f"{m}_{k}.npy") if p.is_file()),
                     d / f"{m}_{k}.npy") for k in kinds}
    texts = {}
    for k in kinds:
        vocab, ohe = d / f"{k}s_vocab.npy", d / f"{k}s_ohe.npy"
        if vocab.is_file() and ohe.is_file():
            texts[k] = [str(w) for w in np.load(vocab, allow_pickle=False)[
                np.argmax(np.load(ohe, allow_pickle=False), axis=-1)]][:K]
    names = (d / "labels.npy", _read_names(d / "labels.npy")[:K]) if (d / "labels.npy").is_file() else None
    return files, texts, names, f"{SYNSE_MODELS[m]}, imported from synse-zsl language_data", True


def import_text_features(cfg: ImportTextConfig) -> Path:
    """Read, check (rows, dims, finite values, class order) and write the text cache; return its path."""
    if cfg.format not in FORMATS:
        raise SmieError(f"unknown format {cfg.format!r}; known: {', '.join(FORMATS)}")
    table = class_table(cfg.dataset)
    K = len(table)
    if cfg.format == "npy":
        if not cfg.files or not cfg.encoder:
            raise SmieError("format npy needs --file KIND=PATH (one or more) and --encoder")
        files, texts, names, encoder, more = dict(cfg.files), {}, None, cfg.encoder, False
    elif cfg.input is None or not Path(cfg.input).is_dir():
        raise SmieError(f"{cfg.input}: no such folder (format {cfg.format} reads a folder)")
    else:
        files, texts, names, encoder, more = (_msf if cfg.format == "msf" else _synse)(cfg, K)
    if cfg.names is not None:
        names = (Path(cfg.names), _read_names(Path(cfg.names))[:K])
    agree = check_class_order(names[1], table, names[0]) if names is not None else None
    arrays = {k: _array(Path(p), K, allow_more=more) for k, p in files.items()}
    dims = {k: a.shape[2] for k, a in arrays.items()}
    if len(set(dims.values())) != 1:
        raise SmieError(f"{files[next(iter(files))]}: kinds of different widths {dims}; one text cache holds one "
                        "encoder's vectors (import each into its own cache)")
    groups = {}
    for k, a in arrays.items():
        P = a.shape[1]
        t = texts.get(k, [""] * K)
        groups[k] = TextKind(a, tuple((t[i],) + ("",) * (P - 1) for i in range(K)), np.full(K, P, np.int32))
    sources = tuple({"path": str(p), "sha256": file_sha256(p)} for p in [*map(Path, files.values())]
                    + ([names[0]] if names is not None else []))
    cache = TextCache(table, np.arange(K), groups, encoder, "", "", next(iter(dims.values())), normalised=False,
                      sources=sources)
    imported = {"format": cfg.format, "kinds": {k: str(p) for k, p in files.items()},
                "class_order": None if names is None else {"names": str(names[0]), "rows_sharing_a_word": agree},
                "source_rows": {k: int(np.load(p, mmap_mode="r").shape[0]) for k, p in files.items()}}
    write_text(cfg.out, cache, provenance(cfg, encoder=encoder, imported=imported,
                                          inputs={f"{k}": p for k, p in files.items()}))
    return Path(cfg.out)
