"""Data-parallel training on CPU: samples/s of 1 vs 2 processes, and their parity
(``python -m workbench bench ddp``).

The projection line's demo preset (frozen-feature heads on data/geo-captions), dropout off,
trained for a fixed number of steps through the CLI exactly as a user would run it:
``python -m workbench train projection-demo ... [--nproc 2]`` (2 processes: torchrun, gloo,
DDP, each rank on half of the same seeded global batch). ``train.max_samples`` is a multiple
of the batch, so every step trains on exactly ``batch_size`` samples; one validation, at the
last step.

Timing covers only the training steps. Rank 0 logs a train record every ``log_every`` steps,
after the all-reduce of the logged scalars (the ranks are in step there), so the rate is the
global samples between the first and the last train record over the time between them: the
first ``log_every`` steps (warm-up) and everything after the last record (final validation,
checkpoint, artifacts, exit) fall outside. ``startup_s`` is the launch to the trainer's
start (status ``started``): Python and torch imports, torchrun and the rendezvous, data,
model and DDP wrap. Threads: 1 process gets every core, N processes cores / N each, so both
sides use the same cores; the full bench adds one 1-process run on 1 thread
(``samples_per_s_1proc_1thread``), the per-core rate each rank has. This 2-core VM is noisy:
the 1- and 2-process runs alternate (which goes first flips every pair) and medians over the
pairs are reported, with ``samples_per_s_interval_median`` (the median over every log interval
of a side's runs) as a figure that a burst of other work moves less.

Parity: the two runs of a pair start from the same seed and see the same global batches;
``parity_max_abs_diff`` is the largest |w_2proc - w_1proc| over last.pt's weights, all pairs.

With >= 2 CUDA GPUs, ``gpu`` holds benchmarks/gpu_ddp.py's scaling on the clip line.
"""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from workbench.errors import WorkbenchError
from workbench.paths import REPO_ROOT
from workbench.runs import RunStore

PRESET = "projection-demo"


@dataclass
class Timed:
    """One finished training run and its timings (seconds; rates in samples/s)."""

    run_path: Path
    status: dict[str, Any]
    train_records: list[dict[str, Any]]
    samples_per_s: float  # global samples between the first and last train record / their time apart
    timed_steps: int  # steps inside that window
    interval_rates: list[float]  # samples/s between consecutive train records (robust to a burst of load)
    startup_s: float  # launch -> trainer started (processes, imports, rendezvous, data, model)
    after_s: float  # last train record -> process exit (final validation, checkpoint, artifacts)
    wall_s: float  # launch -> exit


def threads_per_rank(nproc: int) -> int:
    """Each rank's share of the cores: the two sides of a comparison use the same cores."""
    return max(1, (os.cpu_count() or 1) // nproc)


def launch(config: str, overrides: list[str], nproc: int, root: Path, timeout_s: float) -> Timed:
    """``python -m workbench train CONFIG OVERRIDES --nproc N --runs ROOT`` to its end; the
    run must finish ``done`` with logged train records. ``train.batch_size`` (global) and
    ``train.max_samples`` (a multiple of it) must be among the overrides: they give the
    samples a step."""
    settings = dict(o.split("=", 1) for o in overrides)
    batch, n = int(settings["train.batch_size"]), int(settings["train.max_samples"])
    if n % batch:
        raise WorkbenchError(f"train.max_samples={n} must be a multiple of train.batch_size={batch} "
                             "so that every step trains on the whole global batch")
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR",
                                                             "MASTER_PORT")}
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS=settings.get("train.threads", str(threads_per_rank(nproc))))
    cmd = [sys.executable, "-m", "workbench", "train", config, *overrides, "--nproc", str(nproc), "--runs", str(root)]
    t0 = time.time()
    try:
        out = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise WorkbenchError(f"{config} with --nproc {nproc} ran past {timeout_s:.0f} s; lower the steps") from None
    wall = time.time() - t0
    runs = RunStore(root).list()
    status = runs[0].read_status() if runs else {}
    if out.returncode != 0 or status.get("state") != "done":
        tail = "\n".join(out.stderr.strip().splitlines()[-15:])
        raise WorkbenchError(f"{config} with --nproc {nproc} ended {status.get('state', 'without a run')} "
                             f"(exit {out.returncode}): {status.get('error') or ''}\n{tail}")
    run = runs[0]
    train = [r for r in run.read_metrics()[0] if r["split"] == "train"]
    if len(train) < 2:
        raise WorkbenchError(f"{run.path} logged {len(train)} train record(s); raise train.max_steps or lower "
                             "train.log_every so that at least two are timed")
    first, last = train[0], train[-1]
    per_epoch = n // batch
    if last["epoch"] != (last["step"] - 1) // per_epoch:  # the data had fewer than max_samples rows
        raise WorkbenchError(f"train.max_samples={n} is larger than the training set of {run.path}; lower it")
    steps = last["step"] - first["step"]
    intervals = [(b["step"] - a["step"]) * batch / (b["time"] - a["time"]) for a, b in zip(train, train[1:])]
    return Timed(run.path, status, train, steps * batch / (last["time"] - first["time"]), steps, intervals,
                 status["started"] - t0, t0 + wall - last["time"], wall)


def max_abs_diff(a: Path, b: Path) -> float:
    """Largest |a - b| over the floating-point weights of two last.pt files (same keys)."""
    wa = torch.load(a / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["model"]
    wb = torch.load(b / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["model"]
    if set(wa) != set(wb):
        raise WorkbenchError(f"{a} and {b} hold different weights: {sorted(set(wa) ^ set(wb))}")
    diffs = [(wa[k].double() - wb[k].double()).abs().max().item() for k in wa
             if wa[k].is_floating_point() and wa[k].numel()]
    return max(diffs, default=0.0)


def measure(steps: int, pairs: int, batch_size: int = 256, log_every: int = 10, max_samples: int = 12_800,
            nproc: int = 2, timeout_s: float = 240, reference: bool = False) -> dict[str, Any]:
    """``pairs`` alternating (1-process, ``nproc``-process) runs of ``steps`` steps each;
    ``reference``: one more 1-process run on one thread (the per-core rate each rank has)."""
    if steps < 2 * log_every:
        raise WorkbenchError(f"steps={steps} must be at least 2 x log_every={log_every}: two train records are timed")
    base = ["model.dropout=0", f"train.max_steps={steps}", f"train.max_epochs={10 * steps}",
            f"train.val_every={steps}", f"train.log_every={log_every}", f"train.batch_size={batch_size}",
            f"train.max_samples={max_samples}", "train.device=cpu"]
    load_at_start = os.getloadavg()[0]  # other work on the machine skews the rates (the 2-thread side most)
    one, many, diffs = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as tmp:
        for i in range(pairs):
            done = {}
            for n in (1, nproc) if i % 2 == 0 else (nproc, 1):  # alternate which side goes first
                done[n] = launch(PRESET, base + [f"train.threads={threads_per_rank(n)}"], n,
                                 Path(tmp) / f"{i}-{n}proc", timeout_s)
            if done[1].status["step"] != done[nproc].status["step"]:
                raise WorkbenchError(f"pair {i}: {done[1].status['step']} vs {done[nproc].status['step']} steps")
            one.append(done[1])
            many.append(done[nproc])
            diffs.append(max_abs_diff(done[1].run_path, done[nproc].run_path))
        ref = launch(PRESET, base + ["train.threads=1"], 1, Path(tmp) / "reference", timeout_s) if reference else None
    result = summarise(one, many, diffs, nproc)
    if ref is not None:
        result["samples_per_s_1proc_1thread"] = round(ref.samples_per_s, 1)  # one run, not a median
    result["settings"] = {
        "preset": PRESET, "overrides": base, "steps": steps, "timed_steps": one[0].timed_steps,
        "global_batch": batch_size, "per_rank_batch": batch_size // nproc, "pairs": pairs,
        "threads": {"1proc": threads_per_rank(1), f"{nproc}proc": f"{threads_per_rank(nproc)} per rank"},
        "backend": "gloo (CPU), torchrun --standalone",
        "timing": "between the first and last logged train record (rank 0, after the all-reduce of the logged "
                  "scalars); startup_s = launch -> trainer started; after_training_s = last record -> exit; "
                  "medians over the pairs",
    }
    result["machine"] = {**machine(), "load_avg_1m_at_start": round(load_at_start, 2)}
    return result


def summarise(one: list[Timed], many: list[Timed], diffs: list[float], nproc: int) -> dict[str, Any]:
    """Medians of each side's runs, the speedup, the parity."""
    def med(runs: list[Timed], field: str, digits: int = 2) -> float:
        return round(statistics.median(getattr(t, field) for t in runs), digits)

    rate1, rate_n = med(one, "samples_per_s", 6), med(many, "samples_per_s", 6)
    val_loss = [abs(a.status["final"]["val/loss"] - b.status["final"]["val/loss"]) for a, b in zip(one, many)]
    return {
        "samples_per_s_1proc": round(rate1, 1),
        f"samples_per_s_{nproc}proc": round(rate_n, 1),
        f"speedup_{nproc}proc": round(rate_n / rate1, 3),
        # the ratio within each pair: both halves saw about the same machine
        "pair_speedups": [round(b.samples_per_s / a.samples_per_s, 3) for a, b in zip(one, many)],
        "parity_max_abs_diff": max(diffs),
        "parity_val_loss_abs_diff": max(val_loss),
        "startup_s_1proc": med(one, "startup_s"),
        f"startup_s_{nproc}proc": med(many, "startup_s"),
        f"startup_overhead_{nproc}proc_s": round(med(many, "startup_s") - med(one, "startup_s"), 2),
        "after_training_s_1proc": med(one, "after_s"),
        f"after_training_s_{nproc}proc": med(many, "after_s"),
        "wall_s_1proc": med(one, "wall_s"),
        f"wall_s_{nproc}proc": med(many, "wall_s"),
        "samples_per_s_runs": {"1proc": [round(t.samples_per_s, 1) for t in one],
                               f"{nproc}proc": [round(t.samples_per_s, 1) for t in many]},
        # the median over every log interval of every run of a side: a burst of other work on the
        # machine moves a whole-window rate, much less this
        "samples_per_s_interval_median": {
            "1proc": round(statistics.median(r for t in one for r in t.interval_rates), 1),
            f"{nproc}proc": round(statistics.median(r for t in many for r in t.interval_rates), 1)},
    }


def machine() -> dict[str, Any]:
    return {"cpu_count": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(terse=True), "load_avg_1m": round(os.getloadavg()[0], 2),
            "cuda_gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0}


def run(quick: bool = False) -> dict[str, Any]:
    # On 2 idle cores a run is ~30 s, two thirds of it start-up and artifacts; a loaded machine
    # slows the 1-process (2-thread) side most.
    result = measure(steps=40, pairs=1) if quick else measure(steps=100, pairs=3, reference=True)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus >= 2:
        from benchmarks import gpu_ddp

        result["gpu"] = gpu_ddp.measure(device="cuda", max_gpus=gpus, **(gpu_ddp.QUICK if quick else {}))
    else:
        result["gpu"] = f"skipped: {gpus} CUDA GPU(s) visible; GPU scaling needs >= 2 (benchmarks/gpu_ddp.py)"
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
