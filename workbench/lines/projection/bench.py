"""Projection benchmarks (``python -m workbench bench projection``), on the CPU and, when
one is present, on CUDA:

- ``retrieval``: chunked I2T + T2I metrics on 20k images x 100k captions of random unit
  vectors (D = 256, five captions per image): seconds and peak extra resident memory; then
  at 10k x 20k, side by side with the full score matrix + stable argsort: identical R@K,
  time ratio, memory ratio. Targets: < 1.5 GB extra at 20k x 100k; >= 3x faster at 10k x 20k.
- ``train``: pairs / s of training the MLP head on pre-encoded pairs through the Trainer's own
  loader and step (pairs in memory, batches gathered by index), side by side with a plain
  ``DataLoader(TensorDataset)`` loop (per-sample indexing + default collate) of the same
  model, loss and optimiser. Target: >= 5x.

Memory is the process's resident set sampled every 2 ms by a thread, minus its level before
the call (inputs already allocated): what the call adds at its peak.
"""
from __future__ import annotations

import os
import platform
import statistics
import threading
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def peak_extra_mb(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, seconds, peak extra resident MB) of ``fn()``."""
    base, peak, done = rss_bytes(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    try:
        result = fn()
    finally:
        seconds = time.perf_counter() - start
        done.set()
        thread.join()
    return result, seconds, max(0.0, (max(peak[0], rss_bytes()) - base) / 2**20)


def unit_vectors(n: int, d: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


def bench_retrieval(quick: bool) -> dict[str, Any]:
    from workbench.contrastive.retrieval import full_matrix_ranks, retrieval_metrics

    d, per = 256, 5
    n_big = 4000 if quick else 20000
    img, txt = unit_vectors(n_big, d, 0), unit_vectors(n_big * per, d, 1)
    owner = torch.arange(n_big * per) // per
    _, big_s, big_mb = peak_extra_mb(lambda: retrieval_metrics(img, txt, owner))
    del img, txt

    n_small = 2000 if quick else 10000
    m_small = 2 * n_small  # 10k x 20k: two captions per image
    img, txt = unit_vectors(n_small, d, 2), unit_vectors(m_small, d, 3)
    owner = torch.arange(m_small) // 2
    chunked, chunk_times, chunk_mb = None, [], []
    full, full_times, full_mb = None, [], []
    for _ in range(1 if quick else 3):  # interleaved: the machine is noisy, report medians
        chunked, s, mb = peak_extra_mb(lambda: retrieval_metrics(img, txt, owner))
        chunk_times.append(s), chunk_mb.append(mb)
        ranks, s, mb = peak_extra_mb(lambda: full_matrix_ranks(img, txt, owner))
        full_times.append(s), full_mb.append(mb)
        i2t, t2i = ranks
        full = {f"{name}_r{k}": float((r < k).double().mean()) for name, r in (("i2t", i2t), ("t2i", t2i))
                for k in (1, 5, 10)}
    keys = sorted(full)
    identical = all(chunked[k] == full[k] for k in keys)
    t_chunk, t_full = statistics.median(chunk_times), statistics.median(full_times)
    m_chunk, m_full = statistics.median(chunk_mb), statistics.median(full_mb)
    return {
        "what": "I2T + T2I R@1/5/10 and ranks, random unit vectors, D=256",
        "size": f"{n_big} x {n_big * per}", "seconds": round(big_s, 2), "peak_extra_mb": round(big_mb, 1),
        "target_peak_extra_mb": 1536, "meets_memory_target": big_mb < 1536,
        "compare_size": f"{n_small} x {m_small}",
        "chunked_s": round(t_chunk, 3), "full_argsort_s": round(t_full, 3),
        "speedup_vs_full": round(t_full / t_chunk, 2), "target_speedup": 3.0,
        "chunked_peak_extra_mb": round(m_chunk, 1), "full_peak_extra_mb": round(m_full, 1),
        "memory_ratio_full_over_chunked": round(m_full / max(m_chunk, 1e-6), 1),
        "identical": identical, "recalls": {k: round(chunked[k], 6) for k in keys},
        "repeats": len(chunk_times),
    }


def _demo_like_config(device: str, batch: int):
    from workbench.config import from_dict
    from workbench.lines.projection.config import ProjectionConfig

    return from_dict(ProjectionConfig, {"model": {"type": "mlp"}, "loss": {"type": "clip"},
                                        "train": {"batch_size": batch, "device": device, "amp": False}})


def _synthetic_pairs(n_pairs: int, d_img: int, d_txt: int):
    from workbench.contrastive.encoded import EncodedPairs
    import numpy as np

    n_img = n_pairs // 5
    return EncodedPairs(image=torch.randn(n_img, d_img), text=torch.randn(n_pairs, d_txt),
                        text_image=torch.arange(n_pairs) // 5, image_ids=np.arange(n_img))


def _ours(cfg, pairs, epochs: int) -> float:
    """Pairs / s through the Trainer's own loader and train step."""
    from workbench.lines.projection.data import ProjectionData
    from workbench.lines.projection.experiment import ProjectionExperiment
    from workbench.train.trainer import Trainer

    exp = ProjectionExperiment(cfg, data=ProjectionData(pairs, pairs, None, directory=None))
    trainer = Trainer(exp, run=None, progress_bar=False)
    trainer.setup()
    for batch in trainer.train_loader(0, 0):  # warm-up epoch
        trainer.train_step(batch)
    _sync(trainer.device)
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        for batch in trainer.train_loader(epoch, 0):
            trainer.train_step(batch)
    _sync(trainer.device)
    return epochs * len(pairs.text) / (time.perf_counter() - start)


def _plain(cfg, pairs, epochs: int) -> float:
    """Pairs / s of the textbook loop: TensorDataset, DataLoader(shuffle), default collate."""
    from torch.utils.data import DataLoader, TensorDataset

    from workbench.lines.projection.models import build_model, parameter_groups
    from workbench.train.trainer import select_device

    device = select_device(cfg.train.device)
    model = build_model(cfg, pairs.image.shape[1], pairs.text.shape[1]).to(device).train()
    opt = torch.optim.AdamW(parameter_groups(model), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    ds = TensorDataset(pairs.pairs_image(), pairs.text, torch.as_tensor(pairs.image_ids)[pairs.text_image])
    loader = DataLoader(ds, batch_size=cfg.train.batch_size, shuffle=True, pin_memory=device.type == "cuda")

    def epoch():
        for image, text, ids in loader:
            out = model.loss(image.to(device), text.to(device), ids.to(device))
            out["loss"].backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    epoch()  # warm-up
    _sync(device)
    start = time.perf_counter()
    for _ in range(epochs):
        epoch()
    _sync(device)
    return epochs * len(pairs.text) / (time.perf_counter() - start)


def _sync(device) -> None:
    if getattr(device, "type", device) == "cuda":
        torch.cuda.synchronize()


def bench_loaders(pairs, batch: int) -> dict[str, Any]:
    """Batches / s of the two data paths alone (no model): where the loops differ."""
    from torch.utils.data import DataLoader, TensorDataset

    from workbench.lines.projection.data import PairBatches, collate_batch
    from workbench.train.trainer import EpochBatches

    ds = TensorDataset(pairs.pairs_image(), pairs.text, torch.as_tensor(pairs.image_ids)[pairs.text_image])
    plain = DataLoader(ds, batch_size=batch, shuffle=True)
    ours = DataLoader(PairBatches(pairs), batch_sampler=EpochBatches(len(pairs.text), batch, 0, 0),
                      collate_fn=collate_batch)

    def rate(loader) -> float:
        start = time.perf_counter()
        n = sum(1 for _ in loader)
        return n / (time.perf_counter() - start)

    o, p = rate(ours), rate(plain)
    return {"batches_per_s": round(o, 1), "dataloader_batches_per_s": round(p, 1), "speedup": round(o / p, 1)}


def bench_train(quick: bool, device: str = "cpu") -> dict[str, Any]:
    d_img, d_txt, batch = 1280, 384, 256  # the demo's frozen widths (EfficientNet-Lite0, MiniLM)
    n_pairs = 5120 if quick else 25600
    pairs = _synthetic_pairs(n_pairs, d_img, d_txt)
    cfg = _demo_like_config(device, batch)
    ours, plain = [], []
    for _ in range(1 if quick else 3):  # interleaved repeats; medians
        ours.append(_ours(cfg, pairs, epochs=1 if quick else 2))
        plain.append(_plain(cfg, pairs, epochs=1 if quick else 2))
    o, p = statistics.median(ours), statistics.median(plain)
    return {"what": f"MLP head (hidden {cfg.model.hidden_dim}, out {cfg.model.output_dim}) + clip loss + AdamW, "
                    f"{d_img}/{d_txt}-d pairs, batch {batch}", "device": device, "pairs": n_pairs,
            "pairs_per_s": round(o, 1), "dataloader_pairs_per_s": round(p, 1),
            "speedup_vs_dataloader": round(o / p, 2), "target_speedup": 5.0, "repeats": len(ours),
            "loaders_only": bench_loaders(pairs, batch)}


def run(quick: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"retrieval": bench_retrieval(quick), "train": bench_train(quick, "cpu")}
    if torch.cuda.is_available():
        out["train_cuda"] = bench_train(quick, "cuda")
    out.update(torch_threads=torch.get_num_threads(), cpu_count=os.cpu_count(), machine=platform.machine(),
               quick=quick)
    return out
