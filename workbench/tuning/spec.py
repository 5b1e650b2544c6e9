"""Study specs: a YAML file naming a base config, a search space over its dotted keys, the
objective, and how to search. Read with ``yaml.safe_load``; every problem is one
``ConfigError`` that names the key.

    name: projection-heads               # the study's name in its storage
    base: projection-demo                # a preset name or a YAML path (any kind)
    overrides: [train.max_epochs=3]      # applied to every trial (a tuning subset, fewer epochs)
    objective: {metric: val/r_mean, direction: maximize}
    n_trials: 20                         # 0 = until timeout
    timeout: 0                           # seconds; 0 = none
    n_jobs: 1                            # trials run in parallel
    sampler: {type: tpe, seed: 0}        # tpe | random | cmaes | grid
    pruner: {type: median, n_startup_trials: 3, n_warmup_steps: 1}   # median | hyperband | none
    space:
      train.lr: {type: float, low: 1.0e-5, high: 1.0e-2, log: true}
      model.type: {type: categorical, choices: [mlp, attention]}
      model.num_heads: {type: int, low: 2, high: 8, step: 2, when: {model.type: attention}}

``when`` makes a parameter conditional: it is sampled only when the named categorical
parameter (sampled before it) takes one of the given values. ``suggest(trial, spec)``
turns an Optuna trial into ``key=value`` overrides, parents first.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError

SAMPLERS = ("tpe", "random", "cmaes", "grid")
PRUNERS = ("median", "hyperband", "none")
DIRECTIONS = ("maximize", "minimize")
PARAM_TYPES = ("float", "int", "categorical")
TOP_KEYS = {"name", "base", "overrides", "objective", "n_trials", "timeout", "n_jobs", "sampler", "pruner", "space"}
PARAM_KEYS = {"float": {"type", "low", "high", "log", "step", "when"},
              "int": {"type", "low", "high", "log", "step", "when"},
              "categorical": {"type", "choices", "when"}}
SAMPLER_KEYS = {"type", "seed", "n_startup_trials"}
PRUNER_KEYS = {"type", "n_startup_trials", "n_warmup_steps", "min_resource", "reduction_factor"}


@dataclass(frozen=True)
class Param:
    key: str  # dotted config key, e.g. "train.lr"
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()
    when: dict[str, tuple] = field(default_factory=dict)  # parent key -> values that enable this one


@dataclass(frozen=True)
class StudySpec:
    name: str
    base: str
    objective: str
    direction: str
    space: tuple[Param, ...]  # parents before their children
    overrides: tuple[str, ...] = ()
    n_trials: int = 20
    timeout: float = 0.0
    n_jobs: int = 1
    sampler: dict = field(default_factory=lambda: {"type": "tpe"})
    pruner: dict = field(default_factory=lambda: {"type": "median"})

    def distributions(self) -> dict[str, Any]:
        """The Optuna distribution of every parameter (to compare with a stored study's)."""
        import optuna.distributions as d

        out = {}
        for p in self.space:
            if p.type == "float":
                out[p.key] = d.FloatDistribution(p.low, p.high, log=p.log, step=p.step)
            elif p.type == "int":
                out[p.key] = d.IntDistribution(p.low, p.high, log=p.log, step=p.step or 1)
            else:
                out[p.key] = d.CategoricalDistribution(p.choices)
        return out


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _number(value, where: str, integer: bool = False):
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    _need(ok and not isinstance(value, bool), f"{where} must be {'an integer' if integer else 'a number'}, "
                                              f"got {value!r}")
    return value


def _unknown(data: dict, allowed: set, where: str) -> None:
    extra = sorted(set(data) - allowed)
    _need(not extra, f"unknown key{'s' if len(extra) > 1 else ''} {extra} in {where}. Valid keys: {sorted(allowed)}")


def _param(key: str, data: Any) -> Param:
    where = f"space.{key}"
    _need(isinstance(data, dict), f"{where} must be a mapping such as {{type: float, low: 1e-4, high: 1e-2}}")
    kind = data.get("type")
    _need(kind in PARAM_TYPES, f"{where}.type must be one of {list(PARAM_TYPES)}, got {kind!r}")
    _unknown(data, PARAM_KEYS[kind], where)
    when = data.get("when") or {}
    _need(isinstance(when, dict), f"{where}.when must map a categorical parameter to its value(s)")
    when = {k: tuple(v) if isinstance(v, (list, tuple)) else (v,) for k, v in when.items()}
    if kind == "categorical":
        choices = data.get("choices")
        _need(isinstance(choices, list) and choices, f"{where}.choices must be a non-empty list")
        _need(len(set(map(repr, choices))) == len(choices), f"{where}.choices has duplicates")
        return Param(key, kind, choices=tuple(choices), when=when)
    integer = kind == "int"
    _need("low" in data and "high" in data, f"{where} needs low and high")
    low, high = _number(data["low"], f"{where}.low", integer), _number(data["high"], f"{where}.high", integer)
    _need(low < high, f"{where}: low ({low}) must be below high ({high})")
    log = data.get("log", False)
    _need(isinstance(log, bool), f"{where}.log must be true or false")
    _need(not log or low > 0, f"{where}: a log scale needs low > 0, got {low}")
    step = data.get("step")
    if step is not None:
        _number(step, f"{where}.step", integer)
        _need(step > 0, f"{where}.step must be > 0")
        _need(not log, f"{where}: step and log cannot both be set (Optuna)")
    return Param(key, kind, low=low if integer else float(low), high=high if integer else float(high), log=log,
                 step=step, when=when)


def _order(params: dict[str, Param]) -> tuple[Param, ...]:
    """Parents before children; every ``when`` names a categorical parameter with those values."""
    for p in params.values():
        for parent, values in p.when.items():
            _need(parent in params, f"space.{p.key}.when names '{parent}', which is not in the space")
            q = params[parent]
            _need(q.type == "categorical", f"space.{p.key}.when: '{parent}' must be a categorical parameter")
            bad = [v for v in values if v not in q.choices]
            _need(not bad, f"space.{p.key}.when: {bad} not among space.{parent}.choices {list(q.choices)}")
    done: list[Param] = []
    placed: set[str] = set()
    pending = dict(params)
    while pending:
        ready = [k for k, p in pending.items() if set(p.when) <= placed]
        _need(bool(ready), f"space: the 'when' conditions form a cycle among {sorted(pending)}")
        for k in ready:
            done.append(pending.pop(k))
            placed.add(k)
    return tuple(done)


def parse_spec(data: Any, source: str = "the study spec") -> StudySpec:
    """A validated StudySpec from the YAML's dict; the base config and every space key are
    checked against the base config's dataclass (an unknown key fails here, not in a trial)."""
    _need(isinstance(data, dict), f"{source} must be a mapping with base, objective and space")
    _unknown(data, TOP_KEYS, source)
    for key in ("name", "base", "objective", "space"):
        _need(key in data, f"{source} needs '{key}'")
    name, base = data["name"], data["base"]
    _need(isinstance(name, str) and name.strip() and "/" not in name, f"name must be a plain string, got {name!r}")
    _need(isinstance(base, str) and base, f"base must be a preset name or a YAML path, got {base!r}")
    objective = data["objective"]
    _need(isinstance(objective, dict), "objective must be {metric: val/..., direction: maximize|minimize}")
    _unknown(objective, {"metric", "direction"}, "objective")
    metric, direction = objective.get("metric"), objective.get("direction", "maximize")
    _need(isinstance(metric, str) and metric, "objective.metric must name a logged metric, e.g. val/r_mean")
    _need(direction in DIRECTIONS, f"objective.direction must be one of {list(DIRECTIONS)}, got {direction!r}")
    space = data["space"]
    _need(isinstance(space, dict) and space, "space must map dotted config keys to parameters")
    params = {str(k): _param(str(k), v) for k, v in space.items()}
    overrides = data.get("overrides") or []
    _need(isinstance(overrides, list) and all(isinstance(o, str) and "=" in o for o in overrides),
          "overrides must be a list of key=value strings")
    n_trials = _number(data.get("n_trials", 20), "n_trials", integer=True)
    timeout = _number(data.get("timeout", 0), "timeout")
    n_jobs = _number(data.get("n_jobs", 1), "n_jobs", integer=True)
    _need(n_trials >= 0 and timeout >= 0 and n_jobs >= 1, "n_trials and timeout must be >= 0, n_jobs >= 1")
    _need(n_trials or timeout, "set n_trials or timeout (both 0 would run forever)")
    sampler = data.get("sampler") or {"type": "tpe"}
    pruner = data.get("pruner") or {"type": "median"}
    for what, value, kinds, allowed in (("sampler", sampler, SAMPLERS, SAMPLER_KEYS),
                                        ("pruner", pruner, PRUNERS, PRUNER_KEYS)):
        _need(isinstance(value, dict), f"{what} must be a mapping such as {{type: {kinds[0]}}}")
        _unknown(value, allowed, what)
        _need(value.get("type") in kinds, f"{what}.type must be one of {list(kinds)}, got {value.get('type')!r}")
    ordered = _order(params)
    if sampler["type"] == "grid":
        _need(all(p.type == "categorical" or p.step is not None for p in ordered),
              "sampler.type grid needs every parameter categorical or with a step")
    if sampler["type"] == "cmaes":
        _need(not any(p.when for p in ordered), "sampler.type cmaes cannot sample conditional parameters; use tpe")
    spec = StudySpec(name.strip(), base, metric, direction, ordered, tuple(overrides), int(n_trials), float(timeout),
                     int(n_jobs), dict(sampler), dict(pruner))
    check_against_base(spec)
    return spec


def resolve_spec(name_or_path: str | Path) -> Path:
    """A study spec YAML path, or a line's study preset (``configs/studies/<name>.yaml``)."""
    from workbench import lines

    return lines.resolve_config(name_or_path, folder="studies")


def load_spec(name_or_path: str | Path) -> StudySpec:
    from workbench.config import read_yaml

    path = resolve_spec(name_or_path)
    return parse_spec(read_yaml(path), str(path))


def base_data(spec: StudySpec) -> dict:
    from workbench import lines
    from workbench.config import read_yaml

    return read_yaml(lines.resolve_config(spec.base))


def check_against_base(spec: StudySpec) -> None:
    """Build the base config with the overrides and one value of every parameter: an
    unknown key or a value its field refuses fails now, naming the key."""
    from workbench.experiments import build_config

    data = base_data(spec)
    by_key = {p.key: p for p in spec.space}

    def enabling(p: Param) -> list[str]:  # the parents' values under which p is sampled, ancestors first
        out = []
        for parent, values in p.when.items():
            out += enabling(by_key[parent]) + [f"{parent}={values[0]}"]
        return out

    for p in spec.space:
        for value in (p.choices if p.type == "categorical" else (p.low, p.high)):
            try:
                build_config(data, list(spec.overrides) + enabling(p) + [f"{p.key}={value}"])
            except ConfigError as exc:
                raise ConfigError(f"space.{p.key} = {value!r}: {exc}") from None


def suggest(trial, spec: StudySpec) -> list[str]:
    """``key=value`` overrides for one trial: each parameter whose ``when`` holds, in order."""
    chosen: dict[str, Any] = {}
    for p in spec.space:
        if any(chosen.get(parent, object()) not in values for parent, values in p.when.items()):
            continue
        if p.type == "float":
            chosen[p.key] = trial.suggest_float(p.key, p.low, p.high, log=p.log, step=p.step)
        elif p.type == "int":
            chosen[p.key] = trial.suggest_int(p.key, p.low, p.high, log=p.log, step=p.step or 1)
        else:
            chosen[p.key] = trial.suggest_categorical(p.key, list(p.choices))
    return [f"{k}={v}" for k, v in chosen.items()]
