"""The study driver: each trial is a run of the run store, launched by the job manager.

For every trial: ``study.ask()``, the spec's overrides + the sampled ones -> a run config
(named ``<study>-t<number>``), the run created with ``trial.json`` (its link back, see
``report``) and started by the ``JobManager`` like any run; the driver waits for its end and
tells the study: ``done`` -> the objective from the run's final metrics, ``pruned`` -> PRUNED,
``failed`` / ``crashed`` / ``stopped`` -> FAIL with the run's error kept as a user attribute;
the study goes on either way. ``n_jobs`` trials run at once (threads, each waiting on its
own job process).

``n_trials`` is the study's total over all its workers: a worker asks for a new trial only
while the storage holds fewer (finished or running), so concurrent workers on several
machines overshoot by at most one trial each.

The driver process is recorded in ``<runs>/studies/<name>.status.json`` (state, pid, spec,
storage, summary); SIGTERM (``stop_study``, the Tuning page's Stop) stops its running trials
(each run checkpoints, the trial is told FAIL "stopped with the study") and asks no more. A
rerun resumes the study: trials already finished count towards ``n_trials``, and a trial
left RUNNING by a driver on this machine that was killed is adopted: if its run is still
going the new driver waits for it, if it ended meanwhile it is told how, if its run is gone
it is told FAIL.
"""
from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from workbench.errors import NotFoundError, RunStateError, WorkbenchError
from workbench.io import write_json
from workbench.runs.jobs import pid_alive, process_start_time
from workbench.tuning.report import TRIAL_FILE
from workbench.tuning.spec import StudySpec, base_data, suggest
from workbench.tuning.storage import default_storage_path, open_study

FINISHED = ("done", "pruned", "failed", "crashed", "stopped")
STOPPED_ERROR = "stopped with the study"

def _storage_ref(storage_url: str | None, spec: StudySpec, runs_root) -> str:
    """How a trial's run reopens the study (an absolute journal path or the RDB URL)."""
    return storage_url or f"journal:{default_storage_path(spec.name, runs_root).resolve()}"


def _finished_count(study) -> int:
    import optuna

    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return sum(t.state in done for t in study.get_trials(deepcopy=False))


def launch_trial(study, spec: StudySpec, manager, storage_ref: str, driver: str | None = None):
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
    trial.set_user_attr("driver", driver or _driver_id())
    trial.set_user_attr("runs_root", str(manager.store.root.resolve()))
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


def studies_dir(runs_root=None) -> Path:
    return default_storage_path("x", runs_root).parent


def status_path(name: str, runs_root=None) -> Path:
    return studies_dir(runs_root) / f"{name}.status.json"


def log_path(name: str, runs_root=None) -> Path:
    return studies_dir(runs_root) / f"{name}.log"


def read_study_status(name: str, runs_root=None) -> dict:
    """The driver's status; ``running`` whose process is gone reads as ``crashed``."""
    path = status_path(name, runs_root)
    try:
        status = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    if status.get("state") in ("starting", "running") and status.get("host") == socket.gethostname() \
            and status.get("pid") and not pid_alive(status.get("pid"), status.get("pid_start")):
        status = json.loads(path.read_text())  # it may have finished between the two reads
        if status.get("state") in ("starting", "running"):
            status.update(state="crashed", error=status.get("error") or "the study process exited without a "
                          f"final status; see {log_path(name, runs_root)}")
    return status


def _write_status(name: str, runs_root, **fields) -> dict:
    path = status_path(name, runs_root)
    try:
        status = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        status = {}
    status.update(fields)
    write_json(path, status)
    return status


def _driver_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{process_start_time(os.getpid())}"


def _dead_here(driver: str | None) -> bool:
    """True when ``driver`` (host:pid:start) was a process on this machine that is gone."""
    if not driver or driver.count(":") < 2:
        return False
    host, pid, start = driver.rsplit(":", 2)
    if host != socket.gethostname():
        return False  # another machine's worker: not ours to judge
    return not pid_alive(int(pid), None if start == "None" else int(start))


def _orphans(study, root: Path) -> list:
    """RUNNING trials whose driver on this machine, over this runs folder, is gone (a killed
    study process)."""
    import optuna

    root = str(root.resolve())
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    return [t for t in running if _dead_here(t.user_attrs.get("driver")) and t.user_attrs.get("runs_root") == root]


@contextmanager
def _adoption_lock(name: str, runs_root):
    """One driver at a time looks for orphans (two drivers restarted at once must not both
    adopt a trial: the first re-signs it with its own live driver id)."""
    path = studies_dir(runs_root) / f".{name}.adopt.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_study(spec: StudySpec, storage_url: str | None = None, runs_root=None, manager=None,
              poll_s: float = 0.2, spec_path: str | Path | None = None) -> dict:
    """Run the spec's trials (resuming its study) until n_trials are in the storage, the
    timeout passes or SIGTERM arrives; a summary of the study."""
    import optuna

    from workbench.runs import RunStore
    from workbench.runs.jobs import JobManager

    study = open_study(spec, storage_url, runs_root)
    zygote = None
    if manager is None:
        from workbench.runs import zygote as warm

        zygote = warm.Zygote() if warm.enabled() else None  # trials start warm: torch imported once
        manager = JobManager(RunStore(runs_root), max_concurrent=spec.n_jobs, launcher=zygote)
    ref = _storage_ref(storage_url, spec, runs_root)
    start, lock, errors, stop = time.monotonic(), threading.Lock(), [], threading.Event()
    counted = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL,
               optuna.trial.TrialState.RUNNING)
    driver = _driver_id()
    _write_status(spec.name, runs_root, state="running", pid=os.getpid(), pid_start=process_start_time(os.getpid()),
                  host=socket.gethostname(), spec=str(Path(spec_path).resolve()) if spec_path else None,
                  storage=storage_url, objective=spec.objective, direction=spec.direction, n_trials=spec.n_trials,
                  started=time.time(), ended=None, error=None)

    def next_trial():
        with lock:
            if stop.is_set() or (spec.timeout and time.monotonic() - start > spec.timeout):
                return None
            if spec.n_trials and len(study.get_trials(deepcopy=False, states=counted)) >= spec.n_trials:
                return None
            return launch_trial(study, spec, manager, ref, driver)

    def follow(trial, run):
        while True:
            status = manager.refresh(run)
            if status.get("state") in FINISHED:
                break
            if stop.is_set():
                try:
                    status = manager.stop(run.id)
                except RunStateError:  # it ended on its own meanwhile
                    status = manager.refresh(run)
                if status.get("state") == "stopped":
                    status = {**status, "error": STOPPED_ERROR}
                break
            if status.get("state") == "queued":
                manager.schedule()
            time.sleep(poll_s)
        finish_trial(study, spec, trial, status)

    def guarded(fn, *args):
        try:
            fn(*args)
        except Exception as exc:  # a broken driver thread must not hang the others
            errors.append(exc)

    def worker():
        while (launched := next_trial()) is not None:
            follow(*launched)

    with _adoption_lock(spec.name, runs_root):
        adopted = [adopt(study, spec, manager, t, driver) for t in _orphans(study, manager.store.root)]
    threads = [threading.Thread(target=guarded, args=(follow, trial, run), daemon=True)
               for trial, run in adopted if run is not None]
    threads += [threading.Thread(target=guarded, args=(worker,), daemon=True) for _ in range(spec.n_jobs)]
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():  # join with a timeout so the signal handler runs promptly
                t.join(0.5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if zygote is not None:
            zygote.close()
    out = summary(study)
    if errors:
        exc = errors[0] if isinstance(errors[0], WorkbenchError) else WorkbenchError(
            f"the study driver failed: {type(errors[0]).__name__}: {errors[0]}")
        _write_status(spec.name, runs_root, state="failed", error=str(exc), ended=time.time(), summary=out)
        raise exc
    _write_status(spec.name, runs_root, state="stopped" if stop.is_set() else "done", ended=time.time(), summary=out)
    return out


def adopt(study, spec: StudySpec, manager, frozen, driver: str):
    """A trial left RUNNING by a killed driver: (trial, run) to follow while its run goes on,
    or (trial, None) once it has been told how its run ended (or FAIL when the run is gone)."""
    import optuna

    trial = optuna.trial.Trial(study, frozen._trial_id)
    trial.set_user_attr("driver", driver)
    try:
        run = manager.store.get(frozen.user_attrs.get("run_id") or "")
    except NotFoundError:
        trial.set_user_attr("error", "its study process was killed and its run is gone")
        study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
        return trial, None
    status = manager.refresh(run)
    if status.get("state") in FINISHED:
        finish_trial(study, spec, trial, status)
        return trial, None
    return trial, run


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


# -- the study as a background process (the Tuning page) ---------------------------------


def list_studies(runs_root=None) -> list[str]:
    """Studies under ``<runs>/studies/``: every journal or driver status there."""
    folder = studies_dir(runs_root)
    if not folder.is_dir():
        return []
    names = {p.name[: -len(".status.json")] for p in folder.glob("*.status.json")}
    names |= {p.stem for p in folder.glob("*.journal")}
    return sorted(names)


def launch_study(spec_path: str | Path, runs_root=None, storage_url: str | None = None) -> dict:
    """Start ``python -m workbench tune SPEC`` as a detached process (it resumes the study if
    it exists); the spec is checked here first so a bad one fails now, not in the process."""
    from workbench.runs.store import default_root
    from workbench.tuning.spec import load_spec

    spec = load_spec(spec_path)
    if read_study_status(spec.name, runs_root).get("state") in ("starting", "running"):
        raise RunStateError(f"study '{spec.name}' is already running; stop it first")
    open_study(spec, storage_url, runs_root)  # create it (or refuse a changed space) before the process starts
    root = Path(runs_root or default_root()).resolve()
    cmd = [sys.executable, "-m", "workbench", "tune", str(Path(spec_path).resolve()), "--runs", str(root)]
    if storage_url:
        cmd += ["--storage", storage_url]
    fields = dict(host=socket.gethostname(), spec=str(Path(spec_path).resolve()), storage=storage_url,
                  objective=spec.objective, direction=spec.direction, n_trials=spec.n_trials, started=time.time(),
                  ended=None, error=None)
    _write_status(spec.name, runs_root, state="starting", pid=None, pid_start=None, **fields)
    log = log_path(spec.name, runs_root)
    with open(log, "ab") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if read_study_status(spec.name, runs_root).get("state") == "starting":  # the process has not written yet
        _write_status(spec.name, runs_root, pid=proc.pid, pid_start=process_start_time(proc.pid))
    return read_study_status(spec.name, runs_root)


def stop_study(name: str, runs_root=None, timeout_s: float = 60.0) -> dict:
    """SIGTERM the study's driver: its running trials stop (checkpointed, told FAIL "stopped
    with the study") and no new one starts. Waits up to ``timeout_s``; the driver's status."""
    status = read_study_status(name, runs_root)
    if status.get("state") not in ("starting", "running"):
        raise RunStateError(f"study '{name}' is {status.get('state') or 'not started'}, not running")
    if status.get("host") != socket.gethostname():
        raise RunStateError(f"study '{name}' runs on {status.get('host')}; stop it there")
    try:
        os.kill(status["pid"], signal.SIGTERM)
    except ProcessLookupError:
        return read_study_status(name, runs_root)
    deadline = time.time() + timeout_s
    while time.time() < deadline and pid_alive(status["pid"], status.get("pid_start")):
        time.sleep(0.2)
    return read_study_status(name, runs_root)
