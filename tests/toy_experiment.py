"""A small test-only experiment kind: noisy linear regression with an MLP that has dropout.

Dropout and the per-epoch shuffling exercise every RNG a resume must restore. Enabled in
subprocesses through WORKBENCH_PLUGINS=tests.toy_experiment.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import TensorDataset

from workbench.config import RunConfig, option
from workbench.experiments import EXPERIMENTS, Experiment
from workbench.runs import progress


@dataclass
class ToyData:
    n_train: int = option(256, "training samples", unit="samples", ge=1)
    n_val: int = option(64, "validation samples", unit="samples", ge=1)
    dim: int = option(8, "input features", unit="features", ge=1)
    noise: float = option(0.1, "label noise std", ge=0)


@dataclass
class ToyModel:
    hidden: int = option(32, "hidden units", unit="units", ge=1)
    dropout: float = option(0.1, "dropout probability", ge=0, lt=1)


@dataclass
class ToyConfig(RunConfig):
    kind: str = "toy"
    data: ToyData = field(default_factory=ToyData)
    model: ToyModel = field(default_factory=ToyModel)
    sleep_s: float = option(0.0, "sleep per training step (to test live jobs)", unit="seconds", ge=0)
    nan_at_step: int = option(-1, "return a NaN loss from this step on (to test failure); -1 = never",
                              unit="steps", ge=-1)
    setup_sleep_s: float = option(0.0, "sleep while building the datasets (a long setup)", unit="seconds", ge=0)
    raise_at_step: int = option(-1, "raise an error at this training step (to test a failing rank); -1 = never",
                                unit="steps", ge=-1)
    cache_file: str = option("", "a feature cache: the first process to build the datasets writes it, later ones "
                                 "read it; each notes what it did in <cache_file>.log")
    nested_fit: bool = option(False, "train one more in-memory model while writing the artifacts (as a line's "
                                     "extra seeds do) and note its outcome in artifacts/nested.json")
    raise_rank: int = option(-1, "with raise_at_step: only this distributed rank raises; -1 = every process",
                             ge=-1)


@EXPERIMENTS.register("toy")
class Toy(Experiment):
    config_cls = ToyConfig
    description = "test-only regression"

    def build_datasets(self):
        d = self.cfg.data
        if self.cfg.setup_sleep_s:  # like feature caching: a long phase before any step
            steps = 10
            with progress.phase("setup", "toy setup", total=steps):
                for i in range(steps):
                    time.sleep(self.cfg.setup_sleep_s / steps)
                    progress.advance(i + 1)
        if self.cfg.cache_file:  # like a frozen-backbone feature cache
            from pathlib import Path

            cache, rank = Path(self.cfg.cache_file), os.environ.get("RANK", "0")
            with open(f"{cache}.log", "a") as log:
                log.write(f"{'loaded' if cache.is_file() else 'computed'} rank {rank}\n")
            if not cache.is_file():
                time.sleep(1.0)  # a slow computation: a rank that did not wait would compute it too
                cache.write_text("features")
        g = torch.Generator().manual_seed(1234)
        w = torch.randn(d.dim, 1, generator=g)
        x = torch.randn(d.n_train + d.n_val, d.dim, generator=g)
        y = x @ w + d.noise * torch.randn(x.shape[0], 1, generator=g)
        return (TensorDataset(x[: d.n_train], y[: d.n_train]),
                TensorDataset(x[d.n_train :], y[d.n_train :]))

    def build_model(self):
        m = self.cfg.model
        return nn.Sequential(nn.Linear(self.cfg.data.dim, m.hidden), nn.ReLU(),
                             nn.Dropout(m.dropout), nn.Linear(m.hidden, 1))

    def training_step(self, model, batch):
        x, y = batch
        if self.cfg.sleep_s:
            time.sleep(self.cfg.sleep_s)
        pred = model(x)  # (B, 1)
        loss = nn.functional.mse_loss(pred, y)
        if model.training:
            self._calls = getattr(self, "_calls", 0) + 1
            rank = int(os.environ.get("RANK", "0"))
            if self._calls == self.cfg.raise_at_step and self.cfg.raise_rank in (-1, rank):
                raise RuntimeError(f"toy failure at step {self._calls}")
            if 0 <= self.cfg.nan_at_step < self._calls:
                loss = loss * float("nan")
        return {"loss": loss, "mae": (pred - y).abs().mean().detach()}

    def save_artifacts(self, model, val_loader, artifacts_dir):
        if not self.cfg.nested_fit:
            return
        import dataclasses
        import json

        from workbench.train.trainer import Trainer

        seed_cfg = dataclasses.replace(self.cfg, nested_fit=False, seed=self.cfg.seed + 1)
        result = Trainer(Toy(seed_cfg), run=None, progress_bar=False).fit()
        artifacts_dir.mkdir(parents=True, exist_ok=True)
        (artifacts_dir / "nested.json").write_text(json.dumps({"state": result["state"], "step": result["step"]}))
