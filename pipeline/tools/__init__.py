"""Commands that span the stages: ``smie quickstart`` (with its work directory), ``smie inspect``, ``smie
predict`` (backbone + stage-two run on raw files) and ``smie benchmark``, with their click commands
(``commands.py``) and the options every command shares (``cli_options.py``). May import every other folder;
nothing in ``data/``, ``visual/``, ``semantic/`` or ``zsl/`` imports it.
"""
