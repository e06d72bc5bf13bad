"""The registry of names: every reference resolves, and the modules that implement the names agree with it."""
from __future__ import annotations

import subprocess
import sys

import pytest

from smie.pipeline import registry


def test_every_format_dataset_protocol_and_arch_is_the_implementations():
    from smie.pipeline.data.classes import DATASETS
    from smie.pipeline.data.partitions import PROTOCOLS
    from smie.pipeline.data.readers import READERS
    from smie.pipeline.visual.backbones import ARCHS
    from smie.prompts.importers import READERS as DESCRIPTION_READERS

    assert registry.names(registry.FORMATS) == list(READERS)
    assert registry.names(registry.DESCRIPTION_FORMATS) == list(DESCRIPTION_READERS)
    assert registry.names(registry.DATASETS) == list(DATASETS)
    assert registry.names(registry.PROTOCOLS) == list(PROTOCOLS)
    assert registry.names(registry.ARCHS) == list(ARCHS)
    for table, impl in ((registry.FORMATS, READERS), (registry.DESCRIPTION_FORMATS, DESCRIPTION_READERS),
                        (registry.ARCHS, ARCHS)):
        for name, entry in table.items():
            assert registry.resolve(entry.ref) is impl[name], name


def test_the_cli_offers_the_registered_names_and_imports_no_pipeline():
    """``smie --help`` reads the registry alone: no torch, no pipeline module."""
    code = ("import sys; from smie import cli; "
            "print(sorted(m for m in sys.modules if m.startswith(('torch', 'smie.pipeline.zsl', "
            "'smie.pipeline.data', 'smie.pipeline.visual'))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]", proc.stdout
    from click.testing import CliRunner

    from smie.cli import main

    for args, names in ((["prepare", "--help"], registry.FORMATS), (["pretrain-backbone", "--help"], registry.ARCHS),
                        (["compare", "--help"], registry.METHODS), (["fit-baseline", "--help"], registry.METHODS)):
        out = CliRunner().invoke(main, args, terminal_width=1000).output
        assert all(name in out for name in names), (args, out)


@pytest.mark.parametrize("name", list(registry.METHODS))
def test_every_method_reference_is_a_spec_of_that_name(name):
    from smie.pipeline.zsl.spec import MethodSpec

    spec = registry.resolve(registry.METHODS[name].ref)
    assert isinstance(spec, MethodSpec) and spec.name == name


def test_import_formats_are_the_implementations():
    from smie.pipeline.semantic.import_text_features import FORMATS as TEXT_FORMATS
    from smie.pipeline.visual.import_backbone import FORMATS as BACKBONE_FORMATS

    assert registry.names(registry.TEXT_FEATURE_FORMATS) == list(TEXT_FORMATS)
    assert registry.names(registry.BACKBONE_FORMATS) == list(BACKBONE_FORMATS)
    for name, entry in registry.TEXT_FEATURE_FORMATS.items():
        assert entry.ref is None or callable(registry.resolve(entry.ref)), name
