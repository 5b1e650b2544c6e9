"""The entry point of a background training job (``python -m workbench train --run-dir DIR``,
or a fork of the study driver's zygote): every outcome ends in the run's status.json.

Light at import: the job beats before torch is imported.
"""
from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from pathlib import Path

from workbench.errors import NonFiniteLoss, WorkbenchError


def run_dir_job(run_dir: str | Path, resume: bool = False) -> int:
    """Run the job of an existing run folder: one torchrun rank of a distributed run, or the
    job process (which supervises torchrun when ``train.nproc`` > 1)."""
    from workbench.runs import Run

    run = Run(Path(run_dir))
    if "WORLD_SIZE" in os.environ:  # one rank of a distributed run, started by torchrun
        return run_rank(run, resume)
    return run_job(run, resume)


def run_rank(run, resume: bool) -> int:
    """One torchrun rank of a distributed run: rank 0's trainer writes the run, the others
    only train; any failure is recorded for the supervisor (train.distributed)."""
    from workbench.train import STOP
    from workbench.train import distributed as ddp

    signal.signal(signal.SIGTERM, lambda signum, frame: STOP.set())
    ctx = ddp.Dist()
    try:
        ctx = ddp.from_env()
        from workbench.experiments import create_experiment
        from workbench.train.trainer import Trainer

        Trainer(create_experiment(run.load_config()), run, progress_bar=ctx.main).fit(resume=resume)
        return 0
    except Exception as exc:  # the trainer recorded what it saw; errors before it are recorded here
        message = str(exc) if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"
        ddp.record_error(ctx, message)
        if not isinstance(exc, WorkbenchError):
            traceback.print_exc()
        print(f"error (rank {ctx.rank}): {message}", file=sys.stderr)
        return 1


def run_job(run, resume: bool) -> int:
    """The job process of a run: every outcome ends in status.json."""
    from workbench.train import STOP

    signal.signal(signal.SIGTERM, lambda signum, frame: STOP.set())  # before the slow imports

    from workbench.runs import progress

    # Beat from the first second, on a thread of its own: a long setup (feature caching,
    # target encoding) or a slow import must never look like a hung job.
    run.update_status(state="running", pid=os.getpid())
    try:
        interval = progress.heartbeat_interval()
    except WorkbenchError as exc:
        run.update_status(state="failed", error=str(exc), ended=time.time())
        print(f"error: {exc}", file=sys.stderr)
        return 2
    heartbeat = progress.Heartbeat(run, interval).start()
    progress.install(heartbeat)
    progress.set_phase("setup", "starting (imports)")

    code = 0
    try:
        nproc = int((run.config_dict().get("train") or {}).get("nproc") or 1)
        if nproc > 1:  # this process supervises torchrun's ranks
            from workbench.train.launch import supervise

            code = supervise(run, resume, nproc, STOP)
        else:
            from workbench.experiments import create_experiment
            from workbench.train.trainer import Trainer

            Trainer(create_experiment(run.load_config()), run).fit(resume=resume)
    except NonFiniteLoss as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    except WorkbenchError as exc:
        run.update_status(state="failed", error=str(exc), ended=time.time())
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    except Exception as exc:  # a bug: keep the traceback in train.log, one line in status
        traceback.print_exc()
        run.update_status(state="failed", error=f"{type(exc).__name__}: {exc}", ended=time.time())
        code = 1
    finally:
        heartbeat.stop()
        progress.install(None)
    from workbench.runs import JobManager, RunStore

    JobManager(RunStore(run.path.parent)).schedule()  # hand the free slot to the next job
    return code
