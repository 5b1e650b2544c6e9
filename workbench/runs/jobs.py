"""Background training jobs: detached processes, a queue, stop / resume, crash detection.

There is no daemon. All state is in the run store, and whoever looks (the app, the CLI, or
a job that just finished) advances the queue under a file lock. Restarting the app loses
nothing: it re-reads the run directories and finds the jobs by pid.
"""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from workbench.envvars import env_float, env_int
from workbench.errors import ConfigError, RunStateError
from workbench.runs.progress import heartbeat_interval
from workbench.runs.store import Run, RunStore

STALE_AFTER_S = 120.0  # a live pid whose heartbeat is this old is reported unresponsive
MAX_JOBS_ENV = "WORKBENCH_MAX_JOBS"
STALE_ENV = "WORKBENCH_STALE_AFTER_S"


def process_start_time(pid: int) -> int | None:
    """Kernel start time of ``pid`` (clock ticks since boot), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def pid_alive(pid: int | None, start_time: int | None = None) -> bool:
    if not pid:
        return False
    try:  # reap it if it is our own finished child, so it does not linger as a zombie
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if Path(f"/proc/{pid}/stat").exists():
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
        if start_time is not None and process_start_time(pid) != start_time:
            return False
    return True


class JobManager:
    def __init__(self, store: RunStore | None = None, max_concurrent: int | None = None,
                 stale_after_s: float | None = None, python: str | None = None, launcher=None):
        """``launcher``: an object with ``start(run_dir, resume) -> pid`` (the study driver's
        warm ``runs.zygote.Zygote``); default: every job a fresh ``python -m workbench train``."""
        self.store = store or RunStore()
        self.launcher = launcher
        if max_concurrent is not None and max_concurrent < 1:
            raise ConfigError(f"max_concurrent must be >= 1, got {max_concurrent}")
        # Read (and checked) here, so a bad value fails when the app or CLI starts, not
        # when a queued job would have started.
        self.max_concurrent = max_concurrent or env_int(MAX_JOBS_ENV, 1, minimum=1, maximum=64)
        self.stale_after_s = stale_after_s if stale_after_s is not None else env_float(
            STALE_ENV, STALE_AFTER_S, minimum=1.0)
        heartbeat_interval()  # a job inherits the environment: check its variables now
        self.python = python or sys.executable

    @contextmanager
    def _lock(self):
        self.store._ensure_root()
        with open(self.store.root / ".queue.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- state -----------------------------------------------------------------------
    def refresh(self, run: Run) -> dict[str, Any]:
        """The run's status; a ``running`` job whose process is gone becomes ``crashed``.

        A live job whose heartbeat is stale is never killed (only the user stops a job): the
        returned status (not the file) carries ``unresponsive: True`` and ``heartbeat_age_s``.
        """
        status = run.read_status()
        if status.get("state") != "running":
            return status
        if pid_alive(status.get("pid"), status.get("pid_start")):
            age = time.time() - status.get("heartbeat", time.time())
            if age > self.stale_after_s:
                return {**status, "unresponsive": True, "heartbeat_age_s": round(age, 1)}
            return status
        # The job may have finished between our read and the liveness check.
        status = run.read_status()
        if status.get("state") != "running":
            return status
        reason = "process exited without a final status"
        tail = run.log_tail(15).strip().splitlines()
        msg = f"{reason}; last log line: {tail[-1]}" if tail else reason
        return run.update_status(state="crashed", error=msg, log_tail="\n".join(tail), ended=time.time())

    def statuses(self) -> list[tuple[Run, dict]]:
        return [(run, self.refresh(run)) for run in self.store.list()]

    # -- queue -----------------------------------------------------------------------
    def submit(self, cfg) -> Run:
        """Create the run directory (``queued``) and start it if a slot is free. A
        distributed config that cannot split its batch is refused here, not in the job."""
        if cfg.train.nproc > 1:
            from workbench.train.distributed import check_nproc

            check_nproc(cfg.train.nproc, cfg.train.batch_size, cfg.train.device)
        run = self.store.create(cfg)
        self.schedule()
        return run

    def schedule(self) -> list[Run]:
        """Start queued runs, oldest first, while fewer than ``max_concurrent`` run."""
        started = []
        with self._lock():
            statuses = self.statuses()
            running = sum(s.get("state") == "running" for _, s in statuses)
            queued = sorted((s.get("created", 0), r.id, r, s) for r, s in statuses if s.get("state") == "queued")
            for _, _, run, status in queued:
                if running >= self.max_concurrent:
                    break
                self._start(run, resume=bool(status.get("resume")))
                started.append(run)
                running += 1
        return started

    def _start(self, run: Run, resume: bool) -> None:
        if self.launcher is not None:
            pid = self.launcher.start(run.path, resume)
            run.update_status(state="running", pid=pid, pid_start=process_start_time(pid),
                              heartbeat=time.time(), error=None, resume=False, phase="setup",
                              phase_detail="starting", phase_done=None, phase_total=None)
            return
        cmd = [self.python, "-m", "workbench", "train", "--run-dir", str(run.path)]
        if resume:
            cmd.append("--resume")
        with open(run.log_path, "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, cwd=os.getcwd(),
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
        run.update_status(state="running", pid=proc.pid, pid_start=process_start_time(proc.pid),
                          heartbeat=time.time(), error=None, resume=False, phase="setup",
                          phase_detail="starting", phase_done=None, phase_total=None)

    # -- actions ---------------------------------------------------------------------
    def stop(self, run_id: str, timeout_s: float = 15.0) -> dict[str, Any]:
        """SIGTERM (the trainer checkpoints and exits as ``stopped``), SIGKILL after timeout."""
        run = self.store.get(run_id)
        with self._lock():
            status = self.refresh(run)
            if status.get("state") == "queued":
                return run.update_status(state="stopped", ended=time.time())
            if status.get("state") != "running":
                raise RunStateError(f"run '{run_id}' is {status.get('state')}, not running")
        pid = status["pid"]
        self._kill(pid, signal.SIGTERM)
        deadline = time.time() + timeout_s
        while time.time() < deadline and pid_alive(pid, status.get("pid_start")):
            time.sleep(0.1)
        killed = pid_alive(pid, status.get("pid_start"))
        if killed:
            self._kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        status = run.read_status()
        if status.get("state") == "running":  # it never reached a checkpoint of this stop
            why = f"killed after not stopping within {timeout_s:.0f} s" if killed else "exited on SIGTERM"
            status = run.update_status(state="stopped", ended=time.time(), error=why)
        self.schedule()
        return status

    def resume(self, run_id: str) -> Run:
        run = self.store.get(run_id)
        status = self.refresh(run)
        if status.get("state") not in ("stopped", "crashed", "failed"):
            raise RunStateError(f"run '{run_id}' is {status.get('state')}; only stopped, crashed or failed runs resume")
        if not run.last_checkpoint.is_file():
            raise RunStateError(f"run '{run_id}' has no checkpoints/last.pt to resume from; launch it again instead")
        run.update_status(state="queued", resume=True, error=None,
                          resume_count=status.get("resume_count", 0) + 1)
        self.schedule()
        return run

    def delete(self, run_id: str) -> None:
        run = self.store.get(run_id)
        self.refresh(run)
        self.store.delete(run_id)

    @staticmethod
    def _kill(pid: int, sig: int) -> None:
        try:
            os.killpg(pid, sig)  # the job leads its own session: reach its workers too
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
