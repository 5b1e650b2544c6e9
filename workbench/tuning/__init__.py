"""Hyper-parameter studies on Optuna over any line (work in progress: the study spec).

| module | what |
| --- | --- |
| ``spec`` | the YAML study spec: base config, search space (conditional parameters), objective, sampler, pruner; validated with messages naming the key; ``suggest`` -> overrides |
| ``samplers`` | the spec's Optuna sampler (TPE, random, CMA-ES, grid) and pruner (median, hyperband, none) |
| ``storage`` | the default journal file under ``<runs>/studies/`` or an RDB URL; create / resume; a changed search space refused |

Not built yet (issue 14): trials as runs through the job manager with pruning reported by the
trainer, ``tune`` / ``tune best`` commands, the Tuning page, the PostgreSQL two-worker test.
"""
