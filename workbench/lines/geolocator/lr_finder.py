"""Learning-rate range test (Smith 2015; the fastai / pytorch-lr-finder "LR finder").

Train for ``num_iter`` steps while the LR grows exponentially from ``start_lr`` to
``end_lr``; record the exponentially smoothed training loss; stop early once it exceeds
``diverge`` times its minimum. The suggestion is the LR of the steepest descent of the
smoothed loss (most negative d loss / d log lr) before the minimum. This is a short
experiment of its own, the one place besides the Trainer that runs optimiser steps; it
works for any experiment kind (it only calls ``build_datasets``, ``build_model``,
``param_groups``, ``collate`` and ``training_step``) and leaves no run behind.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch.utils.data import DataLoader

from workbench.errors import ConfigError, WorkbenchError
from workbench.experiments.base import Experiment
from workbench.train.schedulers import build_optimizer
from workbench.train.trainer import seed_everything, select_device


@dataclass
class LRFinderResult:
    """lrs / losses [T]: the LR of each step and the smoothed loss after it; raw_losses [T];
    suggestion: the suggested LR (None when the loss never decreased); min_lr: LR at the
    smallest smoothed loss; stopped_early: True if the loss diverged."""

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    suggestion: float | None
    min_lr: float | None
    stopped_early: bool
    info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"suggestion": self.suggestion, "min_lr": self.min_lr, "stopped_early": self.stopped_early,
                "steps": len(self.lrs), "lrs": self.lrs, "losses": self.losses, **self.info}


def suggest_lr(lrs: np.ndarray, losses: np.ndarray, skip_start: int = 3) -> float | None:
    """LR at the steepest descent of ``losses`` vs log10(lrs), up to the loss minimum."""
    lrs, losses = np.asarray(lrs, np.float64), np.asarray(losses, np.float64)
    ok = np.isfinite(losses)
    lrs, losses = lrs[ok], losses[ok]
    stop = int(np.argmin(losses)) + 1 if len(losses) else 0
    lo = min(skip_start, max(stop - 2, 0))
    if stop - lo < 2:
        return None
    slope = np.gradient(losses[lo:stop], np.log10(lrs[lo:stop]))
    best = int(np.argmin(slope))
    return float(lrs[lo + best]) if slope[best] < 0 else None


def lr_range_test(exp: Experiment, start_lr: float = 1e-6, end_lr: float = 1.0, num_iter: int = 100,
                  smooth: float = 0.05, diverge: float = 4.0, batch_size: int | None = None) -> LRFinderResult:
    """Run the range test on ``exp``'s training set (a fresh model; the experiment's config
    is not modified). Returns an ``LRFinderResult`` with a finite suggestion when the loss
    decreased at some LR."""
    if not 0 < start_lr < end_lr:
        raise ConfigError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    if num_iter < 5:
        raise ConfigError(f"num_iter must be >= 5, got {num_iter}")
    if not 0 < smooth <= 1:
        raise ConfigError(f"smooth must be in (0, 1], got {smooth}")
    cfg = exp.cfg
    tc = replace(cfg.train, lr=start_lr, batch_size=batch_size or cfg.train.batch_size)
    seed_everything(cfg.seed)
    device = select_device(tc.device)
    train_ds, _ = exp.build_datasets()
    model = exp.build_model().to(device)
    exp.on_epoch_start(model, 0)
    optimizer = build_optimizer(model, tc, exp.param_groups(model))
    base = [g["lr"] / start_lr for g in optimizer.param_groups]  # per-group lr_scale
    gamma = (end_lr / start_lr) ** (1.0 / (num_iter - 1))
    g = torch.Generator().manual_seed(cfg.seed)
    weights = exp.sample_weights(train_ds)
    sampler = (torch.utils.data.WeightedRandomSampler(weights, num_iter * tc.batch_size, generator=g)
               if weights is not None else torch.utils.data.RandomSampler(
                   train_ds, replacement=True, num_samples=num_iter * tc.batch_size, generator=g))
    loader = DataLoader(train_ds, batch_size=tc.batch_size, sampler=sampler, collate_fn=exp.collate,
                        num_workers=tc.num_workers)
    lrs, losses, raw = [], [], []
    avg, best, stopped = 0.0, math.inf, False
    model.train()
    for step, batch in enumerate(loader):
        if step >= num_iter:
            break
        lr = start_lr * gamma**step
        for group, scale in zip(optimizer.param_groups, base):
            group["lr"] = lr * scale
        batch = exp.move_to(batch, device)
        loss = exp.training_step(model, batch)["loss"]
        loss.backward()
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        value = float(loss.detach())
        raw.append(value)
        if not math.isfinite(value):
            stopped = True
            break
        avg = smooth * value + (1 - smooth) * avg
        smoothed = avg / (1 - (1 - smooth) ** (step + 1))  # bias-corrected EMA
        lrs.append(lr)
        losses.append(smoothed)
        best = min(best, smoothed)
        if step > 5 and smoothed > diverge * best:
            stopped = True
            break
    if not lrs:
        raise WorkbenchError("the LR range test made no step: the training set is empty or the loss "
                             f"was not finite at lr={start_lr}")
    arr = np.asarray(losses)
    return LRFinderResult(lrs, losses, raw[: len(lrs)], suggest_lr(np.asarray(lrs), arr),
                          float(lrs[int(np.argmin(arr))]), stopped,
                          {"start_lr": start_lr, "end_lr": end_lr, "num_iter": num_iter,
                           "batch_size": tc.batch_size})
