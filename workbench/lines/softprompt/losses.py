"""Losses of the soft-prompt line; each is weighted in the config and logged.

Shapes: pred / target [B, L, D], mask [B, L] (True = real token; prefix masks),
weights [B, K] (mixture rows summing to 1), entries [K, L, D] (the dictionary).

| term | value | minimised means |
| --- | --- | --- |
| ``mse`` | masked token MSE, per number | predicted tokens equal the target tokens |
| ``cosine`` | 1 - mean cosine of matching tokens | tokens point the same way |
| ``gram`` | MSE of the [L, L] token-cosine (Gram) matrices over real pairs | same inter-token relations |
| ``contrastive`` | symmetric InfoNCE of pooled pred vs pooled target across the batch | different places give different sequences |
| ``diversity`` | mean squared cosine between distinct (centred) entries | entries differ from one another |
| ``balance`` | log K - H(batch-mean mixture) >= 0 | every entry is used (no dead entries) |
| ``sharpness`` | mean per-sample H(w_b) / log K in [0, 1] | each place commits to few entries |

Signs: the reference *minimised* per-sample entropy alone, which rewards every place putting
all its weight on the same entry (collapse). Here ``balance`` maximises the entropy of the
*batch-mean* mixture, which a collapse maximally violates (it scores log K); ``sharpness``
(optional, weight 0 by default) may then ask for confident per-sample mixtures, because the
balance term keeps them on different entries.

Terms register in ``LOSS_TERMS``: ``fn(pred, target, mask, out, model, cfg) -> scalar`` or
None where a term does not apply (e.g. ``diversity`` for models without a dictionary).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F

from workbench.registry import Registry

LOSS_TERMS: Registry[Callable[..., torch.Tensor | None]] = Registry("soft-prompt loss term")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x [B, L, D] over the real tokens of each row -> [B, D]."""
    m = mask.to(x.dtype).unsqueeze(-1)  # (B, L, 1)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def token_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens and dimensions of (pred - target)^2."""
    m = mask.to(pred.dtype)
    se = (pred - target).pow(2).sum(-1)  # (B, L)
    return (se * m).sum() / (m.sum().clamp_min(1.0) * pred.shape[-1])


def token_cosine(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity of matching real tokens (a metric in [-1, 1]; higher is better)."""
    m = mask.to(pred.dtype)
    cos = F.cosine_similarity(pred, target, dim=-1, eps=1e-8)  # (B, L)
    return (cos * m).sum() / m.sum().clamp_min(1.0)


def gram_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE between token-cosine matrices [B, L, L] of pred and target over pairs of real tokens."""
    p, t = F.normalize(pred, dim=-1), F.normalize(target, dim=-1)
    gp, gt = p @ p.transpose(1, 2), t @ t.transpose(1, 2)  # (B, L, L)
    m = mask.to(pred.dtype)
    pairs = m.unsqueeze(2) * m.unsqueeze(1)  # (B, L, L)
    return ((gp - gt).pow(2) * pairs).sum() / pairs.sum().clamp_min(1.0)


def contrastive_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                     temperature: float = 0.07) -> torch.Tensor:
    """Symmetric InfoNCE between pooled predictions and pooled targets [B, D] (row i's own
    target is its positive, the other B - 1 targets of the batch its negatives).

    Both sides are pooled with the target's mask (masked mean, then L2 norm: for MiniLM
    the pooled target is the sentence embedding of the prompt).
    """
    p = F.normalize(masked_mean(pred, mask), dim=-1)
    t = F.normalize(masked_mean(target, mask), dim=-1)
    logits = p @ t.T / temperature  # (B, B)
    labels = torch.arange(len(p), device=p.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def dictionary_diversity(entries: torch.Tensor) -> torch.Tensor:
    """Mean squared cosine between distinct entries [K, L, D], after removing their mean.

    Centring first matters: every prompt shares tokens ("a photo taken in"), so raw entries
    are all alike in those positions and pushing them apart would fight the data. 0 when the
    centred entries are orthogonal; 1 when they are all (anti)parallel.
    """
    K = entries.shape[0]
    e = entries.reshape(K, -1)
    e = F.normalize(e - e.mean(0, keepdim=True), dim=-1)
    sim = e @ e.T  # (K, K)
    off = ~torch.eye(K, dtype=torch.bool, device=entries.device)
    return sim[off].pow(2).mean()


def entropy(p: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Shannon entropy in nats along ``dim`` (0 log 0 = 0)."""
    return -(p * p.clamp_min(1e-12).log()).sum(dim)


def usage_balance(weights: torch.Tensor) -> torch.Tensor:
    """log K - H(mean_b weights[b]) in [0, log K]: 0 when the batch uses every entry equally,
    log K when all of it sits on one entry."""
    K = weights.shape[-1]
    return math.log(K) - entropy(weights.mean(0))


def mixture_sharpness(weights: torch.Tensor) -> torch.Tensor:
    """Mean per-sample entropy / log K in [0, 1]: 0 for one-hot mixtures, 1 for uniform ones."""
    return entropy(weights).mean() / math.log(weights.shape[-1])


# -- the registered terms ----------------------------------------------------------------


@LOSS_TERMS.register("mse")
def _mse(pred, target, mask, out, model, cfg):
    return token_mse(pred, target, mask)


@LOSS_TERMS.register("cosine")
def _cosine(pred, target, mask, out, model, cfg):
    return 1.0 - token_cosine(pred, target, mask)


@LOSS_TERMS.register("gram")
def _gram(pred, target, mask, out, model, cfg):
    return gram_loss(pred, target, mask)


@LOSS_TERMS.register("contrastive")
def _contrastive(pred, target, mask, out, model, cfg):
    return contrastive_loss(pred, target, mask, cfg.contrastive_temperature) if len(pred) > 1 else None


@LOSS_TERMS.register("diversity")
def _diversity(pred, target, mask, out, model, cfg):
    d = getattr(model, "dictionary", None)
    return dictionary_diversity(d.entries) if d is not None else None


@LOSS_TERMS.register("balance")
def _balance(pred, target, mask, out, model, cfg):
    return usage_balance(out["weights"]) if "weights" in out else None


@LOSS_TERMS.register("sharpness")
def _sharpness(pred, target, mask, out, model, cfg):
    return mixture_sharpness(out["weights"]) if "weights" in out else None


def compute_losses(out: dict[str, torch.Tensor], target: torch.Tensor, mask: torch.Tensor,
                   model: torch.nn.Module, cfg: Any) -> dict[str, torch.Tensor]:
    """{"loss": sum of weight * term, "loss_<term>": unweighted term, ...}.

    ``cfg`` has one weight attribute per registered term (e.g. ``cfg.mse``) and
    ``contrastive_temperature``. Every applicable term is computed and returned, also with
    weight 0, so that it is logged; a term contributes to ``loss`` only with weight != 0.
    """
    pred = out["tokens"]
    target = target.to(pred.dtype)
    terms: dict[str, torch.Tensor] = {}
    total = pred.new_zeros(())
    for name in LOSS_TERMS.list():
        value = LOSS_TERMS.get(name)(pred, target, mask, out, model, cfg)
        if value is None:
            continue
        terms[f"loss_{name}"] = value
        weight = float(getattr(cfg, name))
        if weight:
            total = total + weight * value
    return {"loss": total, **terms}
