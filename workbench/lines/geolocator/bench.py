"""Geolocator benchmarks (``python -m workbench bench geolocator``), on CPU:

- ``predict_latency``: one photo -> prediction with a loaded model (``GeoPredictor.predict``
  from the JPEG bytes: decode, EXIF orientation, resize, forward, top-k, reverse geocoding),
  p50 / p90 / max over repeated calls on the sample photos; target p50 < 300 ms.
- ``evaluation``: images / s of evaluating the model on the demo test split through the same
  DataLoader path a run's validation uses (JPEG decode + transforms + forward + top-k).

The model is the demo bundle (checkpoints/geolocator-demo) unless ``source`` is given.
"""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.paths import ASSETS, CHECKPOINTS

DEMO = CHECKPOINTS / "geolocator-demo"


def bench_predict_latency(predictor, quick: bool) -> dict[str, Any]:
    photos = sorted(p for p in (ASSETS / "photos").glob("*.jpg"))
    data = [p.read_bytes() for p in photos]
    for blob in data:  # warm-up: first-call allocations, the place table
        predictor.predict(blob)
    n = 12 if quick else 60
    times = []
    for i in range(n):
        start = time.perf_counter()
        predictor.predict(data[i % len(data)], top_k=5)
        times.append((time.perf_counter() - start) * 1000.0)
    t = np.asarray(times)
    return {"what": "photo bytes -> top-5 cells + point + place, loaded model, batch 1",
            "calls": n, "photos": [p.name for p in photos],
            "p50_ms": round(float(np.median(t)), 2), "p90_ms": round(float(np.percentile(t, 90)), 2),
            "max_ms": round(float(t.max()), 2), "target_p50_ms": 300,
            "meets_target": bool(np.median(t) < 300)}


def bench_evaluation(predictor, quick: bool) -> dict[str, Any]:
    from dataclasses import replace

    from torch.utils.data import DataLoader, Subset

    from workbench.lines.geolocator.experiment import Geolocator
    from workbench.lines.geolocator.data import collate_skip
    from workbench.lines.geolocator.evaluate import evaluate_predictions, predict_loader

    cfg = predictor.cfg
    if not Path(cfg.data.csv).is_file():
        return {"skipped": f"data CSV {cfg.data.csv} not found; run: python -m workbench data build-demo"}
    exp = Geolocator(replace(cfg, model=replace(cfg.model, weights="none"),
                             data=replace(cfg.data, verify_images=False)))
    exp.use_partition(predictor.partition)
    splits = set(exp.prepare().table["split"])
    split = "test" if "test" in splits else cfg.data.val_split
    ds = exp.split_dataset(split)
    if quick:
        ds = Subset(ds, range(min(128, len(ds))))
    loader = DataLoader(ds, batch_size=64, collate_fn=collate_skip)
    predict_loader(predictor.model, DataLoader(Subset(ds, range(8)), batch_size=8, collate_fn=collate_skip))
    start = time.perf_counter()
    pred = predict_loader(predictor.model, loader, cfg.eval.top_k)
    seconds = time.perf_counter() - start
    metrics, _ = evaluate_predictions(pred, predictor.centroids, cfg.eval.location, cfg.eval.weighted_k)
    return {"what": f"{split} split: JPEG decode + transforms + forward + top-k, batch 64",
            "images": int(pred["n"]), "seconds": round(seconds, 3),
            "images_per_s": round(pred["n"] / seconds, 1), "image_size": cfg.data.image_size,
            "acc@2500km": round(metrics["acc@2500km"], 4)}


def run(quick: bool = False, source: str | Path | None = None) -> dict[str, Any]:
    from workbench.lines.geolocator.predict import load_predictor

    start = time.perf_counter()
    predictor = load_predictor(source or DEMO, device="cpu")
    load_s = time.perf_counter() - start
    return {
        "model": predictor.source,
        "backbone": predictor.cfg.model.backbone,
        "n_cells": predictor.n_cells,
        "load_s": round(load_s, 2),
        "predict_latency": bench_predict_latency(predictor, quick),
        "evaluation": bench_evaluation(predictor, quick),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "quick": quick,
    }
