"""Every name the command line offers, in one declarative table: skeleton and description formats, data sets,
sample protocols, backbone architectures, stage-two methods and the published tables ``smie reproduce`` runs.

Plain data: each entry is the name, a ``"module:attr"`` reference to what implements it (resolved only when a
command runs: :func:`resolve`) and a one-line title for help texts. Nothing here imports torch, h5py or the
pipeline, so ``cli.py`` builds its choices and help from this module and ``smie --help`` stays instant. Every
other list of these names is derived from here (``tests/test_registry.py`` checks that the implementing
modules agree, and that every reference resolves).

A new stage-two method is one module that ends with its ``SPEC`` (a :class:`smie.pipeline.zsl.spec.MethodSpec`),
one line in :data:`METHODS` and its test (docs/architecture.md, "Adding a method").
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Entry:
    """``ref``: ``"module:attr"`` of the implementation (``None`` for names that are data only); ``title``: one
    line for help texts and tables."""

    ref: str | None
    title: str


FORMATS: dict[str, Entry] = {
    "ntu": Entry("smie.pipeline.data.readers.ntu:read_ntu", "NTU RGB+D .skeleton files"),
    "pku": Entry("smie.pipeline.data.readers.pku:read_pku", "PKU-MMD skeleton and label files"),
    "aimclr": Entry("smie.pipeline.data.readers.arrays:read_aimclr", "AimCLR/CrossCLR .npy + .pkl arrays"),
    "pyskl": Entry("smie.pipeline.data.readers.pickles:read_pyskl", "PYSKL annotation pickle"),
    "ctrgcn": Entry("smie.pipeline.data.readers.arrays:read_ctrgcn", "CTR-GCN .npz arrays"),
    "msr": Entry("smie.pipeline.data.readers.msr:read_msr", "MSR Action3D skeleton text files"),
    "npz": Entry("smie.pipeline.data.readers.arrays:read_npz", "smie's generic npz (any joint layout)"),
    "bvh": Entry("smie.pipeline.data.readers.bvh:read_bvh", "BVH motion capture (a directory of .bvh clips)"),
}
"""Raw skeleton input formats (``smie prepare --format``)."""

DESCRIPTION_FORMATS: dict[str, Entry] = {
    "smie-txt": Entry("smie.prompts.importers:_read_smie", "SMIE's released description text files"),
    "msf-csv": Entry("smie.prompts.importers:_read_msf", "MSF's sem_info CSV"),
    "star-txt": Entry("smie.prompts.importers:_read_star", "STAR's description text"),
    "neuron-json": Entry("smie.prompts.importers:_read_neuron", "Neuron's description JSON"),
    "purls-csv": Entry("smie.prompts.importers:_read_purls", "PURLS's description CSV"),
}
"""Published description files (``smie import-descriptions --format``)."""

TEXT_FEATURE_FORMATS: dict[str, Entry] = {
    "msf": Entry("smie.pipeline.semantic.import_text_features:_msf", "MSF-GZSSAR text_feats (CLIP lb/ad/md)"),
    "synse": Entry("smie.pipeline.semantic.import_text_features:_synse", "synse-zsl language_data (SBERT/w2v)"),
    "npy": Entry(None, "any (K, E) .npy per kind"),
}
"""Published class-text features (``smie import-text-features --format``)."""

BACKBONE_FORMATS: dict[str, Entry] = {
    "shiftgcn": Entry(None, "kchengiva/Shift-GCN (SynSE's per-split weights)"),
    "stgcn": Entry(None, "yysijie/st-gcn"),
    "smie-stgcn": Entry(None, "YujieOuO/SMIE's ST-GCN encoder"),
}
"""Published backbone checkpoints (``smie import-backbone --format``); the mapping of each lives in
``smie.pipeline.visual.import_backbone.FORMATS``."""

FEATURE_ARCHS: tuple[str, ...] = ("shiftgcn", "stgcn", "msg3d", "vacnn", "other")
"""Backbones that may have made imported features (``smie import-features --arch``; recorded only)."""

DATASETS: dict[str, Entry] = {
    "ntu60": Entry(None, "NTU RGB+D 60"),
    "ntu120": Entry(None, "NTU RGB+D 120"),
    "pku51": Entry(None, "PKU-MMD (51 classes)"),
    "msr": Entry(None, "MSR Action3D"),
}
"""Built-in class tables (``pipeline/data/classes/<name>.tsv``)."""

PROTOCOLS: dict[str, Entry] = {
    "ntu-xsub": Entry(None, "NTU cross-subject"),
    "ntu-xview": Entry(None, "NTU cross-view"),
    "ntu-xset": Entry(None, "NTU-120 cross-setup"),
    "msr-xsub": Entry(None, "MSR Action3D cross-subject"),
}
"""Official sample protocols (``smie pretrain-backbone --protocol``)."""

ARCHS: dict[str, Entry] = {
    "stgcn": Entry("smie.pipeline.visual.backbones.stgcn:STGCN", "ST-GCN (Yan et al. 2018)"),
    "shiftgcn": Entry("smie.pipeline.visual.backbones.shiftgcn:ShiftGCN", "Shift-GCN (Cheng et al. 2020)"),
}
"""Backbone architectures (``--arch``)."""

METHODS: dict[str, Entry] = {
    "devise": Entry("smie.pipeline.zsl.baselines.devise:SPEC", "DeViSE (Frome et al. 2013)"),
    "relationnet": Entry("smie.pipeline.zsl.baselines.relationnet:SPEC", "Relation Network (Sung et al. 2018)"),
    "revise": Entry("smie.pipeline.zsl.baselines.revise:SPEC", "ReViSE (Tsai et al. 2017)"),
    "jpose": Entry("smie.pipeline.zsl.baselines.jpose:SPEC", "JPoSE (Wray et al. 2019), verb and noun texts"),
    "cadavae": Entry("smie.pipeline.zsl.baselines.cadavae:SPEC", "CADA-VAE (Schonfeld et al. 2019)"),
    "synse": Entry("smie.pipeline.zsl.baselines.synse:SPEC", "SynSE (Gupta et al. 2021), verb and noun texts"),
    "msf": Entry("smie.pipeline.zsl.baselines.msf:SPEC", "MSF (Li et al. 2023), label + action + motion"),
    "smie": Entry("smie.pipeline.zsl.estimator:SPEC", "SMIE (Zhou et al. 2023)"),
    "smie-notemporal": Entry("smie.pipeline.zsl.estimator:NOTEMPORAL_SPEC", "SMIE without the temporal constraint"),
    "smie-fusion": Entry("smie.pipeline.zsl.fusion:SPEC", "SMIE with per-kind critics, settings chosen on validation"),
}
"""Stage-two methods (``smie fit-baseline NAME``, ``smie compare --methods``); each reference is the method's
:class:`~smie.pipeline.zsl.spec.MethodSpec`."""


@dataclass(frozen=True)
class ReproTable:
    """A published table on one split that ``smie reproduce`` runs: ``split`` (registry id), ``published`` (the
    ids of ``pipeline/data/published.json``'s tables whose methods and numbers on that split it sets beside
    ours), ``features`` (the folder of SynSE's ``ntu_results`` it reads) and a one-line ``title``."""

    split: str
    published: tuple[str, ...]
    features: str
    title: str


TABLES: dict[str, ReproTable] = {
    "synse-ntu60-55/5": ReproTable("synse:ntu60:55/5", ("smie-table2", "synse", "msf-logs"), "shift_5_r",
                                   "NTU-60 55/5 (SMIE Table 2, SynSE, MSF)"),
    "synse-ntu60-48/12": ReproTable("synse:ntu60:48/12", ("smie-table2", "synse", "msf-logs"), "shift_12_r",
                                    "NTU-60 48/12 (SMIE Table 2, SynSE, MSF)"),
    "synse-ntu120-110/10": ReproTable("synse:ntu120:110/10", ("smie-table2", "synse", "msf-logs"), "shift_10_r",
                                      "NTU-120 110/10 (SMIE Table 2, SynSE, MSF)"),
    "synse-ntu120-96/24": ReproTable("synse:ntu120:96/24", ("smie-table2", "synse", "msf-logs"), "shift_24_r",
                                     "NTU-120 96/24 (SMIE Table 2, SynSE, MSF)"),
}
"""Published tables ``smie reproduce TABLE`` runs on imported SynSE-layout features (docs/reproduce.md)."""

REPRO_PROTOCOLS: dict[str, Entry] = {
    "published": Entry(None, "the official code's recipe and selection: best unseen-test point (oracle)"),
    "honest": Entry(None, "the same recipe, the point selected on the validation folder"),
}
"""The two protocols ``smie reproduce`` runs every method under."""


def names(table: dict[str, Entry]) -> list[str]:
    """The names of one table, in registration order (for ``click.Choice`` and help texts)."""
    return list(table)


def resolve(ref: str) -> Any:
    """Import ``"module:attr"`` and return the attribute."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)
