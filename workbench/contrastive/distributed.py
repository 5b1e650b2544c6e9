"""Collectives the contrastive losses use when they run under torchrun.

Every rank holds an equal, contiguous shard of the global batch (rank r: global rows
r * b .. (r + 1) * b - 1) and computes the loss of its own rows against the columns of all
ranks. DDP then averages the parameter gradients over ranks, so the gradient that reaches a
rank's features from another rank's loss must be sent back and *summed* into the owner's
gradient: then the average over ranks of each rank's gradient equals the single-process
gradient of the global batch. ``gather_with_grad`` and ``exchange_with_grad`` do that in
their backward; ``gather_no_grad`` is for keys and ids that are never trained through.

With no process group (or a group of one) every function here is the identity, so the
losses run unchanged in a single process.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

import torch
import torch.distributed as dist
from torch import Tensor


_LOCAL_ONLY: ContextVar[bool] = ContextVar("contrastive_local_only", default=False)


def world() -> tuple[int, int]:
    """(rank, world size) of the default process group; (0, 1) when none is initialised
    or inside ``local_only()``."""
    if not _LOCAL_ONLY.get() and dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@contextmanager
def local_only() -> Iterator[None]:
    """Inside, ``world()`` is (0, 1): the losses see this rank's batch alone and call no
    collective. For work only some ranks do, e.g. a validation pass on rank 0 only, where a
    gather would wait forever for the ranks that are not there."""
    token = _LOCAL_ONLY.set(True)
    try:
        yield
    finally:
        _LOCAL_ONLY.reset(token)


def check_equal_shards(batch_size: int, device: torch.device) -> None:
    """Raise ValueError unless every rank has ``batch_size`` rows; one tiny all_gather.

    Collectives on shards of different sizes hang or return garbage, and the global-diagonal
    positives assume rank r's rows start at r * batch_size, so this is checked first.
    """
    _, size = world()
    if size == 1:
        return
    sizes = torch.empty(size, dtype=torch.long, device=device)
    dist.all_gather_single(sizes, torch.tensor([batch_size], dtype=torch.long, device=device))
    if (sizes != batch_size).any():
        raise ValueError(
            f"distributed contrastive losses need the same batch size on every rank, got "
            f"{sizes.tolist()} (rank order): drop the last incomplete batch (drop_last=True) or "
            f"pad the shards to a common size"
        )


def _all_gather(x: Tensor) -> Tensor:
    """[b, ...] on every rank -> [W * b, ...], rank order; no autograd."""
    x = x.contiguous()
    out = x.new_empty((world()[1] * x.shape[0], *x.shape[1:]))
    dist.all_gather_single(out, x)
    return out


class _GatherWithGrad(torch.autograd.Function):
    """all_gather forward; backward reduce-scatters: rank r's shard of the gradient is the
    SUM over ranks of the gradient each rank's loss put on rows r * b .. (r + 1) * b - 1."""

    @staticmethod
    def forward(ctx, x):
        return _all_gather(x)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        out = grad.new_empty((grad.shape[0] // world()[1], *grad.shape[1:]))
        dist.reduce_scatter_single(out, grad, op=dist.ReduceOp.SUM)
        return out


def gather_with_grad(x: Tensor, check: bool = True) -> Tensor:
    """[b, ...] on each rank -> [W * b, ...], the shards in rank order, differentiable: the
    gradient of every rank's loss w.r.t. rows r * b .. (r + 1) * b - 1 is summed back into
    rank r's ``x``. The identity in a single process. ``check`` first verifies the shards
    have equal sizes (skip it only when the caller has just checked)."""
    _, size = world()
    if size == 1:
        return x
    if check:
        check_equal_shards(x.shape[0], x.device)
    return _GatherWithGrad.apply(x)


@torch.no_grad()
def gather_no_grad(x: Tensor, check: bool = True) -> Tensor:
    """[b, ...] on each rank -> [W * b, ...] in rank order, detached (keys, ids)."""
    _, size = world()
    if size == 1:
        return x.detach()
    if check:
        check_equal_shards(x.shape[0], x.device)
    return _all_gather(x)


def _exchange(x: Tensor, send_to: int, recv_from: int) -> Tensor:
    """Send ``x`` to rank ``send_to`` and return the same-shaped tensor ``recv_from`` sent."""
    x = x.contiguous()
    received = torch.empty_like(x)
    ops = [dist.P2POp(dist.isend, x, send_to), dist.P2POp(dist.irecv, received, recv_from)]
    for request in dist.batch_isend_irecv(ops):
        request.wait()
    return received


class _ExchangeWithGrad(torch.autograd.Function):
    """Forward: send x to ``send_to``, receive from ``recv_from``. Backward runs the other
    way: the gradient of what we received goes back to its sender, and the gradient of what
    we sent comes back from its receiver."""

    @staticmethod
    def forward(ctx, x, send_to, recv_from):
        ctx.send_to, ctx.recv_from = send_to, recv_from
        return _exchange(x, send_to, recv_from)

    @staticmethod
    def backward(ctx, grad):
        return _exchange(grad, send_to=ctx.recv_from, recv_from=ctx.send_to), None, None


def exchange_with_grad(x: Tensor, send_to: int, recv_from: int) -> Tensor:
    """Point-to-point swap with gradients: returns the tensor rank ``recv_from`` sends while
    this rank sends ``x`` to ``send_to``. Every rank must call it (a ring is symmetric).
    Shapes must agree between the pairs; ``check_equal_shards`` first when unsure."""
    return _ExchangeWithGrad.apply(x, send_to, recv_from)


def pass_right(x: Tensor) -> Tensor:
    """One step around the ring: send ``x`` to rank r + 1, return what rank r - 1 sent.
    After k steps a rank holds the block that started on rank r - k (mod W). The identity
    in a single process."""
    rank, size = world()
    if size == 1:
        return x
    return exchange_with_grad(x, send_to=(rank + 1) % size, recv_from=(rank - 1) % size)
