"""Stage two: zero-shot learning on cached tensors (SMIE, the baselines, their shared protocol).

The method contract: ``spec.py`` (``MethodSpec``, what a method declares) and ``method.py`` (the ``Method``
protocol it implements: ``loss``/``finalize``/``scores``/``optimizer``/``gzsl_gate``). The methods:
``estimator.py`` (SMIE), ``fusion.py``, ``baselines/``. Around them: ``fit.py`` (the training loop, in optimiser
steps), ``protocol.py`` (validation-only selection, final test), ``results.py`` (typed results, ``metrics.json``,
the one metrics schema), ``runner.py`` (the driver every method runs through), ``experiment.py``
(``fit-estimator``), ``compute.py`` (the CPU speed paths, switched by explicit config), ``evaluate.py`` (metrics),
``stats.py`` (confidence intervals, paired tests), ``compare.py``, ``grid.py``, ``rundir.py``, ``report.py``,
``plots.py``. May import ``smie.features``, ``smie.pipeline.data``, ``smie.pipeline.device`` and
``smie.pipeline.registry``; never ``visual/`` or ``semantic/``: the caches are its whole world. Inside it the
protocol depends on the contract and the loop only, never on the driver.
"""
