"""Stage two: zero-shot learning on cached tensors (SMIE, the baselines, their shared protocol).

Owns ``estimator.py`` (SMIE), ``baselines/``, ``fit.py`` (the training loop and the small method interface
``loss``/``finalize``/``scores``), ``protocol.py`` (validation-only selection, final test), ``evaluate.py``
(metrics), ``experiment.py`` (``fit-estimator`` and the driver every method runs through), ``stats.py``
(confidence intervals, paired tests), ``compare.py``, ``rundir.py``, ``report.py``, ``plots.py``.
May import ``smie.features``, ``smie.pipeline.data`` and ``smie.pipeline.device``; never ``visual/`` or
``semantic/``: the caches are its whole world. Inside it the protocol depends on ``fit.py`` only, never on the
experiment driver.
"""
