"""Shared plumbing for every smie HDF5 cache: typed, versioned, provenance-carrying, atomically written.

Every cache file carries three root attributes:
``encoding-type`` (e.g. ``smie.skeletons``), ``schema-version`` (int) and ``provenance`` (a JSON string).
Every file smie reads goes through one checked door: caches through :func:`open_checked` (any HDF5 file through
:func:`open_hdf5`), checkpoints through :func:`load_checkpoint_checked`. They turn a missing, unreadable,
truncated, wrong-kind or future-version file into a :class:`CacheError` that names the file, says what it is
and what was expected, so the CLI prints one line instead of a traceback.

Versions: a reader accepts every schema version from the oldest its kind still reads (1 unless the kind declares
otherwise) up to the one it writes, and refuses newer ones (written by a newer smie). Where a layout changed
between versions the reader fills in what an older file lacks; docs/cache-format.md lists the versions of each
kind and how each older one is read, and tests/fixtures/ holds a frozen file of each.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import importlib.metadata
import json
import os
import platform
import re
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np

STR_DTYPE = h5py.string_dtype("utf-8")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"
KINDS = {  # what each encoding type is, for messages that say what a file is and what was expected
    "smie.skeletons": "skeleton cache from smie prepare",
    "smie.visual": "visual cache from smie extract-visual",
    "smie.text": "text cache from smie embed-labels",
    "smie.visual.partial": "unfinished visual cache of an interrupted smie extract-visual",
}
BACKBONE = "an smie backbone checkpoint (.pt from smie pretrain-backbone)"
_PACKAGES = ("smie", "torch", "numpy", "h5py", "sentence-transformers", "openai", "click", "pandas")


class SmieError(Exception):
    """A problem the user can fix (bad input, mismatched caches); the CLI shows the message without a traceback."""


class CacheError(SmieError):
    """A cache file that is missing, of the wrong type or version, incomplete or inconsistent."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, streamed so that multi-GB caches do not need to fit in memory."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def provenance(config: Any = None, inputs: dict[str, str | os.PathLike] | None = None, **extra: Any) -> dict:
    """What made an artifact: the config (a dataclass or dict), input file hashes, package versions, time
    (``created``: now, or ``SOURCE_DATE_EPOCH`` when that is set, for byte-reproducible artifacts).

    ``inputs`` maps a role (``"skeletons"``, ``"backbone"``) to a path; each is recorded with its SHA-256.
    ``extra`` adds free fields (encoder id, prompt hash, ...). Never pass secrets.
    """
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()  # reproducible builds: a fixed creation time
    now = (_dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc) if epoch.isdigit()
           else _dt.datetime.now(_dt.timezone.utc))
    rec: dict[str, Any] = {
        "created": now.isoformat(timespec="seconds"),
        "packages": package_versions(),
    }
    if config is not None:
        rec["config"] = _jsonable(config)
    if inputs:
        rec["inputs"] = {
            role: {"path": str(p), "sha256": file_sha256(p)} for role, p in inputs.items() if p is not None
        }
    rec.update(_jsonable(extra))
    return rec


def to_json(obj: Any) -> str:
    return json.dumps(_jsonable(obj), sort_keys=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block finishes.

    On any exception the temporary file is removed, so a half-written file is never taken for a finished one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_header(f: h5py.File, encoding_type: str, schema_version: int, prov: dict) -> None:
    f.attrs["encoding-type"] = encoding_type
    f.attrs["schema-version"] = int(schema_version)
    f.attrs["provenance"] = to_json(prov)


def _kind(encoding_type: str) -> str:
    name = KINDS.get(encoding_type)
    return f"{encoding_type} ({name})" if name else encoding_type


def _versions(oldest: int, newest: int) -> str:
    return f"version {newest}" if oldest == newest else f"versions {oldest}-{newest}"


def check_header(f: h5py.File, path: str | os.PathLike, encoding_type: str, schema_version: int,
                 oldest: int = 1) -> int:
    """Check the file's type and schema version; return the version found.

    ``schema_version`` is the version this smie writes; every version from ``oldest`` up to it is accepted
    (the reader migrates an older layout as docs/cache-format.md says). A newer version, written by a newer
    smie, is refused: its layout may hold what this reader would silently ignore or misread."""
    found = f.attrs.get("encoding-type")
    if found is None:
        raise CacheError(path, f"not an smie cache (no 'encoding-type' attribute); expected {_kind(encoding_type)}")
    found = found.decode("utf-8", "replace") if isinstance(found, bytes) else str(found)
    if found != encoding_type:
        what = (f": a {KINDS[found]}, not a {KINDS[encoding_type]}" if found in KINDS and encoding_type in KINDS
                else "")
        raise CacheError(path, f"is a {found} file, expected {encoding_type}{what}")
    raw = f.attrs.get("schema-version")
    try:
        version = int(raw)
    except (TypeError, ValueError):
        raise CacheError(path, f"{encoding_type} file without a valid schema-version ({raw!r})") from None
    readable = _versions(oldest, schema_version)
    if version > schema_version:
        raise CacheError(path, f"{encoding_type} schema-version {version} is not supported: the file was written by a "
                               f"newer smie (this smie reads {readable}); upgrade smie to read it")
    if version < oldest:
        raise CacheError(path, f"{encoding_type} schema-version {version} is not supported: too old to migrate (this "
                               f"smie reads {readable}); re-create the file with this smie")
    return version


def schema_version_of(f: h5py.File) -> int:
    """The schema version of a file that passed :func:`check_header` (for readers whose layout changed)."""
    return int(f.attrs["schema-version"])


def partial_path(path: str | os.PathLike) -> Path:
    """The deterministic temporary file beside ``path`` that an unfinished, resumable write lives in
    (``.NAME.partial``: ``smie prepare``, ``smie extract-visual``)."""
    p = Path(path)
    return p.with_name(f".{p.name}.partial")


def sniff(path: str | os.PathLike) -> str:
    """What a file is by its first bytes: ``hdf5``, ``zip`` (a torch checkpoint), ``empty``, ``text`` or
    ``binary``. For messages, and to pick the reader: never trusted as a check of the content."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head.startswith(HDF5_SIGNATURE):
        return "hdf5"
    if head.startswith(ZIP_SIGNATURE):
        return "zip"
    if not head:
        return "empty"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a multi-byte character cut at the end of the sample
            return "binary"
    return "text" if b"\x00" not in head else "binary"


_WHAT = {"zip": "a zip archive (a torch checkpoint?)", "empty": "an empty file", "text": "a text file",
         "binary": "a binary file without the HDF5 signature"}


def _h5_reason(exc: BaseException) -> str:
    """h5py's reason in brackets (``Unable to synchronously open file (bad superblock version number)``)."""
    text = str(exc)
    reason = text[text.find("(") + 1:text.rfind(")")] if -1 < text.find("(") < text.rfind(")") else text
    sizes = dict(re.findall(r"\b(eof|stored_eof) = (\d+)", reason))
    if "truncated file" in reason and len(sizes) == 2:
        return f"truncated: {sizes['eof']} of {sizes['stored_eof']} bytes"
    return reason


def open_hdf5(path: str | os.PathLike, mode: str = "r", expected: str = "an smie cache") -> h5py.File:
    """Open any HDF5 file, or raise :class:`CacheError` saying what the file is instead of ``expected``:
    missing, a directory, an unfinished ``.partial``, damaged or truncated HDF5, or not HDF5 at all."""
    p = Path(path)
    if not p.exists():
        raise CacheError(p, "no such file")
    if p.is_dir():
        raise CacheError(p, f"is a directory, expected {expected}")
    try:
        return h5py.File(p, mode)
    except (OSError, ValueError) as exc:
        if p.name.endswith(".partial"):
            raise CacheError(p, "is the unfinished partial of an interrupted smie prepare, not a cache; rerun "
                                "that command to finish it") from None
        try:
            kind = sniff(p)
        except OSError:
            kind = "unreadable"
        if kind == "hdf5":
            raise CacheError(p, f"cannot be read as HDF5: damaged or truncated ({_h5_reason(exc)}); expected "
                                f"{expected}") from None
        raise CacheError(p, f"cannot be read as HDF5: it is {_WHAT.get(kind, 'unreadable')} ({_h5_reason(exc)}); "
                            f"expected {expected}") from None


def open_checked(path: str | os.PathLike, encoding_type: str, schema_version: int, mode: str = "r",
                 oldest: int = 1) -> h5py.File:
    """Open an smie cache and check its type and version (any from ``oldest`` to ``schema_version``, see
    :func:`check_header`); raise :class:`CacheError` naming the file."""
    f = open_hdf5(path, mode, expected=f"an {_kind(encoding_type)}")
    try:
        check_header(f, Path(path), encoding_type, schema_version, oldest)
    except CacheError:
        f.close()
        raise
    return f


def _torch_reason(exc: BaseException, kind: str) -> str:
    """What went wrong, in one clause. torch's weights-only refusal advises ``weights_only=False``, which is
    wrong advice for a file of unknown origin: say what the file holds instead."""
    text = str(exc).strip()
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found or "Weights only load failed" in text:
        what = f" ({found.group(1)})" if found else ""
        return (f"is a torch file holding pickled Python objects{what}, not weights only; smie loads weights only "
                f"(save the model's state_dict() instead)")
    first = (text.splitlines() or [type(exc).__name__])[0]
    first = first.split(". ")[0].rstrip(".")
    if kind == "zip":
        return f"is a damaged or truncated torch checkpoint ({first})"
    return f"cannot be read as a weights-only torch checkpoint ({first})"


def load_checkpoint_checked(path: str | os.PathLike, expected: str = BACKBONE, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``, the checkpoint twin of :func:`open_checked`: a missing,
    damaged, truncated or wrong-kind file (an HDF5 cache, a text file, a pickled module) becomes a
    :class:`CacheError` that says what the file is and that ``expected`` was expected. Checking the loaded
    object's own format is the caller's (it knows which format it wants)."""
    import torch

    p = Path(path)
    if not p.exists():
        raise CacheError(p, "no such file")
    if p.is_dir():
        raise CacheError(p, f"is a directory, expected {expected}")
    kind = sniff(p)
    if kind == "hdf5":
        raise CacheError(p, f"is {describe_hdf5(p)}, not a checkpoint; expected {expected}")
    if kind in ("empty", "text"):
        raise CacheError(p, f"is {_WHAT[kind]}, not a torch checkpoint; expected {expected}")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for foreign or damaged files
        raise CacheError(p, f"{_torch_reason(exc, kind)}; expected {expected}") from None


def describe_hdf5(path: str | os.PathLike) -> str:
    """What an HDF5 file is, in a few words (``an smie.visual cache``), for messages about files given in the
    wrong place; never raises."""
    try:
        with h5py.File(path, "r") as f:
            found = f.attrs.get("encoding-type")
    except (OSError, ValueError):
        return "a damaged or truncated HDF5 file"
    if found is None:
        return "an HDF5 file but not an smie cache"
    found = found.decode("utf-8", "replace") if isinstance(found, bytes) else str(found)
    return f"an {found} HDF5 file" + (f" ({KINDS[found]})" if found in KINDS else "")


def require(f: h5py.File, path: str | os.PathLike, name: str, ndim: int | None = None) -> h5py.Dataset:
    """Return dataset ``name`` or raise a :class:`CacheError` naming the file and what is missing."""
    if name not in f:
        raise CacheError(path, f"missing dataset '{name}'")
    ds = f[name]
    if ndim is not None and ds.ndim != ndim:
        raise CacheError(path, f"dataset '{name}' has {ds.ndim} axes, expected {ndim}")
    return ds


def read_provenance(f: h5py.File) -> dict:
    raw = f.attrs.get("provenance")
    return json.loads(raw) if raw else {}


def read_strings(ds: h5py.Dataset) -> tuple[str, ...]:
    return tuple(s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in ds[()])


def write_strings(group: h5py.Group, name: str, values: Any) -> h5py.Dataset:
    return group.create_dataset(name, data=np.asarray(list(values), dtype=object), dtype=STR_DTYPE)
