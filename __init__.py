"""smie: zero-shot skeleton-based action recognition (SMIE, MSF and baselines) as a two-stage caching pipeline.

Installed as one distribution namespace (``setup.cfg`` maps the repository's top level onto ``smie``):
``smie.cli`` (the click commands), ``smie.features`` (the HDF5 caches), ``smie.pipeline`` (one folder per
stage of the data flow) and ``smie.prompts`` (the LLM side). ``python -m smie`` runs the CLI.
"""
__version__ = "0.1.0"
