"""The supervisor of a distributed run: the job process that starts torchrun and waits.

Kept free of torch (the supervisor only starts processes), so a distributed job's own
start costs no torch import; the ranks and torchrun import it themselves. See
``workbench.train.distributed`` for what the ranks do.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ERRORS_ENV = "WORKBENCH_RANK_ERRORS"  # where a failing rank leaves its one-line error


def first_error(folder: Path) -> str | None:
    """The earliest rank error in ``folder`` ("rank N: message"); the others followed from it."""
    found = []
    for path in folder.glob("rank-*.txt"):
        try:
            stamp, message = path.read_text().split("\n", 1)
            found.append((float(stamp), path.stem.split("-", 1)[1], message.strip()))
        except (OSError, ValueError):
            continue
    if not found:
        return None
    _, rank, message = min(found)
    return f"rank {rank} failed: {message}"


def torchrun_command(run_dir: Path, nproc: int, resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "--max-restarts=0", "--monitor-interval=0.2", "-m", "workbench", "train", "--run-dir", str(run_dir)]
    return cmd + (["--resume"] if resume else [])


def _term_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies (Linux prctl PR_SET_PDEATHSIG)."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def supervise(run, resume: bool, nproc: int, stop_event) -> int:
    """Run torchrun for ``run`` and wait; the exit code. SIGTERM (``stop_event`` set by the
    job's handler) is forwarded to torchrun, which forwards it to the ranks. A run left
    unfinished by failing ranks is marked failed with the first rank's error."""
    from workbench.runs import progress

    progress.set_phase("setup", f"starting {nproc} processes (torchrun)")
    with tempfile.TemporaryDirectory(prefix="wb-ranks-") as errors:
        env = {**os.environ, ERRORS_ENV: errors, "PYTHONUNBUFFERED": "1",
               "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))}
        # torchrun leads its own session (a stop reaches it once, forwarded by us, and it
        # forwards to the ranks) and gets SIGTERM if this process dies (no orphaned ranks).
        proc = subprocess.Popen(torchrun_command(run.path, nproc, resume), env=env, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=_term_with_parent)
        forwarded = False
        while proc.poll() is None:
            if stop_event.is_set() and not forwarded:
                proc.send_signal(signal.SIGTERM)
                forwarded = True
            time.sleep(0.2)
        error = first_error(Path(errors))
    status = run.read_status()
    state = status.get("state")
    if state == "stopped" or (state in ("done", "pruned") and (proc.returncode == 0 or error is None)):
        return 0
    message = error or (f"torchrun exited with {proc.returncode} before the run finished; see train.log")
    run.update_status(state="failed", error=message, ended=time.time())
    print(f"error: {message}", file=sys.stderr)
    return 1
