"""Warm job starts: one process imports torch and the lines once, then forks each job.

A training job started cold spends ~3 s before its first step on this 2-core machine:
Python, torch (~1.7 s), ``torch._dynamo`` (the first optimiser imports it, ~1 s) and the
lines. A study starts dozens of short trials, so its driver keeps a zygote: a child process
(``python -m workbench.runs.zygote``) that has done those imports and waits on its stdin.
For each request (one JSON line ``{"run": DIR, "resume": bool}``) it forks; the fork becomes
the job exactly as ``python -m workbench train --run-dir DIR`` would be (its own session,
stdout and stderr appended to the run's ``train.log``, SIGTERM -> checkpoint and stop) and
the zygote answers ``{"pid": N}``. The jobs are not the zygote's to wait for (SIGCHLD is
ignored, so they are reaped at once): like any job they live on if the driver and its
zygote die, and the job manager follows them by pid and status file.

The zygote never computes: no torch thread pool or CUDA context exists before the fork.
``WORKBENCH_ZYGOTE=0`` turns it off (every job a fresh process).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from workbench.errors import WorkbenchError

ENV = "WORKBENCH_ZYGOTE"
PRELOAD = ("torch", "torch._dynamo", "workbench.train.job", "workbench.train.trainer", "workbench.tuning.report")


def enabled() -> bool:
    raw = os.environ.get(ENV, "1").strip()
    if raw not in ("0", "1", ""):
        raise WorkbenchError(f"environment variable {ENV}={raw!r} is invalid: expected 0 or 1; fix it or unset it")
    return raw != "0"


class Zygote:
    """The driver's side: start the zygote, ask it for jobs, close it."""

    def __init__(self, python: str | None = None, timeout_s: float = 120.0):
        self._lock = threading.Lock()
        self.proc = subprocess.Popen([python or sys.executable, "-m", "workbench.runs.zygote"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._expect("ready", timeout_s)

    def _expect(self, key: str, timeout_s: float) -> dict:
        line = self._readline(timeout_s)
        try:
            answer = json.loads(line)
        except json.JSONDecodeError:
            answer = {}
        if key not in answer:
            err = "" if self.proc.poll() is None else (self.proc.stderr.read() or "").strip().splitlines()[-1:]
            self.close()
            raise WorkbenchError(f"the warm job starter failed ({answer.get('error') or err or line.strip()!r}); "
                                 f"set {ENV}=0 to start every job cold")
        return answer

    def _readline(self, timeout_s: float) -> str:
        out: list[str] = []
        reader = threading.Thread(target=lambda: out.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout_s)
        return out[0] if out else ""

    def start(self, run_dir: str | Path, resume: bool = False) -> int:
        """Fork a job for ``run_dir``; its pid."""
        with self._lock:
            if self.proc.poll() is not None:
                raise WorkbenchError(f"the warm job starter exited ({self.proc.returncode}); set {ENV}=0 to "
                                     "start every job cold")
            self.proc.stdin.write(json.dumps({"run": str(run_dir), "resume": bool(resume)}) + "\n")
            self.proc.stdin.flush()
            return int(self._expect("pid", 30.0)["pid"])

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def _become_job(run_dir: str, resume: bool) -> None:
    """In the fork: detach, point stdio at the run's log, run the job, exit with its code."""
    code = 1
    try:
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        log = os.open(os.path.join(run_dir, "train.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        sys.stdout.reconfigure(line_buffering=True)
        sys.stderr.reconfigure(line_buffering=True)
        from workbench.train.job import run_dir_job

        code = run_dir_job(run_dir, resume)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - the job's own handler missed it: keep the traceback in its log
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve() -> None:
    """The zygote's loop: preload, say ready, fork one job per request until stdin closes."""
    import importlib

    reply = sys.stdout
    try:
        for name in PRELOAD:
            importlib.import_module(name)
        from workbench.experiments import load_kinds

        load_kinds()  # every line's experiment module
    except Exception as exc:  # noqa: BLE001 - reported to the driver as one line
        reply.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
        reply.flush()
        return
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the jobs are reaped at once, never zombies
    reply.write(json.dumps({"ready": os.getpid()}) + "\n")
    reply.flush()
    for line in sys.stdin:
        try:
            request = json.loads(line)
            run_dir, resume = str(request["run"]), bool(request.get("resume"))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            reply.write(json.dumps({"error": f"bad request: {exc}"}) + "\n")
            reply.flush()
            continue
        pid = os.fork()
        if pid == 0:
            _become_job(run_dir, resume)
        reply.write(json.dumps({"pid": pid}) + "\n")
        reply.flush()


if __name__ == "__main__":
    serve()
