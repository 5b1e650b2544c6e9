"""Where studies live: Optuna's storage is the only state a study's workers share.

Default: a JournalStorage with a file backend, ``<runs>/studies/<name>.journal`` — an
append-only log that several local processes write safely through a file lock (Optuna's own
advice for parallel trials on one machine, where SQLite answers "database is locked").
Any Optuna RDB URL (``postgresql://user@host:port/db``, ``sqlite:///...``) shares one study
between machines.

``open_study(spec, storage)`` creates the study or resumes it; a search space that differs
from the stored trials' fails at once, naming the parameter and suggesting a new name.
"""
from __future__ import annotations

from pathlib import Path

from workbench.errors import ConfigError, WorkbenchError
from workbench.runs.store import default_root
from workbench.tuning.spec import StudySpec


def default_storage_path(name: str, runs_root: str | Path | None = None) -> Path:
    return Path(runs_root or default_root()) / "studies" / f"{name}.journal"


def make_storage(url: str | None, name: str, runs_root: str | Path | None = None):
    """An Optuna storage: the default journal file, a ``journal:PATH``, or an RDB URL."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if not url or url.startswith("journal:"):
        path = Path(url.split(":", 1)[1]) if url else default_storage_path(name, runs_root)
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise ConfigError(f"storage must be an Optuna RDB URL (postgresql://..., sqlite:///...) or journal:PATH, "
                          f"got {url!r}")
    try:
        # No heartbeat: Optuna beats only inside Study.optimize; the driver (ask / tell) tells
        # every trial itself and adopts those of a killed driver (see driver.py).
        return optuna.storages.RDBStorage(url)
    except Exception as exc:  # a driver missing, a server down, bad credentials: one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        cause = exc.__cause__ or exc.__context__
        if cause is not None and str(cause).strip() and str(cause).strip() not in first:
            first += f" ({type(cause).__name__}: {str(cause).strip().splitlines()[0]})"
        raise WorkbenchError(f"cannot open the study storage {url}: {first}") from None


def check_space(study, spec: StudySpec) -> None:
    """Every stored trial's parameters must have the spec's distribution (Optuna refuses a
    changed categorical space only when it samples, minutes into a study)."""
    wanted = spec.distributions()
    for trial in study.get_trials(deepcopy=False):
        for key, dist in trial.distributions.items():
            if key not in wanted:
                raise ConfigError(f"study '{spec.name}' has trials with parameter '{key}', which the spec's space "
                                  f"no longer has; name a new study (e.g. name: {spec.name}-2)")
            if dist != wanted[key]:
                raise ConfigError(f"study '{spec.name}' stored {key} as {dist}, the spec now says {wanted[key]}; "
                                  f"a changed search space needs a new study name (e.g. name: {spec.name}-2)")


def open_study(spec: StudySpec, storage_url: str | None = None, runs_root: str | Path | None = None,
               create: bool = True):
    """The study of ``spec`` in its storage: created, or resumed after checking its space."""
    import optuna

    from workbench.tuning.samplers import make_pruner, make_sampler

    storage = make_storage(storage_url, spec.name, runs_root)
    names = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    if spec.name in names:
        stored = names[spec.name].direction.name.lower()
        if stored != spec.direction:
            raise ConfigError(f"study '{spec.name}' is stored with direction {stored}, the spec says "
                              f"{spec.direction}; name a new study (e.g. name: {spec.name}-2)")
    elif not create:
        raise WorkbenchError(f"no study '{spec.name}' in {storage_url or default_storage_path(spec.name, runs_root)}")
    study = optuna.create_study(study_name=spec.name, storage=storage, direction=spec.direction,
                                sampler=make_sampler(spec), pruner=make_pruner(spec), load_if_exists=True)
    check_space(study, spec)
    if spec.sampler["type"] == "grid":
        from workbench.tuning.samplers import grid_points

        for point in grid_points(spec):  # a resumed study skips the points it already has
            study.enqueue_trial(point, skip_if_exists=True)
    study.set_user_attr("objective", spec.objective)
    study.set_user_attr("base", spec.base)
    return study
