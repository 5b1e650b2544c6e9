"""Trainer overhead: steps/s of the Trainer vs a bare PyTorch loop, same model and data.

Both sides build the model, optimiser and cosine schedule and run the same number of
optimiser steps; the Trainer also writes metrics.jsonl, TensorBoard events, status.json,
a heartbeat and the final checkpoint, exactly as a real run does.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from workbench.config import RunConfig, option
from workbench.experiments import EXPERIMENTS, Experiment, build_config, create_experiment
from workbench.runs import RunStore
from workbench.train.schedulers import warmup_cosine
from workbench.train.trainer import Trainer


@dataclass
class MLPBenchConfig(RunConfig):
    kind: str = "bench-mlp"
    n: int = option(16384, "training samples", unit="samples", ge=1)
    dim: int = option(64, "input features", unit="features", ge=1)
    hidden: int = option(1024, "hidden units", unit="units", ge=1)
    main_sections: ClassVar[tuple[str, ...]] = ("train",)


def make_data(cfg):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(cfg.n, cfg.dim, generator=g)
    return TensorDataset(x, x.sum(1, keepdim=True))


def make_model(cfg):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(cfg.dim, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.hidden),
                         nn.ReLU(), nn.Linear(cfg.hidden, 1))


if "bench-mlp" not in EXPERIMENTS:
    @EXPERIMENTS.register("bench-mlp")
    class MLPBench(Experiment):
        config_cls = MLPBenchConfig

        def build_datasets(self):
            return make_data(self.cfg), None

        def build_model(self):
            return make_model(self.cfg)

        def training_step(self, model, batch):
            x, y = batch
            return {"loss": nn.functional.mse_loss(model(x), y)}


def bare_loop(cfg) -> float:
    """Steps/s of the loop a researcher would write by hand."""
    t0 = time.perf_counter()
    model = make_model(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    steps = cfg.train.max_epochs * (cfg.n // cfg.train.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(0, steps))
    loader = DataLoader(make_data(cfg), batch_size=cfg.train.batch_size, shuffle=True)
    for _ in range(cfg.train.max_epochs):
        for x, y in loader:
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            sched.step()
    return steps / (time.perf_counter() - t0)


def trainer_loop(cfg, root) -> float:
    t0 = time.perf_counter()
    run = RunStore(root).create(cfg)
    result = Trainer(create_experiment(cfg), run, progress_bar=False).fit()
    return result["step"] / (time.perf_counter() - t0)


def run(quick: bool = False) -> dict:
    # This 2-core VM's speed drifts by 10-20 % over tens of seconds. So the two sides run in
    # short alternating pairs (~1 s each) and the headline is the median of the per-pair
    # ratios: both halves of a pair see the same machine.
    epochs, pairs = 1, (2 if quick else 15)
    cfg = build_config({"kind": "bench-mlp"}, [f"train.max_epochs={epochs}", "train.batch_size=256",
                                               "train.device=cpu", "train.log_every=10"])
    with tempfile.TemporaryDirectory() as root:
        trainer_loop(cfg, root)
        bare_loop(cfg)  # warm-up: imports, allocator, TensorBoard writer
        bare, trainer = [], []
        for i in range(pairs):  # alternate which side goes first
            if i % 2:
                trainer.append(trainer_loop(cfg, root))
                bare.append(bare_loop(cfg))
            else:
                bare.append(bare_loop(cfg))
                trainer.append(trainer_loop(cfg, root))
    ratios = [t / b for t, b in zip(trainer, bare)]
    return {"overhead_ratio": round(statistics.median(ratios), 4),
            "trainer_steps_per_s": round(statistics.median(trainer), 1),
            "bare_steps_per_s": round(statistics.median(bare), 1),
            "pair_ratios": [round(r, 3) for r in ratios],
            "steps_per_run": epochs * (cfg.n // cfg.train.batch_size), "pairs": pairs,
            "model": f"MLP {cfg.dim}-{cfg.hidden}-{cfg.hidden}-1, batch {cfg.train.batch_size}",
            "threads": torch.get_num_threads()}
