"""Hyper-parameter studies on Optuna over any line (work in progress: the study spec).

| module | what |
| --- | --- |
| ``spec`` | the YAML study spec: base config, search space (conditional parameters), objective, sampler, pruner; validated with messages naming the key; ``suggest`` -> overrides |
| ``samplers`` | the spec's Optuna sampler (TPE, random, CMA-ES, grid) and pruner (median, hyperband, none) |
| ``storage`` | the default journal file under ``<runs>/studies/`` or an RDB URL; create / resume; a changed search space refused |
| ``report`` | a trial's run reports its objective at every validation (``trial.json`` in the run); the pruner may end it as ``pruned`` |
| ``driver`` | ``run_study``: each trial a run launched by the job manager, told COMPLETE / PRUNED / FAIL from how it ended; ``n_jobs`` at once; resumes; ``write_best_config`` |

Commands: ``python -m workbench tune SPEC [--storage URL] [--worker]``, ``tune best SPEC [--launch]``.
Not built yet (issue 14): presets per line, the Tuning page, the kill-and-resume test of the
study process, the PostgreSQL two-worker test, the bench.
"""
