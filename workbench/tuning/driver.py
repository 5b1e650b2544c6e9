"""The study driver: each trial is a run of the run store, launched by the job manager.

For every trial: ``study.ask()``, the spec's overrides + the sampled ones -> a run config
(named ``<study>-t<number>``), the run created with ``trial.json`` (its link back, see
``report``) and started by the ``JobManager`` like any run; the driver waits for its end and
tells the study: ``done`` -> the objective from the run's final metrics, ``pruned`` -> PRUNED,
``failed`` / ``crashed`` / ``stopped`` -> FAIL with the run's error kept as a user attribute;
the study goes on either way. ``n_jobs`` trials run at once (threads, each waiting on its
own job process). A rerun of the same spec resumes the study: trials already finished count
towards ``n_trials``.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.tuning.report import TRIAL_FILE
from workbench.tuning.spec import StudySpec, base_data, suggest
from workbench.tuning.storage import default_storage_path, open_study

FINISHED = ("done", "pruned", "failed", "crashed", "stopped")


def _storage_ref(storage_url: str | None, spec: StudySpec, runs_root) -> str:
    """How a trial's run reopens the study (an absolute journal path or the RDB URL)."""
    return storage_url or f"journal:{default_storage_path(spec.name, runs_root).resolve()}"


def _finished_count(study) -> int:
    import optuna

    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return sum(t.state in done for t in study.get_trials(deepcopy=False))


def launch_trial(study, spec: StudySpec, manager, storage_ref: str):
    """Ask a trial, create its run (with trial.json) and queue it; (trial, run)."""
    from workbench.experiments import build_config

    trial = study.ask()
    overrides = list(spec.overrides) + suggest(trial, spec) + [f"name={spec.name}-t{trial.number}"]
    cfg = build_config(base_data(spec), overrides)
    run = manager.store.create(cfg)
    (run.path / TRIAL_FILE).write_text(json.dumps({
        "storage": storage_ref, "study": spec.name, "trial_id": trial._trial_id, "number": trial.number,
        "metric": spec.objective, "pruner": spec.pruner}))
    run.update_status(study=spec.name, trial=trial.number)
    trial.set_user_attr("run_id", run.id)
    manager.schedule()
    return trial, run


def finish_trial(study, spec: StudySpec, trial, status: dict) -> str:
    """Tell the study how the trial's run ended; the Optuna state's name."""
    import optuna

    state = status.get("state")
    if state == "done":
        value = (status.get("final") or {}).get(spec.objective)
        if value is None:
            trial.set_user_attr("error", f"the run logged no '{spec.objective}'")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return "FAIL"
        study.tell(trial, float(value))
        return "COMPLETE"
    if state == "pruned":
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return "PRUNED"
    trial.set_user_attr("error", status.get("error") or f"the run ended {state}")
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return "FAIL"


def run_study(spec: StudySpec, storage_url: str | None = None, runs_root=None, manager=None,
              poll_s: float = 0.5) -> dict:
    """Run the spec's trials (resuming its study) until n_trials have finished or the timeout
    passes; a summary of the study."""
    from workbench.runs import RunStore
    from workbench.runs.jobs import JobManager

    study = open_study(spec, storage_url, runs_root)
    manager = manager or JobManager(RunStore(runs_root), max_concurrent=spec.n_jobs)
    ref = _storage_ref(storage_url, spec, runs_root)
    start, lock, errors = time.monotonic(), threading.Lock(), []
    claimed = {"n": _finished_count(study)}

    def more() -> bool:
        with lock:
            if spec.timeout and time.monotonic() - start > spec.timeout:
                return False
            if spec.n_trials and claimed["n"] >= spec.n_trials:
                return False
            claimed["n"] += 1
            return True

    def worker():
        try:
            while more():
                trial, run = launch_trial(study, spec, manager, ref)
                while True:
                    status = manager.refresh(run)
                    if status.get("state") in FINISHED:
                        break
                    if status.get("state") == "queued":
                        manager.schedule()
                    time.sleep(poll_s)
                finish_trial(study, spec, trial, status)
        except Exception as exc:  # a broken driver thread must not hang the others
            errors.append(exc)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(spec.n_jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0] if isinstance(errors[0], WorkbenchError) else WorkbenchError(
            f"the study driver failed: {type(errors[0]).__name__}: {errors[0]}")
    return summary(study)


def summary(study) -> dict:
    trials = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    out = {"study": study.study_name, "trials": len(trials), "states": states}
    try:
        best = study.best_trial
        out.update(best_value=best.value, best_params=best.params, best_trial=best.number,
                   best_run=best.user_attrs.get("run_id"))
    except ValueError:  # no completed trial yet
        pass
    return out


def storage_hint(spec: StudySpec, runs_root=None) -> Path:
    return default_storage_path(spec.name, runs_root)


def write_best_config(spec: StudySpec, storage_url: str | None = None, runs_root=None) -> Path:
    """``<runs>/studies/<name>.best_config.yaml``: the base config with the best trial's
    parameters, resolved: the full run (the spec's per-trial overrides are left out)."""
    import yaml

    from workbench.config import to_dict
    from workbench.experiments import build_config

    study = open_study(spec, storage_url, runs_root, create=False)
    try:
        best = study.best_trial
    except ValueError:
        raise WorkbenchError(f"study '{spec.name}' has no completed trial yet") from None
    # the base config and the best parameters; not the per-trial overrides (a tuning subset, fewer epochs)
    overrides = [f"{k}={v}" for k, v in best.params.items()] + [f"name={spec.name}-best"]
    cfg = build_config(base_data(spec), overrides)
    out = default_storage_path(spec.name, runs_root).with_suffix(".best_config.yaml")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return out
