"""The Optuna sampler and pruner a study spec names."""
from __future__ import annotations

from workbench.tuning.spec import StudySpec


def make_sampler(spec: StudySpec):
    import optuna

    s = spec.sampler
    seed = s.get("seed")
    if s["type"] == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if s["type"] == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=s.get("n_startup_trials", 1))
    if s["type"] == "grid":  # the grid's points are enqueued by open_study (grid_points); ask/tell-safe
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=s.get("n_startup_trials", 10))


def grid_points(spec: StudySpec) -> list[dict]:
    """Every point of a grid spec (categorical choices x stepped ranges), in order.
    (Optuna's GridSampler calls study.stop() when the grid is done, which ask/tell cannot take.)"""
    import itertools

    axes = []
    for p in spec.space:
        if p.type == "categorical":
            axes.append([(p.key, v) for v in p.choices])
        else:
            n = int(round((p.high - p.low) / p.step))
            axes.append([(p.key, p.low + i * p.step) for i in range(n + 1)])
    return [dict(point) for point in itertools.product(*axes)]


def make_pruner(spec: StudySpec | dict):
    """The pruner of a spec, or of its ``pruner`` mapping (what a trial's run is told)."""
    import optuna

    p = spec if isinstance(spec, dict) else spec.pruner
    if p["type"] == "none":
        return optuna.pruners.NopPruner()
    if p["type"] == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=p.get("min_resource", 1),
                                              reduction_factor=p.get("reduction_factor", 3))
    return optuna.pruners.MedianPruner(n_startup_trials=p.get("n_startup_trials", 5),
                                       n_warmup_steps=p.get("n_warmup_steps", 0))
