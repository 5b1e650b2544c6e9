"""Data parallelism for the one Trainer: PyTorch's own DDP under torchrun.

A run with ``train.nproc`` = N > 1 is one run of the run store. Its job process (the pid the
job manager follows) is a supervisor (``workbench.train.launch``, no torch import): it starts
``torchrun --standalone --nproc-per-node N -m workbench train --run-dir DIR`` and waits. Every rank builds the same model (same seed),
wraps it in DistributedDataParallel and trains on its shard of the same seeded global batch
(``shard``); rank 0 alone writes the run directory (status, metrics, TensorBoard,
checkpoints, artifacts). Multi-node: run torchrun yourself on every node with its
``--nnodes`` / ``--node-rank`` / ``--rdzv-*`` flags (docs/ARCHITECTURE.md).

Stop: SIGTERM reaches every rank (the job's process group, or torchrun's forwarding); the
ranks agree on the stop with one all-reduce per step, so they stop at the same step and rank
0 writes one checkpoint. A rank that raises writes its one-line error to
``$WORKBENCH_RANK_ERRORS/rank-<r>.txt``; torchrun tears the other ranks down, and the
supervisor marks the run failed with the first rank's error. A hung rank fails the others'
collectives after ``train.dist_timeout_s``.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from workbench.errors import ConfigError, WorkbenchError
from workbench.train.launch import ERRORS_ENV

_left = False  # this process left its group: later Trainers in it (rank 0's artifacts, e.g.
# a line's extra seeds) run as single processes


@dataclass(frozen=True)
class Dist:
    """This process's place in the group; (0, 1, 0) outside torchrun."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, minimum: int) -> int:
    raw = os.environ[name]
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise WorkbenchError(f"environment variable {name}={raw!r} is invalid: expected an integer >= {minimum} "
                             "(torchrun sets it; unset it outside torchrun)")
    return value


def from_env() -> Dist:
    """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK (absent, or once this process has left
    its group: a single process)."""
    if "WORLD_SIZE" not in os.environ or _left:
        return Dist()
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0) if "RANK" in os.environ else 0
    local = _env_int("LOCAL_RANK", 0) if "LOCAL_RANK" in os.environ else 0
    if rank >= world:
        raise WorkbenchError(f"environment variable RANK={rank} is not below WORLD_SIZE={world}")
    return Dist(rank, world, local)


def init(ctx: Dist, device: torch.device, timeout_s: float) -> torch.device:
    """Join the process group (nccl on CUDA, gloo on CPU); the device this rank uses."""
    if device.type == "cuda":
        if torch.cuda.device_count() <= ctx.local_rank:
            raise WorkbenchError(f"rank {ctx.rank} wants cuda:{ctx.local_rank} but only "
                                 f"{torch.cuda.device_count()} GPUs are visible; lower --nproc")
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise WorkbenchError(f"distributed training runs on cuda (nccl) or cpu (gloo), not {device.type}; "
                             "set train.device=cpu or cuda")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=timedelta(seconds=timeout_s),
                                device_id=device if device.type == "cuda" else None)
    return device


def close() -> None:
    """Leave the process group (for good: see ``_left``)."""
    global _left
    if dist.is_initialized():
        dist.destroy_process_group()
        _left = True


def shard(batch: list[int], ctx: Dist) -> list[int]:
    """This rank's rows of a global batch of indices: contiguous, equal sizes; the global
    batch's remainder (len % world, only the last batch of an epoch) is dropped so every
    rank's shard has the same size and the gradient average is the global batch's."""
    per = len(batch) // ctx.world
    return batch[ctx.rank * per : (ctx.rank + 1) * per]


class StepModule(nn.Module):
    """The experiment's training step as the module DDP wraps: DDP's forward then runs the
    whole step (encoders and loss), whichever submodules and methods the line calls."""

    def __init__(self, experiment, model: nn.Module):
        super().__init__()
        self.exp = experiment
        self.model = model

    def forward(self, batch) -> dict[str, torch.Tensor]:
        return self.exp.training_step(self.model, batch)


def wrap(experiment, model: nn.Module, device: torch.device, find_unused: bool) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(StepModule(experiment, model), device_ids=ids,
                                   find_unused_parameters=find_unused)


def trainable(model: nn.Module) -> tuple[bool, ...]:
    """Which parameters train: DDP registers its hooks for these, so a change (a backbone
    unfrozen at an epoch) means wrapping again."""
    return tuple(p.requires_grad for p in model.parameters())


def mean_over_ranks(values: dict[str, torch.Tensor], ctx: Dist) -> dict[str, torch.Tensor]:
    """Each value averaged over the ranks (one all-reduce for the whole dict)."""
    if not ctx.enabled or not values:
        return values
    keys = sorted(values)
    flat = torch.stack([values[k].detach().float().reshape(()) for k in keys])
    dist.all_reduce(flat)
    flat /= ctx.world
    return dict(zip(keys, flat))


def sum_over_ranks(values: torch.Tensor, ctx: Dist) -> torch.Tensor:
    if ctx.enabled:
        dist.all_reduce(values)
    return values


def any_rank(flag: bool, ctx: Dist, device: torch.device) -> bool:
    """True on every rank when ``flag`` is True on any (a stop request seen by one)."""
    if not ctx.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def broadcast(obj: Any, ctx: Dist) -> Any:
    """Rank 0's ``obj`` on every rank (picklable)."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any, ctx: Dist) -> list[Any]:
    """Every rank's ``obj`` in rank order (on every rank)."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: Dist) -> None:
    if ctx.enabled:
        dist.barrier()


def record_error(ctx: Dist, message: str) -> None:
    """A failing rank's one-line error, for the supervisor (no-op outside a supervised run)."""
    folder = os.environ.get(ERRORS_ENV)
    if not folder or not ctx.enabled:
        return
    try:
        Path(folder, f"rank-{ctx.rank}.txt").write_text(f"{time.time()!r}\n{message}")
    except OSError:
        pass


# -- the supervisor: the job process of a distributed run ---------------------------------


def check_nproc(nproc: int, batch_size: int, device: str, name: str = "train.nproc") -> None:
    """Refuse at once what would fail later: a global batch that does not split evenly, or
    more ranks than GPUs."""
    if nproc < 1:
        raise ConfigError(f"train.nproc must be >= 1, got {nproc}")
    if batch_size % nproc:
        raise ConfigError(f"train.batch_size={batch_size} (the global batch) must be a multiple of "
                          f"{name}={nproc}: each process takes batch_size / nproc samples a step")
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        have = torch.cuda.device_count()
        if have and nproc > have:
            raise ConfigError(f"train.nproc={nproc} but only {have} GPUs are visible; lower it or set "
                              "train.device=cpu")
