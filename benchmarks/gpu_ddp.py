"""GPU data-parallel scaling on the clip line: ``python -m benchmarks.gpu_ddp`` (also
``python -m workbench bench gpu_ddp``).

With CUDA: the CLIP-from-scratch preset ``clip`` (data/geo-captions) with AMP, trained for a
fixed number of steps on 1, 2, 4, ... GPUs (powers of two up to the N visible, and N) with
the per-GPU batch held constant (global batch = per_gpu x n). n > 1 is ``--nproc n`` with
``train.device=cuda``: torchrun, one rank per GPU, NCCL, DDP; n = 1 is the plain
single-process run, the baseline. Every run must end ``done`` with every logged train loss
and the final val loss finite. Rates are timed as in benchmarks/ddp.py: the global samples
between the first and last logged train record over the time between them (start-up,
final validation and artifacts excluded). Prints JSON: ``samples_per_s`` per GPU count and
``scaling_efficiency`` = samples/s at N / (N x samples/s at 1) (null with one GPU: there is
no scaling to measure, only the AMP run's check and rate). Exit status 1 when a run failed.

Without CUDA it prints one line saying so and exits 0. ``--device cpu --max-gpus 2`` is a
dry run of the same code path with gloo ranks on the CPU and a tiny model; its JSON says
``"dry_run": true`` and its rates are no GPU numbers.

Time: the 1-GPU and the N-GPU runs go first, then the counts between; a count that would not
fit in ``--budget-s`` (default 480 s, under a 10-minute limit) is skipped and listed.
``--out FILE`` rewrites the JSON after every run, so a killed command still leaves results.

Data: data/ is git-ignored. The clip line reads, from data/geo-captions (about 20 MB):
images/, images.csv, train_metadata.json, val_metadata.json, test_metadata.json (on another
machine, copy these; ``python -m workbench data build-demo --only geo-captions`` builds them).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.ddp import Timed, launch, machine, threads_per_rank
from workbench.errors import WorkbenchError
from workbench.paths import REPO_ROOT

PRESET = "clip"
DATA = REPO_ROOT / "data" / "geo-captions"
DATA_FILES = ("images", "images.csv", "train_metadata.json", "val_metadata.json", "test_metadata.json")
TRAIN_PAIRS = 12_000  # a lower bound of the demo's 15,720 training pairs: max_samples stays below it
NO_CUDA = "gpu_ddp: no CUDA device visible (torch {torch}); nothing measured. Run it on a machine with GPUs."

# The settings of a real measurement, a quick one (bench --quick) and the CPU dry run.
FULL = {"steps": 300, "per_gpu_batch": 256, "log_every": 25}
QUICK = {"steps": 100, "per_gpu_batch": 256, "log_every": 20}
DRY = {"steps": 8, "per_gpu_batch": 8, "log_every": 2, "train_pairs": 1_000}
# the dry run's tiny towers on the first 300 demo images (1,165 training pairs)
DRY_MODEL = ["data.max_images=300", "text.vocab_size=300", "model.embed_dim=32", "model.depth=1",
             "model.num_heads=2", "model.text_embed_dim=32", "model.text_depth=1", "model.text_heads=2",
             "model.output_dim=32", "train.warmup_steps=0"]


def gpu_counts(n: int) -> list[int]:
    """The counts to run, in the order they run: 1, n, then the powers of two between."""
    powers = [2**i for i in range(1, n.bit_length()) if 2**i < n]
    return [1] + ([n] if n > 1 else []) + powers


def check_data() -> None:
    missing = [f for f in DATA_FILES if not (DATA / f).exists()]
    if missing:
        raise WorkbenchError(f"the clip line's data is incomplete: {DATA} lacks {missing}. Build it with "
                             "`python -m workbench data build-demo --only geo-captions`, or copy "
                             f"data/geo-captions/{{{','.join(DATA_FILES)}}} from a machine that has it")


def finite_losses(timed: Timed) -> bool:
    losses = [r["train/loss"] for r in timed.train_records if "train/loss" in r]
    final = (timed.status.get("final") or {}).get("val/loss")
    return bool(losses) and final is not None and all(math.isfinite(v) for v in [*losses, final])


def one_count(n: int, device: str, steps: int, per_gpu_batch: int, log_every: int, max_samples: int,
              extra: list[str], root: Path, timeout_s: float) -> dict[str, Any]:
    overrides = [f"train.device={device}", "train.amp=true", f"train.batch_size={per_gpu_batch * n}",
                 f"train.max_steps={steps}", f"train.max_epochs={10 * steps}", f"train.val_every={steps}",
                 f"train.log_every={log_every}", f"train.max_samples={max_samples}",
                 f"train.threads={threads_per_rank(n)}", *extra]
    timed = launch(PRESET, overrides, n, root / f"{n}gpu", timeout_s)
    train = timed.train_records
    return {"samples_per_s": round(timed.samples_per_s, 1), "state": timed.status["state"],
            "steps": timed.status["step"], "timed_steps": timed.timed_steps, "global_batch": per_gpu_batch * n,
            "backend": ("nccl" if device == "cuda" else "gloo") if n > 1 else "none (1 process)",
            "finite_loss": finite_losses(timed), "first_train_loss": train[0].get("train/loss"),
            "last_train_loss": train[-1].get("train/loss"),
            "final_val_loss": (timed.status.get("final") or {}).get("val/loss"),
            "startup_s": round(timed.startup_s, 2), "after_training_s": round(timed.after_s, 2),
            "wall_s": round(timed.wall_s, 2)}


def _devices(device: str, max_gpus: int) -> tuple[int, int, list[str], list[str]]:
    """(ranks to scale to, GPUs visible, extra overrides, device names)."""
    if device == "cuda":
        if not torch.cuda.is_available():
            raise WorkbenchError(NO_CUDA.format(torch=torch.__version__) + " For the code path: --device cpu")
        visible = torch.cuda.device_count()
        n = min(visible, max_gpus) if max_gpus else visible
        return n, visible, [], sorted({torch.cuda.get_device_name(i) for i in range(n)})
    if device == "cpu":
        return max(1, max_gpus or 2), 0, DRY_MODEL, ["cpu"]
    raise WorkbenchError(f"device {device!r} is not one of ['cuda', 'cpu']")


def _nccl_version() -> str | None:
    try:
        return ".".join(map(str, torch.cuda.nccl.version()))
    except Exception:  # a build without NCCL: the multi-GPU runs will say why they failed
        return None


def measure(device: str = "cuda", max_gpus: int = 0, steps: int = FULL["steps"],
            per_gpu_batch: int = FULL["per_gpu_batch"], log_every: int = FULL["log_every"],
            budget_s: float = 480, train_pairs: int = TRAIN_PAIRS, out: Path | None = None) -> dict[str, Any]:
    """Scaling over the GPU counts (``device="cpu"``: the gloo dry run over ``max_gpus`` ranks)."""
    n, visible, extra, names = _devices(device, max_gpus)
    check_data()
    counts = gpu_counts(n)
    batches = [per_gpu_batch * k for k in counts]
    step_rows = math.lcm(*batches)  # every global batch divides max_samples: no partial batches
    if step_rows > train_pairs:
        raise WorkbenchError(f"per_gpu_batch={per_gpu_batch} x counts {counts} needs a multiple of {step_rows} "
                             f"training samples, more than the {train_pairs} available; lower --per-gpu-batch")
    max_samples = step_rows * (train_pairs // step_rows)
    result: dict[str, Any] = {
        "device": device, "dry_run": device != "cuda", "gpus_visible": visible, "gpu_names": names,
        "gpu_counts": sorted(counts), "samples_per_s": {}, "scaling_efficiency": None, "runs": {}, "skipped": [],
        "settings": {"preset": PRESET, "amp": True, "per_gpu_batch": per_gpu_batch, "steps": steps,
                     "log_every": log_every, "max_samples": max_samples, "extra_overrides": extra,
                     "timing": "between the first and last logged train record; n = 1 is one process, n > 1 "
                               "torchrun + DDP (nccl on cuda, gloo on cpu)"},
        "machine": {**machine(), "cuda": torch.version.cuda,
                    "nccl": _nccl_version() if device == "cuda" else None},
    }
    if device == "cpu":
        result["note"] = "CPU dry run: gloo ranks and a tiny model exercise the code path; these are no GPU numbers"
    elif n == 1:
        result["note"] = "1 GPU visible: NCCL DDP needs >= 2, so only the 1-GPU AMP run is checked and timed"
    t0 = time.time()
    walls: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-gpu-ddp-") as tmp:
        for k in counts:
            left = budget_s - (time.time() - t0)
            if left < max(30.0, 1.3 * max(walls, default=0.0)):  # a larger count starts more processes
                result["skipped"].append(k)
                continue
            print(f"gpu_ddp: {k} x {device} ...", file=sys.stderr, flush=True)
            try:
                row = one_count(k, device, steps, per_gpu_batch, log_every, max_samples, extra, Path(tmp), left)
                walls.append(row["wall_s"])
                result["samples_per_s"][str(k)] = row["samples_per_s"]
            except WorkbenchError as exc:
                row = {"error": str(exc)[-3000:]}
            result["runs"][str(k)] = row
            print(f"gpu_ddp: {k} x {device}: {json.dumps(row)[:400]}", file=sys.stderr, flush=True)
            _efficiency(result, n)
            if out is not None:
                Path(out).write_text(json.dumps(result, indent=2))
    result["ok"] = bool(result["runs"]) and all(r.get("state") == "done" and r.get("finite_loss")
                                                for r in result["runs"].values())
    if out is not None:
        Path(out).write_text(json.dumps(result, indent=2))
    return result


def _efficiency(result: dict[str, Any], n: int) -> None:
    rates = result["samples_per_s"]
    if "1" not in rates:
        return
    result["scaling_efficiency_per_count"] = {k: round(v / (int(k) * rates["1"]), 3) for k, v in rates.items()}
    if n > 1 and str(n) in rates:
        result["scaling_efficiency"] = round(rates[str(n)] / (n * rates["1"]), 3)


def run(quick: bool = False) -> dict[str, Any]:
    """``python -m workbench bench gpu_ddp``: the measurement, or a skip without CUDA."""
    if not torch.cuda.is_available():
        return {"skipped": NO_CUDA.format(torch=torch.__version__)}
    return measure("cuda", **(QUICK if quick else {}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_ddp", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                   help="cuda: the measurement; cpu: a gloo dry run of the code path with a tiny model")
    p.add_argument("--max-gpus", type=int, default=0, help="use at most this many GPUs (cpu: ranks, default 2); "
                                                             "0 = all visible")
    p.add_argument("--steps", type=int, default=None, help="training steps a run (default 300; cpu 8)")
    p.add_argument("--per-gpu-batch", type=int, default=None, help="samples a GPU a step (default 256; cpu 8)")
    p.add_argument("--log-every", type=int, default=None, help="train record every N steps (default 25; cpu 2)")
    p.add_argument("--budget-s", type=float, default=480, help="skip the GPU counts that would end past this")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here (after every run)")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(NO_CUDA.format(torch=torch.__version__))
        return 0
    preset = FULL if args.device == "cuda" else DRY
    chosen = {k: getattr(args, k) for k in ("steps", "per_gpu_batch", "log_every") if getattr(args, k) is not None}
    try:
        result = measure(args.device, args.max_gpus, **{**preset, **chosen}, budget_s=args.budget_s, out=args.out)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
