"""Optimisers and LR schedules named in ``TrainConfig``."""
from __future__ import annotations

import math

import torch
from torch import nn

from workbench.config import TrainConfig
from workbench.registry import Registry

OPTIMIZERS: Registry[torch.optim.Optimizer] = Registry("optimizer")
SCHEDULERS: Registry = Registry("scheduler")


@OPTIMIZERS.register("adamw")
def _adamw(params, tc: TrainConfig):
    return torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)


@OPTIMIZERS.register("adam")
def _adam(params, tc: TrainConfig):
    return torch.optim.Adam(params, lr=tc.lr, weight_decay=tc.weight_decay)


@OPTIMIZERS.register("sgd")
def _sgd(params, tc: TrainConfig):
    return torch.optim.SGD(params, lr=tc.lr, momentum=tc.momentum, weight_decay=tc.weight_decay)


def build_optimizer(model: nn.Module, tc: TrainConfig, groups: list[dict] | None = None) -> torch.optim.Optimizer:
    """One group of every parameter, or the experiment's groups (``lr_scale`` -> lr).

    Frozen parameters stay in their group so that unfreezing them later trains them.
    """
    if groups is None:
        groups = [{"params": list(model.parameters())}]
    groups = [{**{k: v for k, v in g.items() if k != "lr_scale"}, "params": list(g["params"]),
               "lr": tc.lr * g.get("lr_scale", 1.0)} for g in groups]
    if not any(p.requires_grad for g in groups for p in g["params"]):
        raise ValueError("the model has no trainable parameters")
    return OPTIMIZERS.create(tc.optimizer, params=groups, tc=tc)


def warmup_cosine(warmup: int, total: int):
    """LR multiplier: linear 0 -> 1 over ``warmup`` steps, then cosine 1 -> 0 at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def warmup_constant(warmup: int):
    return lambda step: (step + 1) / warmup if step < warmup else 1.0


@SCHEDULERS.register("cosine")
def _cosine(opt, tc: TrainConfig, total_steps: int):
    return torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(tc.warmup_steps, total_steps))


@SCHEDULERS.register("constant")
def _constant(opt, tc: TrainConfig, total_steps: int):
    return torch.optim.lr_scheduler.LambdaLR(opt, warmup_constant(tc.warmup_steps))


@SCHEDULERS.register("onecycle")
def _onecycle(opt, tc: TrainConfig, total_steps: int):
    max_lr = [g["lr"] for g in opt.param_groups]
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=max(total_steps, 2))


@SCHEDULERS.register("plateau")
def _plateau(opt, tc: TrainConfig, total_steps: int):
    mode = tc.early_stop_mode if tc.early_stop_metric else "min"
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode=mode, factor=tc.plateau_factor, patience=tc.plateau_patience
    )


def build_scheduler(opt, tc: TrainConfig, total_steps: int):
    """Step-based schedules are stepped every optimiser step; plateau on each validation."""
    return SCHEDULERS.create(tc.scheduler, opt=opt, tc=tc, total_steps=total_steps)


def steps_per_validation(sched) -> bool:
    return isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
