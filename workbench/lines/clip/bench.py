"""CLIP benchmarks (``python -m workbench bench clip``), on the CPU and, when one is
present, on CUDA:

- ``train``: steps / s of the tiny model (the ``clip`` preset's towers) through the one
  Trainer (its loader, ``train_step``: augmentation, AMP when on CUDA, gradient clipping,
  the scheduler, logged accumulators) side by side with a bare PyTorch loop of the same
  model, optimiser groups, schedule, batches and augmentation. ``overhead_ratio`` = trainer
  / bare loop steps per second. Target: >= 0.95.
- ``data``: ``decode_samples_per_s`` (JPEG tiles -> uint8 tensors, once per run, cached) and
  ``loader_samples_per_s`` (what every step runs: batches gathered by index + the random
  resized crop on the batch), beside ``step_samples_per_s`` (the model step alone).

Alternating blocks in one process, medians (the machine is noisy). ``quick``: one short block each.
"""
from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

BATCH = 128
N_IMAGES, PER_IMAGE = 1024, 5


def tiny_config(device: str = "cpu", batch: int = BATCH):
    from workbench.experiments import build_config

    return build_config({"kind": "clip"}, [f"train.device={device}", f"train.batch_size={batch}",
                                           "train.warmup_steps=10", "train.grad_clip=1.0"])


class _Part:
    """A split stand-in: an image table and its captions (what ``Split`` reads)."""

    def __init__(self, n_images: int, per_image: int):
        self.images = pd.DataFrame({"image_id": np.arange(n_images)})
        self.captions = pd.DataFrame({"image_id": np.repeat(np.arange(n_images), per_image), "caption": ""})


def synthetic_experiment(cfg, n_images: int = N_IMAGES, seed: int = 0):
    """A ClipExperiment over random uint8 images and random token captions (in memory)."""
    from workbench.lines.clip.experiment import ClipExperiment, Split
    from workbench.lines.clip.tokenizer import ClipTokenizer

    g = torch.Generator().manual_seed(seed)
    s = cfg.model.img_size
    tokenizer = ClipTokenizer.train([f"tile {i} of the world" for i in range(200)], 300, cfg.text.context_length)
    splits = {}
    for name, n in (("train", n_images), ("val", 0), ("test", 0)):
        images = torch.randint(0, 256, (n, 3, s, s), dtype=torch.uint8, generator=g)
        tokens = torch.randint(4, tokenizer.vocab_size, (n * PER_IMAGE, cfg.text.context_length), generator=g)
        splits[name] = Split(name, _Part(n, PER_IMAGE), images, tokens)
    return ClipExperiment(cfg, splits=splits, tokenizer=tokenizer)


def _sync(device) -> None:
    if getattr(device, "type", device) == "cuda":
        torch.cuda.synchronize()


def bench_train(quick: bool, device: str = "cpu") -> dict[str, Any]:
    """Trainer.train_step against the textbook loop on the same model, optimiser, schedule and
    data, in one process: blocks of steps alternate between the two (which goes first
    alternates too), each block drawing its batches from its own loader over the same
    dataset; the rates are the medians of the blocks' steps / s."""
    from torch.utils.data import DataLoader

    from workbench.lines.clip.data import augment, collate
    from workbench.train.trainer import EpochBatches, Trainer

    cfg = tiny_config(device)
    trainer = Trainer(synthetic_experiment(cfg), run=None, progress_bar=False)
    trainer.setup()
    model, opt, sched, dev = trainer.model, trainer.optimizer, trainer.scheduler, trainer.device
    ours_batches = iter(trainer.train_loader(0, 0))
    bare_batches = iter(DataLoader(trainer.train_ds, collate_fn=collate,
                                   batch_sampler=EpochBatches(len(trainer.train_ds), cfg.train.batch_size, 1, 0)))

    def ours():
        trainer.train_step(next(ours_batches))

    def bare():  # loss, backward, clip, step: what a hand-written loop does
        batch = {k: v.to(dev) for k, v in next(bare_batches).items()}
        images = augment(batch["image"], None, cfg.data.crop_scale, cfg.data.flip)
        out = model.loss(images, batch["tokens"], batch["image_ids"])
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step()
        sched.step()

    block, blocks = (2, 1) if quick else (6, 6)  # 37 of the epoch's 40 batches (5,120 pairs / 128)
    for fn in (ours, bare):  # warm-up
        fn()
    assert 1 + block * blocks <= len(trainer.train_ds) // cfg.train.batch_size
    rates: dict[Any, list[float]] = {ours: [], bare: []}
    for i in range(blocks):
        for fn in (ours, bare)[::1 if i % 2 == 0 else -1]:
            _sync(dev)
            start = time.perf_counter()
            for _ in range(block):
                fn()
            _sync(dev)
            rates[fn].append(block / (time.perf_counter() - start))
    t, b = statistics.median(rates[ours]), statistics.median(rates[bare])
    return {"what": "tiny CLIP (the clip preset's towers), random images and tokens", "device": device,
            "batch": cfg.train.batch_size, "steps_per_block": block, "blocks": blocks,
            "trainer_steps_per_s": round(t, 3), "bare_steps_per_s": round(b, 3),
            "overhead_ratio": round(t / b, 3), "target_ratio": 0.95,
            "trainer_blocks": [round(x, 3) for x in rates[ours]], "bare_blocks": [round(x, 3) for x in rates[bare]],
            "step_samples_per_s": round(t * cfg.train.batch_size, 1)}


def bench_data(quick: bool) -> dict[str, Any]:
    from PIL import Image
    from torch.utils.data import DataLoader

    from workbench.lines.clip.data import augment, collate, decode_images
    from workbench.train.trainer import EpochBatches

    cfg = tiny_config()
    n = 256 if quick else 2048
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(n):  # 64 px JPEG tiles, like the demo's
            path = Path(tmp) / f"{i:05d}.jpg"
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path, quality=90)
            paths.append(str(path))
        start = time.perf_counter()
        decode_images(paths, cfg.model.img_size)
        decode = n / (time.perf_counter() - start)
    exp = synthetic_experiment(cfg, n_images=n)
    train, _ = exp.build_datasets()
    rates = []
    for _ in range(1 if quick else 3):
        loader = DataLoader(train, batch_sampler=EpochBatches(len(train), cfg.train.batch_size, 0, 0),
                            collate_fn=collate)
        start, seen = time.perf_counter(), 0
        for batch in loader:
            augment(batch["image"], None, cfg.data.crop_scale, cfg.data.flip)
            seen += len(batch["image"])
        rates.append(seen / (time.perf_counter() - start))
    return {"decode_samples_per_s": round(decode, 1), "loader_samples_per_s": round(statistics.median(rates), 1),
            "tiles": n}


def run(quick: bool = False) -> dict[str, Any]:
    train = bench_train(quick, "cpu")
    data = bench_data(quick)
    out: dict[str, Any] = {**train, **data,
                           "loader_to_step_ratio": round(data["loader_samples_per_s"] / train["step_samples_per_s"], 2)}
    if torch.cuda.is_available():
        out["cuda"] = bench_train(quick, "cuda")
    out.update(torch_threads=torch.get_num_threads(), cpu_count=os.cpu_count(), machine=platform.machine(),
               quick=quick)
    return out
