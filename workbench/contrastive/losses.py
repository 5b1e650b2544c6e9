"""Contrastive image-text losses, one registry entry each.

Every loss is an ``nn.Module`` called on the model's output dict and returning a dict with
``"loss"`` (scalar, differentiable) and logged terms (detached 0-dim tensors): always
``"logit_scale"``, ``"logit_bias"`` where a bias is used, plus the loss's own terms.

| name | loss | reads besides the features |
| --- | --- | --- |
| ``clip`` | symmetric InfoNCE over the batch, optional label smoothing | ``logit_scale`` |
| ``siglip`` | pairwise sigmoid; ``chunk_size`` keeps memory O(chunk x B) | ``logit_scale``, ``logit_bias`` |
| ``queue`` | MoCo: positive key vs a queue of past keys, both directions | momentum features |
| ``blip`` | BLIP ITC: batch + queue columns, momentum-distilled soft targets | momentum features, ``alpha`` |
| ``align`` | ``clip`` with label smoothing 0.1 | ``logit_scale`` |

Input keys: ``image_features`` / ``text_features`` [B, D], already L2-normalised (no loss
normalises); ``logit_scale`` a 0-dim tensor, the multiplier itself (the model exponentiates
and clamps its log-parameter, as open_clip does, so gradients reach that parameter);
optional ``image_ids`` [B] long: pairs that share an image id are positives (two captions
of one image in a batch), otherwise only the diagonal is; optional ``image_features_m`` /
``text_features_m`` [B, D]: momentum-encoder features (``queue``, ``blip``), falling back to
the detached online features.

The class attributes tell the model which parameters to create and how to clamp them:
``init_logit_scale``, ``init_logit_bias``, ``uses_bias``, ``uses_momentum``,
``min_logit_scale``, ``max_logit_scale``.

Distributed (``workbench.contrastive.distributed``): when a process group of more than one
rank is initialised, every loss switches by itself to the sharded form. Each rank holds an
equal contiguous shard of b rows of the global batch of W * b and computes the mean loss of
its own rows against the columns of the whole global batch: ``clip`` / ``align`` / ``siglip``
gather the features with gradients (``siglip`` ``dist_impl="ring"`` passes text blocks
between neighbours instead), ``blip`` gathers the momentum columns, ``queue`` / ``blip``
enqueue the global batch's keys in rank order, so every rank's queue is the single-process
queue. Positives come from the gathered ``image_ids`` (they may sit on another rank), or
without ids from the global diagonal. Then the mean over ranks of the losses, and DDP's
average of the gradients, equal the single-process loss and gradient of the global batch.
Logged terms stay per rank. Ranks must have equal batch sizes (ValueError otherwise); work
that only some ranks run belongs inside ``distributed.local_only()``. In a single process
nothing changes.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from workbench.contrastive.distributed import (
    check_equal_shards, gather_no_grad, gather_with_grad, pass_right, world,
)
from workbench.registry import Registry

LOSSES: Registry[nn.Module] = Registry("contrastive loss")


def create_loss(name: str, **kw: Any) -> nn.Module:
    """The loss registered as ``name`` built with ``kw``; an unknown name lists the choices."""
    return LOSSES.create(name, **kw)


def siglip_bias_init(batch_size: int) -> float:
    """log(1 / B): a SigLIP bias init for small batches, instead of open_clip's -10.

    At init the features are near-orthogonal, so every logit is about the bias b and
    sigmoid(b) is the predicted chance that a pair is positive. B of the B * B pairs are, so
    b = log(1 / B) (about logit(1 / B)) starts at the base rate. -10 matches that only for
    batches of ~20k; at B = 512 it makes the B - 1 negatives per row nearly free at the start
    and the positives carry almost the whole loss.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return math.log(1.0 / batch_size)


# ---- shared pieces ----------------------------------------------------------------------


def pair_ids(features: dict[str, Tensor], batch_size: int, device: torch.device) -> Tensor:
    """``image_ids`` [B], or arange(B) when absent. arange makes only the diagonal positive,
    and because masks are built from id equality alone, all-distinct ids give exactly the
    no-ids loss."""
    ids = features.get("image_ids")
    return torch.arange(batch_size, device=device) if ids is None else ids.to(device)


def shard_ids(features: dict[str, Tensor], batch_size: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """(row ids [b], column ids [W * b]): this rank's image ids and the global batch's, in
    rank order. Without ``image_ids`` they are global row numbers (rank r's row i is r * b +
    i), so only the global diagonal is positive. In a single process both are ``pair_ids``.
    Distributed callers check equal shards first (``check_equal_shards``)."""
    rank, size = world()
    if size == 1:
        ids = pair_ids(features, batch_size, device)
        return ids, ids
    ids = features.get("image_ids")
    if ids is None:
        cols = torch.arange(size * batch_size, device=device)
        return cols[rank * batch_size:(rank + 1) * batch_size], cols
    ids = ids.to(device)
    return ids, gather_no_grad(ids, check=False)


def queue_positive_mask(ids: Tensor, queue_ids: Tensor) -> Tensor:
    """bool [B, Q]: queue entry q shows row i's image. Unknown entries (id -1) never do."""
    return (ids[:, None] == queue_ids[None, :]) & (queue_ids >= 0)[None, :]


def positive_mask(ids: Tensor, queue_ids: Tensor | None = None, col_ids: Tensor | None = None) -> Tensor:
    """bool [B, C] (or [B, C + Q] with a queue): row i and column j show the same image.

    ids [B] long; queue_ids [Q] long; col_ids [C] long, the in-batch columns' ids when they
    are not the rows' (a rank's rows against the global batch), else C = B and the in-batch
    block is symmetric with a true diagonal.
    """
    pos = ids[:, None] == (ids if col_ids is None else col_ids)[None, :]
    if queue_ids is None:
        return pos
    return torch.cat([pos, queue_positive_mask(ids, queue_ids)], dim=1)


def row_targets(pos: Tensor, dtype: torch.dtype) -> Tensor:
    """bool [B, C] -> float [B, C]: each row uniform over its positives (rows sum to 1)."""
    pos = pos.to(dtype)
    return pos / pos.sum(dim=1, keepdim=True)


def soft_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean over rows of -sum_j targets[i, j] * log_softmax(logits[i])_j; both [B, C]."""
    return -(targets * logits.log_softmax(dim=1)).sum(dim=1).mean()


def momentum_features(features: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """(image, text) keys [B, D]: the momentum encoder's features, else the online ones;
    detached either way, since keys are targets and must not be trained through."""
    img = features.get("image_features_m", features["image_features"])
    txt = features.get("text_features_m", features["text_features"])
    return img.detach(), txt.detach()


def loss_dict(loss: Tensor, logit_scale: Tensor, **terms: Tensor) -> dict[str, Tensor]:
    """The return value of every loss: ``loss`` keeps its graph, logged terms are detached."""
    logged = {name: value.detach() for name, value in terms.items()}
    return {"loss": loss, "logit_scale": logit_scale.detach(), **logged}


class ContrastiveLoss(nn.Module):
    """Base of the registered losses: the attributes the model reads to build its
    temperature (and bias) parameters."""

    init_logit_scale: float = 1 / 0.07  # the multiplier at init; the model stores its log
    init_logit_bias: float | None = None
    uses_bias: bool = False
    uses_momentum: bool = False  # the model keeps a momentum encoder and passes *_m features
    max_logit_scale: float = 100.0
    min_logit_scale: float = 1.0


# ---- clip -------------------------------------------------------------------------------


@LOSSES.register("clip")
class ClipLoss(ContrastiveLoss):
    """Symmetric InfoNCE: (CE(logits, targets) + CE(logits.T, targets.T)) / 2 with
    logits = scale * img @ txt.T [B, B] and targets uniform over each row's positives,
    mixed with the uniform 1 / B by ``label_smoothing``."""

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        img, txt = features["image_features"], features["text_features"]  # (B, D)
        scale = features["logit_scale"]
        if world()[1] > 1:
            loss_i2t, loss_t2i = self.sharded_terms(features)
        else:
            logits = scale * (img @ txt.T)  # (B, B)
            pos = positive_mask(pair_ids(features, len(img), img.device))
            eps = self.label_smoothing
            targets = (1 - eps) * row_targets(pos, logits.dtype) + eps / logits.shape[1]
            loss_i2t = soft_cross_entropy(logits, targets)
            loss_t2i = soft_cross_entropy(logits.T, targets.T)
        loss = (loss_i2t + loss_t2i) / 2
        return loss_dict(loss, scale, loss_i2t=loss_i2t, loss_t2i=loss_t2i)

    def sharded_terms(self, features: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(i2t, t2i) means over this rank's b rows, each against all W * b columns
        gathered with gradients. The row's targets depend on its id alone, so a text row's
        targets over image columns are the image row's over text columns."""
        img, txt = features["image_features"], features["text_features"]  # (b, D)
        scale = features["logit_scale"]
        check_equal_shards(len(img), img.device)
        all_img, all_txt = gather_with_grad(img, check=False), gather_with_grad(txt, check=False)  # (W b, D)
        row_ids, col_ids = shard_ids(features, len(img), img.device)
        eps = self.label_smoothing
        targets = (1 - eps) * row_targets(positive_mask(row_ids, col_ids=col_ids), img.dtype) \
            + eps / len(col_ids)  # (b, W b)
        loss_i2t = soft_cross_entropy(scale * (img @ all_txt.T), targets)
        loss_t2i = soft_cross_entropy(scale * (txt @ all_img.T), targets)
        return loss_i2t, loss_t2i


# ---- siglip -----------------------------------------------------------------------------


def pair_labels(row_ids: Tensor, col_ids: Tensor, dtype: torch.dtype) -> Tensor:
    """[R, C] of +1 where the ids match (positive pair), -1 elsewhere."""
    return (row_ids[:, None] == col_ids[None, :]).to(dtype) * 2 - 1


def sigmoid_loss(img: Tensor, txt: Tensor, scale: Tensor, bias: Tensor, ids: Tensor,
                 col_ids: Tensor | None = None) -> Tensor:
    """-sum(logsigmoid(labels * (scale * img @ txt.T + bias))) / B; img [B, D], txt [C, D];
    ids [B] the rows', col_ids [C] the columns' (default ids: column j is row j's pair)."""
    logits = scale * (img @ txt.T) + bias  # (B, C)
    labels = pair_labels(ids, ids if col_ids is None else col_ids, logits.dtype)
    return -F.logsigmoid(labels * logits).sum() / len(img)


def column_chunks(n: int, chunk_size: int) -> list[slice]:
    """Slices covering range(n) in steps of chunk_size; the last may be shorter."""
    return [slice(start, min(start + chunk_size, n)) for start in range(0, n, chunk_size)]


class ChunkedSigmoidLoss(torch.autograd.Function):
    """``sigmoid_loss`` in O(chunk x B) memory: forward and backward each walk column
    chunks of the text features, and backward recomputes a chunk's logits rather than
    saving the [B, C] matrix. Only img [B, D], txt [C, D], scale, bias and ids [B] (and
    col_ids [C] when the columns are not the rows' pairs, default: ids) are saved."""

    @staticmethod
    def forward(ctx, img, txt, scale, bias, ids, chunk_size, col_ids=None):
        ctx.save_for_backward(img, txt, scale, bias, ids, *([] if col_ids is None else [col_ids]))
        ctx.chunk_size = chunk_size
        col_ids = ids if col_ids is None else col_ids
        total = img.new_zeros(())
        for cols in column_chunks(len(txt), chunk_size):
            logits = scale * (img @ txt[cols].T) + bias  # (B, chunk)
            labels = pair_labels(ids, col_ids[cols], logits.dtype)
            total -= F.logsigmoid(labels * logits).sum()
        return total / len(img)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        img, txt, scale, bias, ids, *col_ids = ctx.saved_tensors
        col_ids = col_ids[0] if col_ids else ids
        g_img, g_txt = torch.zeros_like(img), torch.zeros_like(txt)
        g_scale, g_bias = torch.zeros_like(scale), torch.zeros_like(bias)
        for cols in column_chunks(len(txt), ctx.chunk_size):
            sims = img @ txt[cols].T  # (B, chunk)
            labels = pair_labels(ids, col_ids[cols], sims.dtype)
            # d/dz of -logsigmoid(y z) is -y sigmoid(-y z); the loss divides by B.
            d_logits = -labels * torch.sigmoid(-labels * (scale * sims + bias)) * (grad / len(img))
            g_img += scale * (d_logits @ txt[cols])
            g_txt[cols] = scale * (d_logits.T @ img)
            g_scale += (d_logits * sims).sum()
            g_bias += d_logits.sum()
        return g_img, g_txt, g_scale, g_bias, None, None, None


SIGLIP_DIST_IMPLS = ("gather", "ring")


@LOSSES.register("siglip")
class SigLipLoss(ContrastiveLoss):
    """Pairwise sigmoid loss, -sum(logsigmoid(labels * (scale * img @ txt.T + bias))) / B,
    labels +1 for positive pairs and -1 elsewhere. ``chunk_size`` > 0 computes it in column
    chunks of that many texts (any size; the last chunk may be shorter) so that neither
    forward nor backward holds the [B, B] logits.

    Distributed, a rank's b images meet all W * b texts; ``dist_impl`` says how the texts
    get there: ``"gather"`` all-gathers them (with gradients), ``"ring"`` passes text blocks
    [b, D] around the ring of ranks in W - 1 point-to-point neighbour exchanges (open_clip's
    "shift"): a rank never allocates the gathered [W b, D] texts in one piece, though
    autograd keeps each received block for backward. Both give the same loss and gradients;
    chunking applies within each block (gather: within the gathered texts).
    """

    init_logit_scale = 10.0  # open_clip: t' = log 10
    init_logit_bias = -10.0  # for small batches see siglip_bias_init
    uses_bias = True

    def __init__(self, chunk_size: int = 0, dist_impl: str = "gather"):
        super().__init__()
        if chunk_size < 0:
            raise ValueError(f"chunk_size must be >= 0 (0 = unchunked), got {chunk_size}")
        if dist_impl not in SIGLIP_DIST_IMPLS:
            raise ValueError(f"dist_impl {dist_impl!r} not known. Available: {list(SIGLIP_DIST_IMPLS)}")
        self.chunk_size, self.dist_impl = chunk_size, dist_impl

    def block_loss(self, img: Tensor, txt: Tensor, scale: Tensor, bias: Tensor, ids: Tensor,
                   col_ids: Tensor | None = None) -> Tensor:
        """The sigmoid loss of rows img [B, D] against columns txt [C, D], / B; ids [B],
        col_ids [C] (None: the columns are the rows' pairs, ids)."""
        if self.chunk_size:
            return ChunkedSigmoidLoss.apply(img, txt, scale, bias, ids, self.chunk_size, col_ids)
        return sigmoid_loss(img, txt, scale, bias, ids, col_ids)

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        img, txt = features["image_features"], features["text_features"]  # (B, D)
        scale, bias = features["logit_scale"], features["logit_bias"]
        if world()[1] > 1:
            loss = self.sharded_loss(features)
        else:
            loss = self.block_loss(img, txt, scale, bias, pair_ids(features, len(img), img.device))
        return loss_dict(loss, scale, logit_bias=bias)

    def sharded_loss(self, features: dict[str, Tensor]) -> Tensor:
        """This rank's b images against all W * b texts, summed and divided by b."""
        img, txt = features["image_features"], features["text_features"]  # (b, D)
        scale, bias = features["logit_scale"], features["logit_bias"]
        b = len(img)
        check_equal_shards(b, img.device)
        ids, col_ids = shard_ids(features, b, img.device)  # (b,), (W b,)
        if self.dist_impl == "gather":
            return self.block_loss(img, gather_with_grad(txt, check=False), scale, bias, ids, col_ids)
        rank, size = world()
        block, loss = txt, 0.0
        for step in range(size):
            if step:
                block = pass_right(block)  # (b, D): the texts that started on rank - step
            owner = (rank - step) % size
            loss = loss + self.block_loss(img, block, scale, bias, ids, col_ids[owner * b:(owner + 1) * b])
        return loss


# ---- queue (MoCo) and blip share a ring buffer of keys ----------------------------------


def random_unit_vectors(n: int, dim: int, generator: torch.Generator) -> Tensor:
    """[n, dim] rows uniform on the sphere, drawn from ``generator`` (global RNG untouched)."""
    return F.normalize(torch.randn(n, dim, generator=generator), dim=1)


class QueuedLoss(ContrastiveLoss):
    """A ring buffer of past (image, text) keys and their image ids, kept as buffers so a
    resumed run continues identically: ``image_queue`` / ``text_queue`` [Q, D] (random unit
    vectors at init), ``queue_ids`` [Q] (-1 = unknown), ``queue_ptr`` [1] (next row)."""

    uses_momentum = True

    def __init__(self, dim: int, queue_size: int, seed: int):
        super().__init__()
        if dim < 1 or queue_size < 0:
            raise ValueError(f"need dim >= 1 and queue_size >= 0, got dim={dim}, queue_size={queue_size}")
        self.queue_size = queue_size
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("image_queue", random_unit_vectors(queue_size, dim, generator))
        self.register_buffer("text_queue", random_unit_vectors(queue_size, dim, generator))
        self.register_buffer("queue_ids", torch.full((queue_size,), -1, dtype=torch.long))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    def check_batch(self, batch_size: int) -> None:
        """``batch_size``: the rows one step enqueues (the global batch when distributed)."""
        # A batch longer than the ring would write some rows twice in one step (and which
        # write wins is undefined). Eval forwards never write, so any batch evaluates.
        if self.training and 0 < self.queue_size < batch_size:
            ranks = world()[1]
            where = f" (global, over {ranks} ranks)" if ranks > 1 else ""
            raise ValueError(
                f"batch of {batch_size}{where} does not fit in a queue of queue_size={self.queue_size}: "
                f"set queue_size >= the batch size (a multiple of it) or lower the batch size"
            )

    @torch.no_grad()
    def enqueue(self, img_k: Tensor, txt_k: Tensor, ids: Tensor | None) -> None:
        """Write keys [B, D] and ids [B] (or -1s) at queue_ptr, wrapping; training only."""
        if not self.training or self.queue_size == 0:
            return
        rows = (self.queue_ptr + torch.arange(len(img_k), device=self.queue_ptr.device)) % self.queue_size
        self.image_queue[rows] = img_k.to(self.image_queue)
        self.text_queue[rows] = txt_k.to(self.text_queue)
        self.queue_ids[rows] = -1 if ids is None else ids.to(self.queue_ids)
        self.queue_ptr.copy_((self.queue_ptr + len(img_k)) % self.queue_size)


def moco_cross_entropy(query: Tensor, key: Tensor, queue: Tensor, scale: Tensor,
                       drop: Tensor | None) -> Tensor:
    """CE with label 0 over [q_i . k_i | q_i @ queue.T] * scale per row; query, key [B, D],
    queue [Q, D]; drop [B, Q] bool marks queue entries to leave out (false negatives)."""
    l_pos = (query * key).sum(dim=1, keepdim=True)  # (B, 1)
    l_neg = scale * (query @ queue.T)  # (B, Q)
    if drop is not None:
        l_neg = l_neg.masked_fill(drop, float("-inf"))  # the positive column stays finite
    logits = torch.cat([scale * l_pos, l_neg], dim=1)  # (B, 1 + Q)
    return F.cross_entropy(logits, torch.zeros(len(query), dtype=torch.long, device=query.device))


@LOSSES.register("queue")
class QueueLoss(QueuedLoss):
    """MoCo contrast, symmetric across modalities: each image against its text key and the
    text queue, each text against its image key and the image queue; mean of the two CEs.
    Keys are enqueued after the logits (a batch never sees itself in the queue). With
    ``image_ids``, queue entries of the query's own image are left out of its row."""

    def __init__(self, dim: int, queue_size: int = 4096, seed: int = 0):
        if queue_size < 1:
            raise ValueError(f"queue needs queue_size >= 1 (its negatives), got {queue_size}")
        super().__init__(dim, queue_size, seed)

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        img, txt = features["image_features"], features["text_features"]  # (B, D)
        scale, ids = features["logit_scale"], features.get("image_ids")
        img_k, txt_k = momentum_features(features)
        # Distributed, the rows are this rank's; the queue is the same on every rank.
        drop = None if ids is None else queue_positive_mask(ids.to(img.device), self.queue_ids)
        # Copies: autograd saves the queues for backward and enqueue overwrites them in place.
        text_queue = self.text_queue.to(img.dtype, copy=True)  # (Q, D)
        image_queue = self.image_queue.to(txt.dtype, copy=True)
        loss_i2t = moco_cross_entropy(img, txt_k, text_queue, scale, drop)
        loss_t2i = moco_cross_entropy(txt, img_k, image_queue, scale, drop)
        if self.training and world()[1] > 1:  # every rank enqueues the global batch
            check_equal_shards(len(img), img.device)
            img_k, txt_k = gather_no_grad(img_k, check=False), gather_no_grad(txt_k, check=False)
            ids = None if ids is None else gather_no_grad(ids.to(img.device), check=False)
        self.check_batch(len(img_k))
        self.enqueue(img_k, txt_k, ids)
        loss = (loss_i2t + loss_t2i) / 2
        return loss_dict(loss, scale, loss_i2t=loss_i2t, loss_t2i=loss_t2i)


@LOSSES.register("blip")
class BlipLoss(QueuedLoss):
    """BLIP's image-text contrastive loss with momentum distillation.

    Columns are the batch's momentum features followed by the queue (``queue_size`` > 0):
    sim_i2t = scale * img @ [txt_m ; text_queue].T, sim_t2i = scale * txt @ [img_m ;
    image_queue].T, both [B, B + Q]. Targets = alpha * softmax(the same sims computed from
    the momentum features, no grad) + (1 - alpha) * positives (same image id across batch and
    queue, uniform per row). alpha ramps linearly from 0 over ``ramp_steps`` training
    forwards (BLIP: the first epoch); ``features["alpha"]`` overrides it.
    """

    max_logit_scale = 1 / 0.001  # BLIP clamps the temperature to [0.001, 0.5]
    min_logit_scale = 1 / 0.5

    def __init__(self, dim: int, queue_size: int = 0, alpha: float = 0.4, ramp_steps: int = 0,
                 seed: int = 0):
        super().__init__(dim, queue_size, seed)
        if not 0.0 <= alpha <= 1.0 or ramp_steps < 0:
            raise ValueError(f"need alpha in [0, 1] and ramp_steps >= 0, got {alpha}, {ramp_steps}")
        self.alpha, self.ramp_steps = alpha, ramp_steps
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))  # training forwards

    def current_alpha(self, features: dict[str, Any]) -> float:
        """The distillation weight of this forward (before ``steps`` counts it)."""
        if "alpha" in features:
            return float(features["alpha"])
        if self.ramp_steps > 0:
            return self.alpha * min(1.0, int(self.steps) / self.ramp_steps)
        return self.alpha

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        img, txt = features["image_features"], features["text_features"]  # (B, D)
        scale, ids = features["logit_scale"], features.get("image_ids")
        alpha = self.current_alpha(features)
        img_m, txt_m = momentum_features(features)
        # Distributed, the rows are this rank's b and the in-batch columns the global batch's
        # momentum features (no gradient, so a plain gather); in a single process W = 1.
        batch_img_m, batch_txt_m = img_m, txt_m  # (W b, D)
        if world()[1] > 1:
            check_equal_shards(len(img), img.device)
            batch_img_m, batch_txt_m = gather_no_grad(img_m, check=False), gather_no_grad(txt_m, check=False)
        row_ids, col_ids = shard_ids(features, len(img), img.device)  # (b,), (W b,)
        self.check_batch(len(batch_img_m))
        # cat copies the queues, so enqueueing below leaves what backward saved intact.
        img_all = torch.cat([batch_img_m, self.image_queue.to(img.dtype)])  # (W b + Q, D)
        txt_all = torch.cat([batch_txt_m, self.text_queue.to(txt.dtype)])
        # Without ids the queue's ids say nothing about this batch: no queue positives.
        queue_ids = self.queue_ids if ids is not None else torch.full_like(self.queue_ids, -1)
        pos = row_targets(positive_mask(row_ids, queue_ids, col_ids=col_ids), img.dtype)
        with torch.no_grad():
            target_i2t = alpha * (scale * (img_m @ txt_all.T)).softmax(dim=1) + (1 - alpha) * pos
            target_t2i = alpha * (scale * (txt_m @ img_all.T)).softmax(dim=1) + (1 - alpha) * pos
        loss_i2t = soft_cross_entropy(scale * (img @ txt_all.T), target_i2t)
        loss_t2i = soft_cross_entropy(scale * (txt @ img_all.T), target_t2i)
        self.enqueue(batch_img_m, batch_txt_m, None if ids is None else col_ids)
        if self.training:
            self.steps += 1
        loss = (loss_i2t + loss_t2i) / 2
        return loss_dict(loss, scale, loss_i2t=loss_i2t, loss_t2i=loss_t2i,
                         alpha=img.new_tensor(alpha))


# ---- align ------------------------------------------------------------------------------


@LOSSES.register("align")
class AlignLoss(ClipLoss):
    """ALIGN's loss: the ``clip`` loss with label smoothing (0.1 in the paper). ALIGN pairs
    it with BatchNorm projection heads; those belong to the model."""

    def __init__(self, label_smoothing: float = 0.1):
        super().__init__(label_smoothing=label_smoothing)
