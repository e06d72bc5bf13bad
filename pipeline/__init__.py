"""The steps of smie, one folder per stage of the data flow (docs/architecture.md draws it).

- ``data/``: joint layouts, class tables, splits and partitions, readers, preprocessing, ``smie prepare`` and
  the embedded synthetic set. Imports ``smie.features`` only.
- ``visual/``: stage one, visual side: backbones, ``pretrain-backbone``, keyframe masking, ``extract-visual``.
- ``semantic/``: stage one, text side: the sentence encoder and ``embed-labels`` (``smie.prompts`` is the LLM
  side that writes descriptions).
- ``zsl/``: stage two: the SMIE estimator, the baselines, the shared training loop, the validation protocol,
  metrics, run directories, ``fit-estimator``, ``fit-baseline``, ``compare``, ``report``. It reads the caches
  (``smie.features``) and the split/partition facts of ``data/`` and never imports ``visual/`` or
  ``semantic/`` (``tests/test_imports.py`` checks it).
- ``tools/``: commands that span the stages: ``quickstart``, ``inspect``, ``predict``, the benchmark.
- ``device.py``: the one ``--device`` resolver.
"""
