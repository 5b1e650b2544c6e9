"""Warm job starts: a job forked by the zygote is a real job (its own session, its log, its
status, stop -> checkpoint, resume), outlives the zygote, and starts faster than a cold one."""
import os
import time

import pytest

from workbench.errors import WorkbenchError
from workbench.runs import RunStore
from workbench.runs.jobs import JobManager, pid_alive
from workbench.runs.zygote import Zygote, enabled


def wait(manager, run, states, timeout_s=120):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        status = manager.refresh(run)
        if status.get("state") in states:
            return status
        time.sleep(0.1)
    raise AssertionError(f"run {run.id} still {status.get('state')}: {run.log_tail(20)}")


def test_a_forked_job_is_a_real_job_and_outlives_the_zygote(tmp_path, toy_cfg):
    zygote = Zygote()
    try:
        manager = JobManager(RunStore(tmp_path), launcher=zygote)
        run = manager.submit(toy_cfg(**{"train.max_epochs": 2}))
        status = wait(manager, run, ("done", "failed", "crashed"))
        assert status["state"] == "done", run.log_tail(20)
        assert status["pid"] != os.getpid() and status["pid"] != zygote.proc.pid
        assert "val/loss" in status["final"] and run.last_checkpoint.is_file()
        slow = manager.submit(toy_cfg(**{"train.max_epochs": 50, "sleep_s": 0.05}))
        status = wait(manager, slow, ("running",))
        while manager.refresh(slow).get("step", 0) < 1:  # it has set up: past its setsid
            time.sleep(0.1)
        assert os.getsid(status["pid"]) == status["pid"]  # its own session: stop reaches its workers
    finally:
        zygote.close()
    assert pid_alive(status["pid"]) and manager.refresh(slow)["state"] == "running"  # the zygote is gone, the job not
    while manager.refresh(slow).get("step", 0) < 3:
        time.sleep(0.1)
    stopped = manager.stop(slow.id)
    assert stopped["state"] == "stopped" and slow.last_checkpoint.is_file()
    manager.launcher = None  # resumed cold: the same run, from its checkpoint
    manager.resume(slow.id)
    assert wait(manager, slow, ("running", "done"))["state"] in ("running", "done")
    manager.stop(slow.id)


def test_bad_switch_is_one_line(monkeypatch):
    monkeypatch.setenv("WORKBENCH_ZYGOTE", "yes")
    with pytest.raises(WorkbenchError, match="WORKBENCH_ZYGOTE='yes' is invalid: expected 0 or 1"):
        enabled()
    monkeypatch.setenv("WORKBENCH_ZYGOTE", "0")
    assert enabled() is False
