"""The study as a process: killed (SIGKILL) mid-trial and rerun, it adopts the trial whose
run is still going instead of losing or repeating it; stopped (SIGTERM, as the Tuning page
does), its running trial checkpoints and is told FAIL, and a rerun goes on with new trials."""
import signal
import subprocess
import sys

import optuna
import yaml

from tests.runs.test_jobs import wait_for
from workbench.paths import REPO_ROOT
from workbench.runs import RunStore
from workbench.tuning.driver import launch_study, read_study_status, stop_study
from workbench.tuning.storage import make_storage


def write_spec(tmp_path, name, n_trials, sleep_s):
    base = tmp_path / "toy.yaml"
    base.write_text(yaml.safe_dump({"kind": "toy", "train": {"device": "cpu", "max_epochs": 2}}))
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(yaml.safe_dump({
        "name": name, "base": str(base), "overrides": [f"sleep_s={sleep_s}"],
        "objective": {"metric": "val/loss", "direction": "minimize"}, "n_trials": n_trials,
        "sampler": {"type": "random", "seed": 0}, "pruner": {"type": "none"},
        "space": {"train.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}}}))
    return spec


def load(name, runs):
    return optuna.load_study(study_name=name, storage=make_storage(None, name, runs))


def running_trial_run(name, runs):
    """The run of the study's RUNNING trial once its training has started."""
    store = RunStore(runs)
    if not (runs / "studies" / f"{name}.journal").is_file():
        return None
    try:
        trials = load(name, runs).get_trials(deepcopy=False)
    except KeyError:  # the study is not created yet
        return None
    for t in trials:
        if t.state.name == "RUNNING" and t.user_attrs.get("run_id"):
            run = store.get(t.user_attrs["run_id"])
            if run.read_status().get("step", 0) >= 1:
                return t.number, run
    return None


def test_killed_study_process_resumes_and_adopts_its_running_trial(tmp_path):
    runs = tmp_path / "runs"
    spec = write_spec(tmp_path, "killed", n_trials=3, sleep_s=0.3)
    cmd = [sys.executable, "-m", "workbench", "tune", str(spec), "--runs", str(runs)]
    first = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    number, run = wait_for(lambda: running_trial_run("killed", runs), 120, "a trial's run to train")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert read_study_status("killed", runs)["state"] == "crashed"
    assert run.read_status()["state"] == "running"  # the trial's job outlives its study process
    again = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    trials = load("killed", runs).get_trials(deepcopy=False)
    assert [t.number for t in trials] == [0, 1, 2] and {t.state.name for t in trials} == {"COMPLETE"}
    adopted = trials[number]
    assert adopted.user_attrs["run_id"] == run.id  # the same run, followed to its end, not launched again
    assert adopted.value == run.read_status()["final"]["val/loss"]
    assert len({t.user_attrs["run_id"] for t in trials}) == 3 and len(RunStore(runs).list()) == 3
    assert read_study_status("killed", runs)["state"] == "done"


def test_stop_then_resume_from_the_page_functions(tmp_path):
    runs = tmp_path / "runs"
    spec = write_spec(tmp_path, "stopped", n_trials=2, sleep_s=0.2)
    status = launch_study(spec, runs)
    assert status["state"] in ("starting", "running") and status["pid"]
    number, run = wait_for(lambda: running_trial_run("stopped", runs), 120, "a trial's run to train")
    out = stop_study("stopped", runs)
    assert out["state"] == "stopped" and out["summary"]["states"] == {"FAIL": 1}
    stopped = load("stopped", runs).trials[number]
    assert stopped.user_attrs["error"] == "stopped with the study"
    assert run.read_status()["state"] == "stopped" and run.last_checkpoint.is_file()
    launch_study(spec, runs)  # resume: the stopped trial counts, one more runs
    wait_for(lambda: read_study_status("stopped", runs)["state"] == "done", 120, "the resumed study to finish")
    states = [t.state.name for t in load("stopped", runs).trials]
    assert states == ["FAIL", "COMPLETE"]
    log = (runs / "studies" / "stopped.log").read_text()
    assert "Traceback" not in log and '"trials": 2' in log
