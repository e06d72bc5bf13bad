"""Readers of raw skeleton data, one module per format family; ``READERS`` maps a format name to its reader.

Every reader is ``read(path, *, max_bodies=2, dataset=None, labels=None, label_pattern=None) -> RawSource`` (see
:mod:`smie.pipeline.data.readers.base`); ``load_raw`` reads everything into a :class:`RawDataset` (small inputs,
tests). Formats and their options are described in docs/data-formats.md.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from smie.features.store import SmieError
from smie.pipeline.data.readers.arrays import read_aimclr, read_ctrgcn, read_npz
from smie.pipeline.data.readers.base import RawDataset, RawSample, RawSource
from smie.pipeline.data.readers.bvh import read_bvh
from smie.pipeline.data.readers.msr import read_msr
from smie.pipeline.data.readers.ntu import read_ntu
from smie.pipeline.data.readers.pickles import read_pyskl
from smie.pipeline.data.readers.pku import read_pku

READERS: dict[str, Callable[..., RawSource]] = {
    "ntu": read_ntu,
    "pku": read_pku,
    "aimclr": read_aimclr,
    "pyskl": read_pyskl,
    "ctrgcn": read_ctrgcn,
    "msr": read_msr,
    "npz": read_npz,
    "bvh": read_bvh,
}
LABELLED_BY_TABLE = ("pku", "bvh")  # formats whose labels come from --labels

__all__ = ["READERS", "RawDataset", "RawSample", "RawSource", "load_raw", "open_raw"]


def open_raw(format: str, path: str | Path, **opts) -> RawSource:
    """The lazy :class:`RawSource` of ``path`` read as ``format``."""
    if format not in READERS:
        raise SmieError(f"unknown input format {format!r}; known: {', '.join(READERS)}")
    if format not in LABELLED_BY_TABLE and opts.get("labels") is not None:
        raise SmieError(f"--labels applies to the {' and '.join(LABELLED_BY_TABLE)} formats only, not {format}")
    if format != "bvh" and opts.get("label_pattern") is not None:
        raise SmieError(f"--label-pattern applies to the bvh format only, not {format}")
    return READERS[format](Path(path), **opts)


def load_raw(format: str, path: str | Path, skip_bad: bool = False, **opts) -> RawDataset:
    """Read every sample of ``path`` into memory; a bad unit raises, or with ``skip_bad`` is skipped and listed."""
    source = open_raw(format, path, **opts)
    samples, skipped = [], list(source.skipped)
    for name, load in source.items:
        try:
            samples.extend(load())
        except SmieError as exc:
            if not skip_bad:
                raise
            skipped.append((name, str(exc)))
    return RawDataset(samples, source.class_names, source.layout, source.dataset, skipped, source.layout_spec,
                      source.info)
