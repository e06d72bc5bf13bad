"""Baselines trained on the same cached features as SMIE, so every published comparison reruns on identical inputs.

One module per method, each ending with its :class:`~smie.pipeline.zsl.spec.MethodSpec` (``SPEC``), registered by
name in :mod:`smie.pipeline.registry`; ``run.py`` is ``smie fit-baseline``, ``pos.py`` ``smie pos-texts``, and
``vae.py``, ``generative.py``, ``losses.py`` the pieces several baselines share.
"""
