"""The sharded losses against the single-process loss of the global batch, in float64.

One gloo group per world size (2 and 3: with 2 ranks both ring neighbours are the same rank,
so a ring that turned the wrong way would pass) runs every scenario once, the way torchrun
+ DDP would: each rank feeds its contiguous shard of the global batch through a small shared
model, calls backward and averages the parameter gradients over ranks by hand (what DDP
does). The parent process then checks, per scenario and step, that

- the mean over ranks of each rank's loss is the single-process loss,
- the averaged parameter gradients (logit scale, bias, both towers) are the single-process
  ones, and the ranks' feature gradients / W, concatenated, are the full batch's,
- every rank's queue buffers equal the single-process queue after each step.
"""
from __future__ import annotations

import math
import os
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from workbench.contrastive import distributed
from workbench.contrastive.losses import SigLipLoss, create_loss

B, D_IN, D = 4, 6, 5  # rows per rank, input and feature dims
TOL = dict(rtol=1e-10, atol=1e-12)
QUEUE = 20  # two global batches of 12 (3 ranks) wrap around it
SPAWN_TIMEOUT_S = 120

# name: (loss, constructor kwargs, with image ids, steps)
SCENARIOS = {
    "clip": ("clip", {}, False, 1),
    "clip_ids": ("clip", {}, True, 1),
    "align_ids": ("align", {}, True, 1),
    "siglip": ("siglip", {}, False, 1),
    "siglip_ids": ("siglip", {}, True, 1),
    "siglip_chunk_ids": ("siglip", {"chunk_size": 3}, True, 1),
    "siglip_ring": ("siglip", {"dist_impl": "ring"}, False, 1),
    "siglip_ring_ids": ("siglip", {"dist_impl": "ring"}, True, 1),
    "siglip_ring_chunk_ids": ("siglip", {"dist_impl": "ring", "chunk_size": 3}, True, 1),
    "queue": ("queue", {"dim": D, "queue_size": QUEUE}, False, 2),
    "queue_ids": ("queue", {"dim": D, "queue_size": QUEUE}, True, 2),
    "blip": ("blip", {"dim": D, "queue_size": QUEUE}, False, 2),
    "blip_ids": ("blip", {"dim": D, "queue_size": QUEUE}, True, 2),
    "blip_no_queue_ids": ("blip", {"dim": D, "queue_size": 0}, True, 2),
}


# ---- the shared model and the global batches ---------------------------------------------


class Towers(nn.Module):
    """Two linear towers with L2-normalised outputs, frozen momentum copies, and the
    temperature (as a log) and bias parameters; float64, identical on every rank."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        kw = dict(dtype=torch.float64)
        self.image_head, self.text_head = nn.Linear(D_IN, D, **kw), nn.Linear(D_IN, D, **kw)
        self.image_head_m = nn.Linear(D_IN, D, **kw).requires_grad_(False)
        self.text_head_m = nn.Linear(D_IN, D, **kw).requires_grad_(False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(7.0), **kw))
        self.logit_bias = nn.Parameter(torch.tensor(-2.0, **kw))

    def forward(self, x_img, x_txt, ids=None) -> dict:
        f = {"image_features": F.normalize(self.image_head(x_img), dim=-1),
             "text_features": F.normalize(self.text_head(x_txt), dim=-1),
             "image_features_m": F.normalize(self.image_head_m(x_img), dim=-1),
             "text_features_m": F.normalize(self.text_head_m(x_txt), dim=-1),
             "logit_scale": self.logit_scale.exp(), "logit_bias": self.logit_bias}
        f["image_features"].retain_grad()
        f["text_features"].retain_grad()
        if ids is not None:
            f["image_ids"] = ids
        return f


def global_batch(world_size: int, step: int, with_ids: bool):
    """(x_img, x_txt [W B, D_IN], ids [W B] or None). The ids repeat within and across
    shards, and step 1's overlap step 0's (so queue entries are positives too)."""
    g = torch.Generator().manual_seed(100 + step)
    n = world_size * B
    x_img = torch.randn(n, D_IN, generator=g, dtype=torch.float64)
    x_txt = x_img + 0.5 * torch.randn(n, D_IN, generator=g, dtype=torch.float64)
    pattern = torch.tensor([3, 7, 3, 1, 7, 5, 3, 1, 9, 5, 7, 0])
    return x_img, x_txt, (pattern[:n] + 2 * step if with_ids else None)


def run_steps(scenario: str, world_size: int, rank: int | None) -> list[dict]:
    """Run a scenario's steps on one shard (``rank``) or the whole batch (``rank=None``):
    per step the loss, parameter gradients (averaged over ranks when sharded), feature
    gradients and the loss's buffers afterwards."""
    name, kw, with_ids, steps = SCENARIOS[scenario]
    model, loss_fn = Towers(), create_loss(name, **kw)
    rows = slice(None) if rank is None else slice(rank * B, (rank + 1) * B)
    out = []
    for step in range(steps):
        x_img, x_txt, ids = global_batch(world_size, step, with_ids)
        model.zero_grad()
        f = model(x_img[rows], x_txt[rows], None if ids is None else ids[rows])
        loss = loss_fn(f)["loss"]
        loss.backward()
        grads = {k: torch.zeros_like(p) if p.grad is None else p.grad.clone()
                 for k, p in model.named_parameters()}
        if rank is not None:  # DDP: average over ranks
            for g in grads.values():
                dist.all_reduce(g)
                g /= world_size
        out.append({"loss": loss.detach(), "grads": grads,
                    "image_grad": f["image_features"].grad, "text_grad": f["text_features"].grad,
                    "buffers": {k: v.clone() for k, v in loss_fn.state_dict().items()}})
    return out


# ---- what each rank runs -------------------------------------------------------------------


def primitives(rank: int, world_size: int) -> dict:
    """The collectives themselves: order, gradient routing, the ring's direction."""
    out = {"world": distributed.world()}
    x = torch.arange(3, dtype=torch.float64).repeat(2, 1).T + 10 * rank  # (3, 2)
    out["gathered_ids"] = distributed.gather_no_grad(torch.arange(2) + 10 * rank)
    # Rank s weighs the gathered rows by (s + 1) * row number; rank r's rows must get the
    # sum over s of those weights, i.e. the gradient every rank's loss put on them.
    x.requires_grad_()
    y = distributed.gather_with_grad(x)  # (3 W, 2)
    weights = (rank + 1) * torch.arange(len(y), dtype=torch.float64)[:, None].expand_as(y)
    (y * weights).sum().backward()
    out["gathered"], out["gather_grad"] = y.detach(), x.grad
    # One ring step: rank r gets rank r - 1's block, and its gradient goes back to r - 1.
    block = torch.full((2, 2), float(rank), dtype=torch.float64, requires_grad=True)
    received = distributed.pass_right(block)
    (received * (rank + 1)).sum().backward()
    out["received"], out["ring_grad"] = received.detach(), block.grad
    return out


def refusals(rank: int, world_size: int) -> dict:
    """The error messages of: rank 0 having one row more (every loss refuses on every rank,
    before any gather), and a queue that holds the shard but not the global batch."""
    messages = {}
    for name, kw in [("clip", {}), ("siglip", {"dist_impl": "ring"}), ("blip", {"dim": D})]:
        n = B + (rank == 0)
        x = torch.randn(n, D_IN, dtype=torch.float64)
        try:
            create_loss(name, **kw)(Towers()(x, x))
            messages[name] = None
        except ValueError as err:
            messages[name] = str(err)
    x = torch.randn(B, D_IN, dtype=torch.float64)
    try:
        create_loss("queue", dim=D, queue_size=world_size * B - 1)(Towers()(x, x))
        messages["queue_size"] = None
    except ValueError as err:
        messages["queue_size"] = str(err)
    return messages


def local_only_loss(rank: int) -> torch.Tensor:
    """Inside local_only() a rank's loss is its shard's single-process loss (no collective)."""
    x_img, x_txt, ids = global_batch(1, 0, True)  # one shard's worth of rows
    with distributed.local_only():
        assert distributed.world() == (0, 1)
        return create_loss("clip")(Towers()(x_img + rank, x_txt, ids))["loss"].detach()


def worker(rank: int, world_size: int, rdv: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rdv}", rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=60))
    try:
        results = {"scenarios": {s: run_steps(s, world_size, rank) for s in SCENARIOS},
                   "primitives": primitives(rank, world_size),
                   "refusals": refusals(rank, world_size),
                   "local_only": local_only_loss(rank)}
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module", params=[2, 3], ids=lambda w: f"world{w}")
def ranks(request, tmp_path_factory) -> list[dict]:
    """Each rank's results for every scenario, from one gloo group of ``param`` processes."""
    world_size = request.param
    tmp = tmp_path_factory.mktemp(f"world{world_size}")
    context = mp.spawn(worker, args=(world_size, str(tmp / "rdv"), str(tmp)), nprocs=world_size, join=False)
    waited = 0
    while not context.join(timeout=5):
        waited += 5
        if waited >= SPAWN_TIMEOUT_S:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the {world_size}-rank gloo group did not finish in {SPAWN_TIMEOUT_S} s")
    return [torch.load(Path(tmp) / f"rank{r}.pt") for r in range(world_size)]


# ---- parity with the single-process loss ----------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_sharded_loss_and_gradients_equal_single_process(ranks, scenario):
    world_size = len(ranks)
    reference = run_steps(scenario, world_size, rank=None)
    for step, ref in enumerate(reference):
        per_rank = [r["scenarios"][scenario][step] for r in ranks]
        mean_loss = torch.stack([r["loss"] for r in per_rank]).mean()
        torch.testing.assert_close(mean_loss, ref["loss"], **TOL)
        for r in per_rank:  # DDP's averaged gradients, identical on every rank
            assert r["grads"].keys() == ref["grads"].keys()
            for k, g in ref["grads"].items():
                torch.testing.assert_close(r["grads"][k], g, **TOL, msg=f"{scenario} step {step} {k}")
        for key in ("image_grad", "text_grad"):
            sharded = torch.cat([r[key] for r in per_rank]) / world_size
            torch.testing.assert_close(sharded, ref[key], **TOL, msg=f"{scenario} step {step} {key}")
        assert ref["grads"]["logit_scale"].abs() > 1e-6  # the comparison is not of zeros
        if SCENARIOS[scenario][0] == "siglip":
            assert ref["grads"]["logit_bias"].abs() > 1e-6


@pytest.mark.parametrize("scenario", [s for s, spec in SCENARIOS.items() if spec[0] in ("queue", "blip")])
def test_every_rank_keeps_the_single_process_queue(ranks, scenario):
    reference = run_steps(scenario, len(ranks), rank=None)
    for step, ref in enumerate(reference):
        for rank, r in enumerate(ranks):
            buffers = r["scenarios"][scenario][step]["buffers"]
            assert buffers.keys() == ref["buffers"].keys()
            for k, v in ref["buffers"].items():
                assert torch.equal(buffers[k], v), f"{scenario} step {step} rank {rank}: {k}"
    queue_ids = reference[-1]["buffers"]["queue_ids"]
    if SCENARIOS[scenario][2] and SCENARIOS[scenario][1]["queue_size"]:  # the ids went in too
        assert (queue_ids >= 0).sum() == min(QUEUE, 2 * len(ranks) * B)


def test_positives_across_shards_change_the_loss(ranks):
    # Sensitivity: the ids scenarios have positives on other ranks; without them it differs.
    for with_ids, without in [("clip_ids", "clip"), ("siglip_ring_ids", "siglip_ring")]:
        a = torch.stack([r["scenarios"][with_ids][0]["loss"] for r in ranks]).mean()
        b = torch.stack([r["scenarios"][without][0]["loss"] for r in ranks]).mean()
        assert not torch.allclose(a, b)


# ---- the collectives -------------------------------------------------------------------------


def test_gather_order_and_gradient_routing(ranks):
    world_size = len(ranks)
    n = 3 * world_size
    column_weight = sum(s + 1 for s in range(world_size))  # every rank weighs row i by (s + 1) i
    for rank, r in enumerate(ranks):
        p = r["primitives"]
        assert p["world"] == (rank, world_size)
        assert p["gathered_ids"].tolist() == [10 * s + i for s in range(world_size) for i in range(2)]
        owner = torch.arange(world_size).repeat_interleave(3)  # (3 W,) the rank each row came from
        expected = torch.arange(3, dtype=torch.float64).repeat(world_size) + 10 * owner
        torch.testing.assert_close(p["gathered"], expected[:, None].expand(n, 2))
        rows = torch.arange(3 * rank, 3 * rank + 3, dtype=torch.float64)
        torch.testing.assert_close(p["gather_grad"], (column_weight * rows)[:, None].expand(3, 2))


def test_ring_passes_right_and_sends_gradients_back(ranks):
    world_size = len(ranks)
    for rank, r in enumerate(ranks):
        p = r["primitives"]
        assert (p["received"] == (rank - 1) % world_size).all()
        # This rank's block went to rank + 1, whose loss weighs it by (rank + 1) + 1.
        assert (p["ring_grad"] == (rank + 1) % world_size + 1).all()


def test_unequal_batch_sizes_raise_on_every_rank(ranks):
    sizes = [B + 1] + [B] * (len(ranks) - 1)
    for r in ranks:
        messages = dict(r["refusals"])
        queue_message = messages.pop("queue_size")
        for name, message in messages.items():
            assert message is not None, f"{name} accepted unequal shards"
            assert str(sizes) in message and "drop_last" in message
        # The queue takes the global batch each step, so that is what must fit.
        world_size = len(ranks)
        assert f"batch of {world_size * B} (global, over {world_size} ranks)" in queue_message
        assert f"queue_size={world_size * B - 1}" in queue_message


def test_local_only_computes_the_shard_alone(ranks):
    x_img, x_txt, ids = global_batch(1, 0, True)
    for rank, r in enumerate(ranks):
        alone = create_loss("clip")(Towers()(x_img + rank, x_txt, ids))["loss"].detach()
        assert torch.equal(r["local_only"], alone)


# ---- a single process is untouched -----------------------------------------------------------


def test_without_a_process_group_the_collectives_are_identities():
    assert not dist.is_initialized()
    assert distributed.world() == (0, 1)
    x = torch.randn(3, 2, requires_grad=True)
    assert distributed.gather_with_grad(x) is x
    assert distributed.pass_right(x) is x
    gathered = distributed.gather_no_grad(x)
    assert torch.equal(gathered, x) and not gathered.requires_grad


@pytest.mark.parametrize("chunk_size", [0, 3])
def test_siglip_dist_impl_changes_nothing_in_a_single_process(chunk_size):
    x_img, x_txt, ids = global_batch(2, 0, True)
    f = Towers()(x_img, x_txt, ids)
    gather = SigLipLoss(chunk_size=chunk_size)(f)["loss"]
    ring = SigLipLoss(chunk_size=chunk_size, dist_impl="ring")(f)["loss"]
    assert torch.equal(gather, ring)


def test_unknown_dist_impl_lists_the_choices():
    with pytest.raises(ValueError, match=r"'bidir' not known. Available: \['gather', 'ring'\]"):
        SigLipLoss(dist_impl="bidir")
