"""The one training loop every experiment kind uses.

One place builds model, optimiser, scheduler and data loaders (``Trainer.setup``), and one
process writes the run directory. Under torchrun (``train.nproc`` > 1, see
``workbench.train.distributed``) every rank runs this same loop: the experiment's training
step is wrapped in DistributedDataParallel, each rank takes its shard of the same seeded
global batch, logged scalars and validation metrics are reduced across ranks, the ranks
agree on stopping, and rank 0 alone writes (status, metrics, TensorBoard, checkpoints,
artifacts). No kind needs to know.
"""
from __future__ import annotations

import math
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from workbench.config import RunConfig, to_dict
from workbench.contrastive.distributed import local_only
from workbench.errors import NonFiniteLoss, WorkbenchError  # noqa: F401  (NonFiniteLoss re-exported)
from workbench.experiments.base import Experiment
from workbench.runs import progress
from workbench.runs.store import Run
from workbench.train import STOP
from workbench.train import distributed as ddp
from workbench.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from workbench.train.schedulers import build_optimizer, build_scheduler, steps_per_validation

STATUS_EVERY_S = 1.0  # progress in status.json at most this often (each write is a rename)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def select_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise WorkbenchError("train.device=cuda but no CUDA device is available; use train.device=auto or cpu")
    return torch.device(name)


class EpochBatches(torch.utils.data.Sampler):
    """Batches of one epoch: a permutation seeded by (seed, epoch), from batch ``start`` on.

    Seeding per epoch (not from the global RNG) is what makes a mid-epoch resume replay the
    exact same batches. With ``dist`` (a distributed run) every rank draws the same global
    batches and yields its shard of each.
    """

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int, start: int = 0,
                 weights: torch.Tensor | None = None, dist: ddp.Dist | None = None):
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        if weights is None:
            self.order = torch.randperm(n, generator=g).tolist()
        else:  # weighted draw with replacement, e.g. class-balanced sampling
            self.order = torch.multinomial(weights.double(), n, replacement=True, generator=g).tolist()
        self.batch_size, self.start, self.dist = batch_size, start, dist

    def __iter__(self):
        for b in range(self.start, len(self)):
            batch = self.order[b * self.batch_size : (b + 1) * self.batch_size]
            yield batch if self.dist is None or not self.dist.enabled else ddp.shard(batch, self.dist)

    def __len__(self) -> int:
        return epoch_steps(len(self.order), self.batch_size, self.dist)


def epoch_steps(n: int, batch_size: int, dist: ddp.Dist | None = None) -> int:
    """Batches in an epoch of ``n`` samples; distributed, a last batch smaller than the
    world is dropped (it would leave a rank without samples)."""
    if dist is not None and dist.enabled and n % batch_size < dist.world:
        n -= n % batch_size
    return math.ceil(n / batch_size)


@dataclass
class LoopState:
    """Everything besides model/optimiser state that a checkpoint must restore."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best: float | None = None
    bad_validations: int = 0
    stop_reason: str = ""
    pruned: bool = False  # a study's pruner stopped this trial (workbench.tuning.report)


class Trainer:
    _reporter = None  # a study trial's link (workbench.tuning.report), set up in setup()

    def __init__(self, experiment: Experiment, run: Run | None = None, progress_bar: bool = True):
        self.exp = experiment
        self.cfg: RunConfig = experiment.cfg
        self.tc = self.cfg.train
        self.run = run
        self.progress_bar = progress_bar
        self._stop_requested = False
        self._writer = None
        self._heartbeat: progress.Heartbeat | None = None  # ours, when no job installed one
        self._status_time = 0.0
        # The run's trainer reports phases; an in-memory one (run=None, e.g. an extra seed)
        # only advances the counters of the phase its caller entered.
        self._ckpt_run = run  # where a resume reads last.pt (every rank; only rank 0 writes)
        self.dist = ddp.from_env()  # torchrun's ranks; a single process outside it
        if not self.dist.main:  # rank 0 alone writes the run directory
            self.run, self.progress_bar = None, False
        self._owns_phase = self.run is not None
        self._ddp: torch.nn.Module | None = None

    # -- setup -----------------------------------------------------------------------
    def setup(self) -> None:
        seed_everything(self.cfg.seed)
        if self.tc.threads:
            torch.set_num_threads(self.tc.threads)
        self.device = select_device(self.tc.device)
        if self.dist.enabled:
            ddp.check_nproc(self.dist.world, self.tc.batch_size, "cpu", name="torchrun's WORLD_SIZE")
            self.device = ddp.init(self.dist, self.device, self.tc.dist_timeout_s)
        self._set_phase("setup", "loading data")
        if not self.dist.main:
            ddp.barrier(self.dist)  # rank 0 builds first: frozen-feature caches are computed once
        train_ds, val_ds = self.exp.build_datasets()
        if self.dist.main:
            ddp.barrier(self.dist)
        if self.tc.max_samples:
            train_ds = Subset(train_ds, range(min(self.tc.max_samples, len(train_ds))))
        if len(train_ds) == 0:
            raise WorkbenchError("the training set is empty; check the data paths and train.max_samples")
        self.train_ds: Dataset = train_ds
        # in-memory datasets may move to the device once (then batches are gathered there)
        self._data_on_device = bool(self.exp.place_data(self.device))
        self.val_ds: Dataset | None = val_ds
        self._set_phase("setup", "building the model")
        self.model = self.exp.build_model().to(self.device)
        if self.dist.enabled:
            # Same seed, same init on every rank (DDP also broadcasts rank 0's weights); from
            # here on each rank draws its own dropout / augmentation randomness.
            if not self.dist.main:
                seed_everything(self.cfg.seed + 1_000_003 * self.dist.rank)
            self._wrap()
        self.optimizer = build_optimizer(self.model, self.tc, self.exp.param_groups(self.model))
        self.sample_weights = self.exp.sample_weights(train_ds)
        self.steps_per_epoch = epoch_steps(len(train_ds), self.tc.batch_size, self.dist)
        total = self.tc.max_epochs * self.steps_per_epoch
        self.total_steps = min(total, self.tc.max_steps) if self.tc.max_steps else total
        self.scheduler = build_scheduler(self.optimizer, self.tc, self.total_steps)
        self.use_amp = self.tc.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.monitor = self.tc.early_stop_metric or "val/loss"
        from workbench.tuning.report import TrialReporter

        self._reporter = TrialReporter.for_run(self.run.path) if self.run is not None else None
        self.state = LoopState()
        self._acc: dict[str, torch.Tensor] = {}
        self._acc_n = 0
        self._last_val_metrics: dict[str, float] = {}

    def _wrap(self) -> None:
        self._trainable = ddp.trainable(self.model)
        self._ddp = ddp.wrap(self.exp, self.model, self.device, self.tc.ddp_find_unused)

    def train_loader(self, epoch: int, start: int) -> DataLoader:
        sampler = EpochBatches(len(self.train_ds), self.tc.batch_size, self.cfg.seed, epoch, start,
                               self.sample_weights, self.dist)
        g = torch.Generator().manual_seed(self.cfg.seed * 7_919 + epoch)  # worker seeds
        return DataLoader(self.train_ds, batch_sampler=sampler, collate_fn=self.exp.collate,
                          num_workers=self.tc.num_workers, generator=g,
                          pin_memory=self.device.type == "cuda" and not self._data_on_device)

    def val_loader(self) -> DataLoader | None:
        if self.val_ds is None or len(self.val_ds) == 0:
            return None
        return DataLoader(self.val_ds, batch_size=self.tc.batch_size, shuffle=False,
                          collate_fn=self.exp.collate, num_workers=self.tc.num_workers)

    # -- checkpoints -----------------------------------------------------------------
    def checkpoint_payload(self) -> dict[str, Any]:
        s = self.state
        return {
            "config": to_dict(self.cfg),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "rng_ranks": ddp.gather_objects(rng_state(), self.dist) if self.dist.enabled else [],
            "loop": {"step": s.step, "epoch": s.epoch, "batch_in_epoch": s.batch_in_epoch,
                     "best": s.best, "bad_validations": s.bad_validations},
            "acc": {k: v.detach().cpu() for k, v in self._acc.items()},
            "acc_n": self._acc_n,
        }

    def save(self, which: str = "last") -> None:
        """Write a checkpoint (rank 0; in a distributed run every rank calls this, since the
        payload gathers each rank's RNG state)."""
        if self.run is not None or self.dist.enabled:
            payload = self.checkpoint_payload()
            if self.run is not None:
                save_checkpoint(payload, self.run.checkpoint_dir / f"{which}.pt")

    def restore(self, path) -> None:
        ckpt = load_checkpoint(path, map_location=self.device)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        loop = ckpt["loop"]
        self.state = LoopState(loop["step"], loop["epoch"], loop["batch_in_epoch"], loop["best"], loop["bad_validations"])
        self._acc = {k: v.to(self.device) for k, v in ckpt["acc"].items()}
        self._acc_n = ckpt["acc_n"]
        ranks = ckpt.get("rng_ranks") or []
        # a distributed run resumed with the same number of ranks replays each rank's RNG
        set_rng_state(ranks[self.dist.rank] if len(ranks) == self.dist.world else ckpt["rng"])

    # -- logging ---------------------------------------------------------------------
    def log(self, split: str, metrics: dict[str, float]) -> None:
        record = {"step": self.state.step, "epoch": self.state.epoch, "split": split,
                  "time": time.time(), **metrics}
        if self.run is not None:
            self.run.append_metrics(record)
        if self._writer is not None:
            for key, value in metrics.items():
                self._writer.add_scalar(key, value, self.state.step)

    def _status(self, **fields) -> None:
        if self.run is None:
            return
        done = self.state.step / max(1, self.total_steps)
        elapsed = time.time() - self._t0
        steps_run = self.state.step - self._start_step
        eta = elapsed / steps_run * (self.total_steps - self.state.step) if steps_run else None
        base = dict(step=self.state.step, epoch=self.state.epoch, total_steps=self.total_steps,
                    progress=round(done, 4), eta_s=eta, heartbeat=time.time())
        self.run.update_status(**{**base, **fields})
        self._status_time = time.time()

    def _set_phase(self, name: str, detail: str = "", total: int | None = None) -> None:
        if self._owns_phase:
            progress.set_phase(name, detail, total)

    def _flush_train_log(self) -> None:
        """Mean of the scalars accumulated since the last log; fails on NaN/inf.

        Checking here rather than every step avoids a host sync per step on GPU.
        """
        if not self._acc_n:
            return
        reduced = ddp.mean_over_ranks({k: v / self._acc_n for k, v in self._acc.items()}, self.dist)
        means = {k: v.item() for k, v in reduced.items()}
        self._acc, self._acc_n = {}, 0
        bad = [k for k, v in means.items() if not math.isfinite(v)]
        if bad:
            raise NonFiniteLoss(
                f"{bad[0]} became {means[bad[0]]} by step {self.state.step}; "
                "lower train.lr, set train.grad_clip (e.g. 1.0) or check the data for NaNs"
            )
        means["lr"] = self.optimizer.param_groups[0]["lr"]
        self.log("train", {f"train/{k}" if k != "lr" else k: v for k, v in means.items()})

    # -- the loop --------------------------------------------------------------------
    def train_step(self, batch) -> None:
        self.model.train()
        batch = self.exp.move_to(batch, self.device)
        with torch.autocast(self.device.type, enabled=self.use_amp):
            out = self._ddp(batch) if self._ddp is not None else self.exp.training_step(self.model, batch)
        loss = out["loss"]
        self.scaler.scale(loss).backward()
        if self.tc.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.tc.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if not steps_per_validation(self.scheduler):
            self.scheduler.step()
        for key, value in out.items():
            value = value.detach().float()
            self._acc[key] = self._acc[key] + value if key in self._acc else value
        self._acc_n += 1

    def _evaluate(self, loader: DataLoader) -> dict[str, float]:
        """The experiment's validation metrics, the same on every rank. Distributed: the
        default ``Experiment.evaluate`` (a per-sample mean) runs on each rank's shard and the
        means are combined by count; a kind's own ``evaluate`` (recall@K, medians, ... that do
        not split) runs on rank 0 over the whole set and is broadcast."""
        if not self.dist.enabled:
            return self.exp.evaluate(self.model, loader)
        with local_only():  # no rank waits in a loss's gather for ranks that evaluate other rows
            return self._evaluate_distributed(loader)

    def _evaluate_distributed(self, loader: DataLoader) -> dict[str, float]:
        if type(self.exp).evaluate is Experiment.evaluate:
            n, w = len(self.val_ds), self.dist.world
            lo, hi = n * self.dist.rank // w, n * (self.dist.rank + 1) // w
            part = DataLoader(Subset(self.val_ds, range(lo, hi)), batch_size=self.tc.batch_size, shuffle=False,
                              collate_fn=self.exp.collate, num_workers=self.tc.num_workers)
            local = self.exp.evaluate(self.model, part) if hi > lo else {}
            keys = ddp.broadcast(sorted(local), self.dist)
            sums = torch.tensor([float(local.get(k, 0.0)) * (hi - lo) for k in keys] + [float(hi - lo)],
                                dtype=torch.float64, device=self.device)
            sums = ddp.sum_over_ranks(sums, self.dist)
            return {k: (sums[i] / sums[-1]).item() for i, k in enumerate(keys)}
        metrics = self.exp.evaluate(self.model, loader) if self.dist.main else None
        return ddp.broadcast(metrics, self.dist)

    def validate(self) -> dict[str, float]:
        loader = self.val_loader()
        if loader is None:
            return {}
        self.model.eval()
        metrics = {f"val/{k}": float(v) for k, v in self._evaluate(loader).items()}
        self.log("val", metrics)
        self._last_val_metrics = metrics
        pruned = self._reporter is not None and self._reporter.report(metrics, self.state.step)
        if ddp.broadcast(pruned, self.dist):  # only rank 0 reports to the study
            self.state.pruned = True
            self.state.stop_reason = f"pruned by the study at step {self.state.step}"
        value = metrics.get(self.monitor)
        if steps_per_validation(self.scheduler) and value is not None:
            self.scheduler.step(value)
        if value is not None:
            better = (self.state.best is None or
                      (value < self.state.best if self.tc.early_stop_mode == "min" or not self.tc.early_stop_metric
                       else value > self.state.best))
            if better:
                self.state.best, self.state.bad_validations = value, 0
                self.save("best")
            else:
                self.state.bad_validations += 1
            if self.tc.early_stop_metric and self.state.bad_validations >= self.tc.patience:
                self.state.stop_reason = f"early stopping: {self.monitor} did not improve for {self.tc.patience} validations"
        elif self.tc.early_stop_metric:
            raise WorkbenchError(f"train.early_stop_metric '{self.monitor}' is not logged. Available: {sorted(metrics)}")
        self.save("last")
        return metrics

    def _on_sigterm(self, signum, frame) -> None:
        STOP.set()

    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Train to the end (or until stopped); returns the final status fields."""
        if self.run is not None and progress.current() is None:  # in-process use: beat here
            self._heartbeat = progress.Heartbeat(self.run, progress.heartbeat_interval()).start()
            progress.install(self._heartbeat)
        previous = signal.signal(signal.SIGTERM, self._on_sigterm) if threading.current_thread() is threading.main_thread() else None
        try:
            self.setup()
            if resume:
                if self._ckpt_run is None or not self._ckpt_run.last_checkpoint.is_file():
                    raise WorkbenchError("cannot resume: no checkpoints/last.pt in this run")
                self.restore(self._ckpt_run.last_checkpoint)
            if self.run is not None:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(log_dir=str(self.run.path), flush_secs=10)
            self._t0, self._start_step = time.time(), self.state.step
            self._set_phase("train", "training")
            self._status(state="running", error=None, started=self._t0, processes=self.dist.world)
            final = self._loop()
        except NonFiniteLoss as exc:
            self._status(state="failed", error=str(exc), ended=time.time())
            raise
        except Exception as exc:
            ddp.record_error(self.dist, f"{type(exc).__name__}: {exc}" if not isinstance(exc, WorkbenchError)
                             else str(exc))
            raise
        finally:
            ddp.close()
            STOP.clear()  # this stop request is consumed; a later fit in this process starts clean
            if self._heartbeat is not None:
                self._heartbeat.stop()
                progress.install(None)
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            if self._writer is not None:
                self._writer.close()
        return final

    def _loop(self) -> dict[str, Any]:
        from tqdm import tqdm

        tty = sys.stderr.isatty()
        bar = tqdm(total=self.total_steps, initial=self.state.step, disable=not self.progress_bar,
                   mininterval=0.5 if tty else 10, dynamic_ncols=True, desc=self.cfg.kind)
        s, tc = self.state, self.tc
        last_val_step = -1
        while s.epoch < tc.max_epochs and s.step < self.total_steps and not s.stop_reason:
            self.exp.on_epoch_start(self.model, s.epoch)
            if self._ddp is not None and ddp.trainable(self.model) != self._trainable:
                self._wrap()  # a layer (un)frozen: DDP must hook the new set of parameters
            for batch in self.train_loader(s.epoch, s.batch_in_epoch):
                self.train_step(batch)
                s.step += 1
                s.batch_in_epoch += 1
                bar.update(1)
                if s.step % tc.log_every == 0:
                    self._flush_train_log()
                    if time.time() - self._status_time >= STATUS_EVERY_S:  # readers poll ~1-2 s
                        self._status()
                if not self._owns_phase:
                    progress.advance(s.step, self.total_steps)
                if tc.val_every and s.step % tc.val_every == 0:
                    self.validate()
                    last_val_step = s.step
                elif tc.checkpoint_every and s.step % tc.checkpoint_every == 0:
                    self.save("last")
                if ddp.any_rank(self._stop_requested or STOP.is_set(), self.dist, self.device):
                    self._flush_train_log()
                    self.save("last")
                    self._status(state="stopped", ended=time.time())
                    bar.close()
                    return {"state": "stopped", "step": s.step}
                epoch_ends = s.batch_in_epoch >= self.steps_per_epoch  # let for-else close it
                if (s.step >= self.total_steps or s.stop_reason) and not epoch_ends:
                    break
            else:  # the epoch ran to its end
                s.epoch += 1
                s.batch_in_epoch = 0
                if not tc.val_every:
                    self._flush_train_log()
                    self.validate()
                    last_val_step = s.step
                if tc.keep_every_epochs and s.epoch % tc.keep_every_epochs == 0:
                    self.save(f"epoch-{s.epoch:03d}")
                continue
            break
        bar.close()
        self._flush_train_log()
        self._status()  # the last step's progress, before the (maybe long) post-training phases
        if last_val_step != s.step:
            self._set_phase("eval", "final validation")
            final = self.validate()
        else:
            final = self._last_val_metrics
        self.save("last")
        state = "pruned" if s.pruned else "done"
        # A study's trials are chosen on validation: they never touch the test split (no
        # artifacts); the full run from best_config.yaml writes them.
        if self.run is not None and self._reporter is None:
            ddp.close()  # the other ranks are done; rank 0 writes the artifacts alone
            self._set_phase("artifacts", "evaluation and artifacts")
            self.exp.save_artifacts(self.model, self.val_loader(), self.run.artifacts_dir)
        result = {"state": state, "step": s.step, "final": final, "best": s.best,
                  "monitor": self.monitor, "stop_reason": s.stop_reason or None}
        self._status(state=state, ended=time.time(), progress=1.0, final=final, best=s.best,
                     monitor=self.monitor, stop_reason=s.stop_reason or None,
                     phase=None, phase_detail=None, phase_done=None, phase_total=None)
        return result

