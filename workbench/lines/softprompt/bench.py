"""Soft-prompt line: click -> weights latency of a loaded model, and training throughput.

``python -m workbench bench softprompt`` ->

- ``click``: wall time of ``explorer.click_report`` (coordinates -> GeoCLIP features ->
  mixture weights [K] -> sequence -> nearest held-out cities, plus JSON-ready output) over
  100 random points on the sphere (seeded; none of them is a test point), on the CPU, with
  the demo checkpoint loaded once beforehand: p50 / p90 / max in ms. ``weights_only`` times
  ``ExplorerModel.predict`` alone (features -> weights and tokens).
- ``train``: samples/s of the Trainer's own ``train_step`` (forward, all loss terms,
  backward, AdamW, LR schedule) at the demo's shapes (B = 64, F = 512, L = 24, D = 384,
  K = 64), for each architecture side by side on the same synthetic batches, with one
  intra-op thread and with torch's default thread count.

``quick=True``: 20 click points and 5 training steps.
"""
from __future__ import annotations

import statistics
import time

import numpy as np
import pandas as pd
import torch

from workbench.experiments import load_config
from workbench.lines.softprompt import explorer


def random_points(n: int, seed: int = 20240611) -> np.ndarray:
    """n points uniform on the sphere, (lat, lon) degrees [n, 2]."""
    rng = np.random.default_rng(seed)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    return np.stack([lat, rng.uniform(-180, 180, n)], axis=1)


def _percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p90_ms": round(float(np.percentile(a, 90)), 3),
            "max_ms": round(float(a.max()), 3)}


def click_latency(n: int) -> dict:
    start = time.perf_counter()
    em = explorer.load_source(explorer.DEMO_CHECKPOINT)
    load_s = time.perf_counter() - start
    points = random_points(n)
    for lat, lon in points[:5]:  # warm-up; also computes the entry meanings once
        explorer.click_report(em, lat, lon)
    total, predict = [], []
    for lat, lon in points:
        t0 = time.perf_counter()
        report = explorer.click_report(em, lat, lon)
        total.append((time.perf_counter() - t0) * 1000)
        assert len(report["weights"]) == em.n_entries
        with explorer.one_thread():  # as click_report runs it
            t0 = time.perf_counter()
            em.predict([[lat, lon]])
            predict.append((time.perf_counter() - t0) * 1000)
    return {"n_points": n, "k": em.n_entries, "n_index_cities": len(em.cities), "load_s": round(load_s, 3),
            **_percentiles(total), "weights_only": _percentiles(predict)}


def synthetic_data(cfg, n: int = 4096, seed: int = 0):
    """A SoftPromptData of n random cities with the config's shapes (no files needed)."""
    from workbench.lines.softprompt.models import model_dims
    from workbench.lines.softprompt.data import SoftPromptData
    from workbench.lines.softprompt.targets import Targets

    F, L, D = model_dims(cfg)
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(9, 16, (n,), generator=g)
    mask = torch.arange(L) < lengths[:, None]
    states = (torch.randn(n, L, D, generator=g) * mask[..., None]).half()
    cities = pd.DataFrame({"country_code": np.array(["AA", "BB", "CC", "DD"])[np.arange(n) % 4]})
    val = np.zeros(n, dtype=bool)
    val[: n // 8] = True
    return SoftPromptData(cities, [""] * n, torch.randn(n, F, generator=g), Targets(states, mask, "minilm"), val)


def train_throughput(steps: int, thread_counts: tuple[int, ...]) -> dict:
    """Median step time per architecture and thread count; the thread counts alternate step
    by step on the same trainer, so machine noise hits every setting alike."""
    from workbench.lines.softprompt.experiment import SoftPromptExperiment
    from workbench.train.trainer import Trainer

    base = load_config("softprompt-demo")
    data = synthetic_data(base)
    previous = torch.get_num_threads()
    out = {"batch_size": base.train.batch_size, "steps_per_setting": steps}
    for arch in ("softprompt", "lightweight_transformer", "direct"):
        cfg = load_config("softprompt-demo", [f"model.arch={arch}", "seeds=1", "train.device=cpu"])
        trainer = Trainer(SoftPromptExperiment(cfg, data=data), run=None, progress_bar=False)
        trainer.setup()
        batches = list(trainer.train_loader(0, 0))
        for b in batches[:3]:  # warm-up
            trainer.train_step(b)
        times: dict[int, list[float]] = {n: [] for n in thread_counts}
        for i in range(steps * len(thread_counts)):
            threads = thread_counts[i % len(thread_counts)]
            torch.set_num_threads(threads)
            batch = next(iter(trainer.train_loader(1, i % len(batches))))
            t0 = time.perf_counter()
            trainer.train_step(batch)
            times[threads].append(time.perf_counter() - t0)
        torch.set_num_threads(previous)
        out[arch] = {"trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)}
        for threads, ts in times.items():
            step_s = statistics.median(ts)
            out[arch][f"threads_{threads}"] = {"samples_per_s": round(cfg.train.batch_size / step_s, 1),
                                               "step_ms": round(step_s * 1000, 2)}
    return out


def run(quick: bool = False) -> dict:
    torch.manual_seed(0)
    default = torch.get_num_threads()
    steps = 5 if quick else 20
    # Side by side: one intra-op thread vs torch's default (on a busy machine the latter can
    # be several times slower for these small ops).
    train = train_throughput(steps, tuple(sorted({1, default})))
    return {"threads_default": default, "click": click_latency(20 if quick else 100), "train": train}
