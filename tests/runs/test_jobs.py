"""The job manager with real subprocesses (python -m workbench train --run-dir ...)."""
import os
import signal
import time

import pytest
import torch

from workbench.errors import RunStateError
from workbench.runs import JobManager, RunStore
from workbench.train.checkpoint import load_checkpoint


def wait_for(predicate, timeout_s, what):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def test_queue_kill_resume_matches_uninterrupted(toy_cfg, runs_dir):
    jobs = JobManager(RunStore(runs_dir), max_concurrent=1)
    settings = {"sleep_s": 0.1, "train.max_epochs": 4, "train.checkpoint_every": 3, "train.log_every": 2,
                "model.dropout": 0.2}
    ref = jobs.submit(toy_cfg(name="ref", **settings))
    victim = jobs.submit(toy_cfg(name="victim", **settings))
    assert jobs.refresh(ref)["state"] == "running" and jobs.refresh(victim)["state"] == "queued"

    # the finishing job starts the queued one itself
    wait_for(lambda: jobs.refresh(ref)["state"] == "done", 90, "the reference run to finish")
    wait_for(lambda: jobs.refresh(victim).get("step", 0) >= 10, 60, "the second run to pass step 10")

    os.kill(victim.read_status()["pid"], signal.SIGKILL)
    t0 = time.time()
    wait_for(lambda: jobs.refresh(victim)["state"] == "crashed", 10, "crash detection")
    assert time.time() - t0 < 10
    assert "process exited" in victim.read_status()["error"]

    jobs.resume(victim.id)
    wait_for(lambda: jobs.refresh(victim)["state"] == "done", 90, "the resumed run to finish")
    assert victim.read_status()["final"] == ref.read_status()["final"]
    ref_w, vic_w = load_checkpoint(ref.last_checkpoint)["model"], load_checkpoint(victim.last_checkpoint)["model"]
    assert all(torch.equal(ref_w[k], vic_w[k]) for k in ref_w)
    assert victim.read_status()["resume_count"] == 1


def test_stop_then_delete(toy_cfg, runs_dir):
    jobs = JobManager(RunStore(runs_dir))
    run = jobs.submit(toy_cfg(name="long", sleep_s=0.05, **{"train.max_epochs": 100}))
    wait_for(lambda: jobs.refresh(run).get("step", 0) >= 3, 60, "the run to start stepping")
    with pytest.raises(RunStateError, match="is running; stop it first"):
        jobs.delete(run.id)
    status = jobs.stop(run.id)
    assert status["state"] == "stopped" and status.get("error") is None  # clean SIGTERM exit
    assert load_checkpoint(run.last_checkpoint)["loop"]["step"] == status["step"]
    with pytest.raises(RunStateError, match="is stopped, not running"):
        jobs.stop(run.id)
    jobs.delete(run.id)
    assert not run.path.exists()


def test_failed_job_reports_the_error(toy_cfg, runs_dir):
    jobs = JobManager(RunStore(runs_dir))
    run = jobs.submit(toy_cfg(nan_at_step=2, **{"train.log_every": 1}))
    wait_for(lambda: jobs.refresh(run)["state"] == "failed", 60, "the NaN run to fail")
    assert "loss became nan" in run.read_status()["error"]
    assert "error: loss became nan" in run.log_path.read_text()


def test_stale_heartbeat_is_reported_not_killed(toy_cfg, runs_dir):
    jobs = JobManager(RunStore(runs_dir), stale_after_s=5)
    run = RunStore(runs_dir).create(toy_cfg())
    run.update_status(state="running", pid=os.getpid(), heartbeat=time.time() - 60)
    signals = []
    jobs._kill = lambda pid, sig: signals.append(sig)  # never signal the test process itself
    status = jobs.refresh(run)
    assert status["state"] == "running" and status["unresponsive"] is True
    assert status["heartbeat_age_s"] >= 60
    assert signals == [] and "unresponsive" not in run.read_status()  # reported, not persisted
    assert run.read_status()["state"] == "running"


def test_long_setup_is_not_killed_and_reports_its_phase(toy_cfg, runs_dir, monkeypatch):
    """A setup far longer than the stale limit (the heartbeat beats from the first second)."""
    monkeypatch.setenv("WORKBENCH_HEARTBEAT_S", "0.3")
    jobs = JobManager(RunStore(runs_dir), stale_after_s=2.0)
    run = jobs.submit(toy_cfg(setup_sleep_s=8.0, **{"train.max_epochs": 1}))
    seen_phases, t0 = set(), time.time()
    while time.time() - t0 < 90:
        status = jobs.refresh(run)  # polling is what used to SIGKILL the job
        assert not status.get("unresponsive"), status
        if status.get("phase"):
            seen_phases.add((status["phase"], status.get("phase_detail")))
        if status["state"] != "running":
            break
        time.sleep(0.25)
    assert status["state"] == "done", status
    assert ("setup", "toy setup") in seen_phases
    assert time.time() - t0 > 8  # the setup really ran past the 2 s stale limit


def test_bad_environment_fails_at_once(runs_dir, monkeypatch):
    from workbench.errors import ConfigError

    for value in ("abc", "0", "-1"):
        monkeypatch.setenv("WORKBENCH_MAX_JOBS", value)
        with pytest.raises(ConfigError, match=f"WORKBENCH_MAX_JOBS='{value}' is invalid: expected a whole number"):
            JobManager(RunStore(runs_dir))
    monkeypatch.setenv("WORKBENCH_MAX_JOBS", "3")
    assert JobManager(RunStore(runs_dir)).max_concurrent == 3
    monkeypatch.setenv("WORKBENCH_HEARTBEAT_S", "nan")
    with pytest.raises(ConfigError, match="WORKBENCH_HEARTBEAT_S"):
        JobManager(RunStore(runs_dir))
