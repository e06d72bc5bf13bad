"""Shared plumbing for every smie HDF5 cache: typed, versioned, provenance-carrying, atomically written.

Every cache file carries three root attributes:
``encoding-type`` (e.g. ``smie.skeletons``), ``schema-version`` (int) and ``provenance`` (a JSON string).
Readers go through :func:`open_checked`, which refuses a file of another type or version with a message that
names the file.
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
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np

STR_DTYPE = h5py.string_dtype("utf-8")
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


def check_header(f: h5py.File, path: str | os.PathLike, encoding_type: str, schema_version: int) -> None:
    found = f.attrs.get("encoding-type")
    if found is None:
        raise CacheError(path, f"not an smie cache (no 'encoding-type' attribute); expected {encoding_type}")
    if str(found) != encoding_type:
        raise CacheError(path, f"is a {found} file, expected {encoding_type}")
    version = int(f.attrs.get("schema-version", -1))
    if version != schema_version:
        raise CacheError(
            path, f"{encoding_type} schema-version {version} is not supported (this smie reads {schema_version})"
        )


def partial_path(path: str | os.PathLike) -> Path:
    """The deterministic temporary file beside ``path`` that an unfinished, resumable write lives in
    (``.NAME.partial``: ``smie prepare``, ``smie extract-visual``)."""
    p = Path(path)
    return p.with_name(f".{p.name}.partial")


def open_checked(path: str | os.PathLike, encoding_type: str, schema_version: int, mode: str = "r") -> h5py.File:
    """Open an smie cache and check its type and version; raise :class:`CacheError` naming the file."""
    p = Path(path)
    if not p.exists():
        raise CacheError(p, "no such file")
    try:
        f = h5py.File(p, mode)
    except OSError as exc:
        if p.name.endswith(".partial"):
            raise CacheError(p, "is the unfinished partial of an interrupted smie prepare, not a cache; rerun "
                                "that command to finish it") from None
        raise CacheError(p, f"cannot be read as HDF5 ({exc})") from None
    try:
        check_header(f, p, encoding_type, schema_version)
    except CacheError:
        f.close()
        raise
    return f


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
