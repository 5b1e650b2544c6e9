"""Study overhead per trial (``python -m workbench bench tuning``).

A real study on the projection line (the demo config on its ``train_tuning`` subset, one
epoch a trial, random sampler, no pruner, journal storage in a temporary runs folder),
driven by ``run_study`` exactly as ``tune`` does: every trial is a ``python -m workbench
train`` job started by the job manager. For each trial, from Optuna's and the run's own
timestamps:

- ``wall``: the trial's start to its completion in the study (ask ... tell);
- ``training``: the run's trainer from its start to its end (epochs, validation, the final
  validation and checkpoint);
- ``overhead = wall - training``: study bookkeeping (ask, run folder, trial.json, tell), the
  job's start (process, imports, the experiment's setup) and the driver noticing the end.

The overhead is split into ``job_start`` (run created -> trainer started) and the rest.
Measured twice in one run: ``warm`` (the default: the driver's zygote forks every trial job,
torch already imported; its own start is once per study, in ``study_start_s``) and ``cold``
(``WORKBENCH_ZYGOTE=0``: a fresh Python per trial). ``python_torch_import_s`` (a bare
``python -c "import torch"``) is the floor of any cold start.
``quick``: 3 trials each, else 8. Key: ``overhead_per_trial_s`` (warm, median), target < 2 s.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from workbench.paths import REPO_ROOT

TARGET_S = 2.0


def _spec(folder: Path, n_trials: int) -> Path:
    spec = folder / "bench-tuning.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "bench-tuning", "base": "projection-demo",
        "overrides": ["data.train_split=train_tuning", "train.max_epochs=1"],
        "objective": {"metric": "val/r_mean", "direction": "maximize"}, "n_trials": n_trials,
        "sampler": {"type": "random", "seed": 0}, "pruner": {"type": "none"},
        "space": {"train.lr": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True}}}))
    return spec


def _import_torch_s(repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True, cwd=REPO_ROOT)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _study(n_trials: int, warm: bool) -> dict[str, Any]:
    """One study of ``n_trials``; trial jobs forked by the warm starter or started cold."""
    import os

    from workbench.runs import RunStore, zygote
    from workbench.tuning.driver import run_study
    from workbench.tuning.spec import load_spec
    from workbench.tuning.storage import open_study

    before = os.environ.get(zygote.ENV)
    os.environ[zygote.ENV] = "1" if warm else "0"
    try:
        with tempfile.TemporaryDirectory(prefix="bench-tuning-") as tmp:
            folder = Path(tmp)
            runs = folder / "runs"
            spec = load_spec(_spec(folder, n_trials))
            t0, wall0 = time.perf_counter(), time.time()
            out = run_study(spec, runs_root=runs)
            study_s = time.perf_counter() - t0
            store = RunStore(runs)
            trials = open_study(spec, None, runs, create=False).get_trials(deepcopy=False)
            rows = []
            for t in trials:
                status = store.get(t.user_attrs["run_id"]).read_status()
                wall = (t.datetime_complete - t.datetime_start).total_seconds()
                training = status["ended"] - status["started"]
                rows.append({"trial": t.number, "state": t.state.name, "wall_s": round(wall, 3),
                             "training_s": round(training, 3), "overhead_s": round(wall - training, 3),
                             "job_start_s": round(status["started"] - status["created"], 3)})
            first_ask = min(t.datetime_start for t in trials).timestamp()
    finally:
        if before is None:
            os.environ.pop(zygote.ENV, None)
        else:
            os.environ[zygote.ENV] = before
    overhead = [r["overhead_s"] for r in rows]
    return {
        "overhead_per_trial_s": round(statistics.median(overhead), 3),
        "overhead_min_s": round(min(overhead), 3), "overhead_max_s": round(max(overhead), 3),
        "job_start_s_median": round(statistics.median(r["job_start_s"] for r in rows), 3),
        "bookkeeping_and_notice_s_median": round(statistics.median(r["overhead_s"] - r["job_start_s"] for r in rows),
                                                 3),
        "training_s_median": round(statistics.median(r["training_s"] for r in rows), 3),
        # before the first trial: opening the study and (warm) starting the zygote, once per study
        "study_start_s": round(first_ask - wall0, 3),
        "study_wall_s": round(study_s, 2), "states": out["states"], "per_trial": rows,
    }


def run(quick: bool = False) -> dict[str, Any]:
    n_trials = 3 if quick else 8
    warm = _study(n_trials, warm=True)
    cold = _study(n_trials, warm=False)
    return {
        "overhead_per_trial_s": warm["overhead_per_trial_s"],
        "overhead_per_trial_cold_s": cold["overhead_per_trial_s"],
        "cold_over_warm": round(cold["overhead_per_trial_s"] / warm["overhead_per_trial_s"], 2),
        "target_s": TARGET_S, "meets_target": warm["overhead_per_trial_s"] < TARGET_S,
        "python_torch_import_s": round(_import_torch_s(), 3),
        "trials": n_trials, "warm": warm, "cold": cold,
        "setup": "projection-demo on train_tuning, 1 epoch a trial, random sampler, no pruner, journal storage, "
                 "n_jobs 1, CPU; warm = trial jobs forked by the study's zygote (the default), cold = "
                 "WORKBENCH_ZYGOTE=0 (a fresh python per trial); the two studies run one after the other",
    }
