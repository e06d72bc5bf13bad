"""The resumable partial of ``smie prepare``: finished chunks of preprocessed samples, and the record of them.

Beside the target cache ``NAME`` live ``.NAME.partial`` (the chunks, appended one after another, each an
uncompressed ``.npz`` blob holding ``data`` (n, C, T, V, M) float32, ``labels`` (n,) int64, ``lengths`` (n,)
int32, ``ids`` (n,) str and ``meta_<column>`` (n,) int32) and ``.NAME.progress.json`` (the key of the inputs and
settings, and per finished chunk its byte range, CRC-32, row count, the raw items it covers and the items
skipped in it). A chunk is appended and fsynced before the record naming it is atomically replaced, so a killed
run leaves at most an unrecorded tail, which the next run cuts off before it continues after the last recorded
chunk. A partial made under another key (other input bytes or settings) is refused, never mixed in.
"""
from __future__ import annotations

import io
import json
import os
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from smie.features.skeletons import SkeletonSet
from smie.features.store import SmieError, atomic_path, partial_path

PROGRESS_FORMAT = "smie.prepare.progress"
PROGRESS_VERSION = 1


def partial_paths(out: str | os.PathLike) -> tuple[Path, Path]:
    """``(.NAME.partial, .NAME.progress.json)`` beside the target ``out``."""
    p = Path(out)
    return partial_path(p), p.with_name(f".{p.name}.progress.json")


def encode_chunk(rows: list[tuple]) -> tuple[bytes, list[str]]:
    """``rows`` of ``(sample_id, label, length, x (C, T, V, M), meta dict)`` -> (npz bytes, meta columns)."""
    columns = list(dict.fromkeys(k for r in rows for k in r[4]))
    arrays = {
        "data": np.stack([r[3] for r in rows]).astype(np.float32),
        "labels": np.array([r[1] for r in rows], dtype=np.int64),
        "lengths": np.array([r[2] for r in rows], dtype=np.int32),
        "ids": np.array([r[0] for r in rows], dtype=str),
    }
    for c in columns:
        arrays[f"meta_{c}"] = np.array([r[4].get(c, -1) for r in rows], dtype=np.int32)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue(), columns


class Partial:
    """The partial file and progress record of one target; ``chunks`` are the recorded (finished) chunks."""

    def __init__(self, out: str | os.PathLike, key: str, resume: bool = True):
        self.path, self.record = partial_paths(out)
        self.key = key
        self.chunks: list[dict] = []
        if not resume:
            self.record.unlink(missing_ok=True)
        elif self.record.exists():
            try:
                rec = json.loads(self.record.read_text())
                ok = rec.get("format") == PROGRESS_FORMAT and rec.get("version") == PROGRESS_VERSION
            except (OSError, ValueError):
                ok = False
            if not ok:
                raise SmieError(f"{self.record}: not a readable progress record of smie prepare; delete it and "
                                f"{self.path}, or pass --no-resume")
            if rec["key"] != key:
                raise SmieError(f"{self.path}: this partial was made from other inputs or settings than this "
                                "prepare; refusing to resume it (pass --no-resume to start over)")
            self.chunks = rec["chunks"]
        end = self.end
        if self.path.exists() and self.path.stat().st_size < end:
            raise SmieError(f"{self.path}: shorter ({self.path.stat().st_size} bytes) than its progress record "
                            f"says ({end}); pass --no-resume to start over")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as fh:  # cut an unrecorded tail (a chunk being written when the run was killed)
            fh.truncate(end)

    @property
    def end(self) -> int:
        return self.chunks[-1]["offset"] + self.chunks[-1]["size"] if self.chunks else 0

    @property
    def items_done(self) -> int:
        return self.chunks[-1]["items_end"] if self.chunks else 0

    @property
    def rows(self) -> int:
        return sum(c["rows"] for c in self.chunks)

    @property
    def skipped(self) -> list[tuple[str, str]]:
        return [tuple(s) for c in self.chunks for s in c["skipped"]]

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys(col for c in self.chunks for col in c["columns"]))

    def append(self, rows: list[tuple], items_end: int, skipped: list[tuple[str, str]]) -> None:
        """Append one finished chunk (rows as :func:`encode_chunk` takes them; may be empty) and record it."""
        blob, columns = encode_chunk(rows) if rows else (b"", [])
        offset = self.end
        with open(self.path, "r+b") as fh:
            fh.seek(offset)
            fh.write(blob)
            fh.truncate()
            fh.flush()
            os.fsync(fh.fileno())
        self.chunks.append(dict(offset=offset, size=len(blob), crc32=zlib.crc32(blob), rows=len(rows),
                                items_end=items_end, skipped=[list(s) for s in skipped], columns=columns))
        with atomic_path(self.record) as tmp:
            tmp.write_text(json.dumps(dict(format=PROGRESS_FORMAT, version=PROGRESS_VERSION, key=self.key,
                                           chunks=self.chunks)))

    def _load(self, fh, chunk: dict) -> dict[str, np.ndarray]:
        fh.seek(chunk["offset"])
        blob = fh.read(chunk["size"])
        if len(blob) != chunk["size"] or zlib.crc32(blob) != chunk["crc32"]:
            raise SmieError(f"{self.path}: chunk at byte {chunk['offset']} is damaged; pass --no-resume to start over")
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def iter_sets(self, header: SkeletonSet) -> Iterator[SkeletonSet]:
        """The recorded chunks as :class:`SkeletonSet` s of ``header``'s class table, layout and data set."""
        with open(self.path, "rb") as fh:
            for chunk in self.chunks:
                if not chunk["rows"]:
                    continue
                z = self._load(fh, chunk)
                yield SkeletonSet(data=z["data"], labels=z["labels"], lengths=z["lengths"],
                                  sample_ids=tuple(str(s) for s in z["ids"]), class_names=header.class_names,
                                  layout=header.layout, dataset=header.dataset, layout_spec=header.layout_spec,
                                  meta={k[5:]: v for k, v in z.items() if k.startswith("meta_")})

    def sample_ids(self) -> Iterator[str]:
        """Every recorded sample id, in order (reads the chunks back one at a time)."""
        with open(self.path, "rb") as fh:
            for chunk in self.chunks:
                if chunk["rows"]:
                    yield from (str(s) for s in self._load(fh, chunk)["ids"])

    def remove(self) -> None:
        """Delete the partial file and its record (after the cache is in place, or when it must not be resumed)."""
        for p in (self.record, self.path):
            p.unlink(missing_ok=True)
