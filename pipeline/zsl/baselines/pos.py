"""Part-of-speech texts for JPoSE and SynSE: each action label split into a verb phrase and a noun phrase.

No tagger that installs offline from a package registry is usable here: spaCy's official English models are
distributed as GitHub release files (PyPI holds only third-party re-uploads), and NLTK's tagger needs
``nltk_data`` from a download hub. Action labels are short and regular, so a small deterministic rule splits
them: the verb phrase is the first verb-like word (a fixed lexicon, its ``-s`` form, or an ``-ing`` form) with
the one particle that may follow it ("take off", "sitting down"); when the label does not start with one, the
last verb-like word is the head ("hand waving", "forward punch", "golf swing"); the rest, without articles and
without linking words at its ends ("with", "of", "and", ...), is the noun phrase. A label with no verb-like
word keeps its whole text as verb phrase; a label with no object uses its whole text as noun
phrase (an empty text cannot be embedded). Parenthesised remarks are dropped.

A user can override any class with a TSV file ``class name<TAB>verb phrase<TAB>noun phrase`` (``#`` comments).

Flow: :func:`write_pos_descriptions` writes description records (``smie.prompts.descriptions`` format) of kinds
``verb`` and ``noun``; ``smie embed-labels --descriptions FILE`` embeds them into the text cache; a baseline run
with ``kinds=("verb", "noun")`` then sees ``class_sem = [verb | noun]`` (K, 2E).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import inspect
import os
import re
from dataclasses import dataclass
from pathlib import Path

from smie.features.store import SmieError, atomic_path

VERBS = frozenset("""
drink eat brush drop pick pickup throw sit stand clap read write tear wear take put cheer wave kick jump hop make
play type point check rub nod shake wipe salute cross sneeze cough stagger fall touch use punch slap push pat hug
give walk shoot bounce juggle hush flick count cut snap open sniff squat toss fold ball apply move carry follow
whisper exchange support hit wield knock grab step blow stretch yawn run swing serve draw catch hammer bend jog box
boxing bow answer call hold lift raise turn look pour sweep wash comb dance hit lean climb crawl lie roll rotate
smoke smell pull press spin tie untie zip unzip greet
""".split())
NOT_VERBS_ING = frozenset({"something", "nothing", "anything", "everything", "ring", "king", "ceiling", "clothing",
                           "evening", "morning", "building", "string", "thing", "sibling", "wing"})
PARTICLES = frozenset({"up", "down", "on", "off", "out", "in", "into", "over", "away", "apart", "towards",
                       "together", "around"})
LINKS = frozenset({"with", "to", "at", "of", "from", "and", "or", "on", "in", "into"})
ARTICLES = frozenset({"a", "an", "the", "one's", "oneself"})
KINDS = ("verb", "noun")


def _verb_like(word: str) -> bool:
    w = word.strip("-")
    if w in VERBS or (w.endswith("s") and w[:-1] in VERBS):
        return True
    return w.endswith("ing") and len(w) > 4 and w not in NOT_VERBS_ING


def split_label(label: str) -> tuple[str, str]:
    """``label`` -> (verb phrase, noun phrase), by the rule in the module docstring."""
    clean = re.sub(r"\([^)]*\)", " ", label).lower()
    words = [w for w in re.split(r"\s+", clean.replace("_", " ")) if w]
    if not words:
        raise SmieError(f"empty class name {label!r}")
    whole = " ".join(words)
    heads = [i for i, w in enumerate(words) if _verb_like(w)]
    if not heads:
        return whole, whole
    head = heads[0] if heads[0] == 0 else heads[-1]
    end = head + 1 + int(head + 1 < len(words) and words[head + 1] in PARTICLES)
    verb = " ".join(words[head:end])
    rest = [w for w in words[:head] + words[end:] if w not in ARTICLES]
    while rest and rest[0] in LINKS:
        rest.pop(0)
    while rest and rest[-1] in LINKS:
        rest.pop()
    return verb, (" ".join(rest) if rest else whole)


def read_pos_file(path: str | os.PathLike) -> dict[str, tuple[str, str]]:
    """A user's ``name<TAB>verb<TAB>noun`` file -> {name (case-folded): (verb, noun)}; errors name file and line."""
    p = Path(path)
    if not p.is_file():
        raise SmieError(f"{p}: verb/noun file not found")
    out: dict[str, tuple[str, str]] = {}
    for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cols = [c.strip() for c in line.split("\t")]
        if len(cols) != 3 or not all(cols):
            raise SmieError(f"{p}: line {lineno}: expected 'class name<TAB>verb phrase<TAB>noun phrase'")
        key = cols[0].casefold()
        if key in out:
            raise SmieError(f"{p}: line {lineno}: class {cols[0]!r} given twice")
        out[key] = (cols[1], cols[2])
    return out


def pos_descriptions(class_names, pos_file: str | os.PathLike | None = None) -> list:
    """Description records (kinds ``verb`` and ``noun``, one sample each) for every class, in class order.

    Classes named in ``pos_file`` take its phrases (``model="import:pos-tsv"``, prompt hash = the file's), the
    others the rule's (``model="rule:pos-split"``, prompt hash = this splitter's source).
    """
    from smie.prompts.descriptions import Description

    given = read_pos_file(pos_file) if pos_file is not None else {}
    rule_sha = hashlib.sha256(inspect.getsource(split_label).encode() + repr(sorted(VERBS)).encode()).hexdigest()
    file_sha = hashlib.sha256(Path(pos_file).read_bytes()).hexdigest() if pos_file is not None else ""
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    records = []
    for k, name in enumerate(class_names):
        if name.casefold() in given:
            phrases, model, sha = given[name.casefold()], "import:pos-tsv", file_sha
        else:
            phrases, model, sha = split_label(name), "rule:pos-split", rule_sha
        for kind, text in zip(KINDS, phrases):
            records.append(Description(class_id=k, label=name, kind=kind, text=text, model=model, host="",
                                       prompt_sha256=sha, temperature=None, seed=None, sample=0, time=now))
    return records


def write_pos_descriptions(class_names, out: str | os.PathLike, pos_file: str | os.PathLike | None = None) -> Path:
    """Write :func:`pos_descriptions` as a JSONL description file (atomically) for ``smie embed-labels``."""
    from smie.prompts.descriptions import write_descriptions

    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        write_descriptions(fh, pos_descriptions(class_names, pos_file))
    return Path(out)


@dataclass(frozen=True)
class PosConfig:
    """``smie pos-texts``: where to write, exactly one class source, and an optional user verb/noun TSV."""

    out: Path
    skeletons: Path | None = None
    dataset: str | None = None
    classes_file: Path | None = None
    pos_file: Path | None = None


def pos_texts(cfg: PosConfig) -> Path:
    """Write the verb/noun description file for the classes of one source (see the module docstring)."""
    from smie.pipeline.data.classes import resolve_classes

    names = resolve_classes(cfg.skeletons, cfg.dataset, cfg.classes_file).names
    return write_pos_descriptions(names, cfg.out, cfg.pos_file)
