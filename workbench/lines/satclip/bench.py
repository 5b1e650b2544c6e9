"""SatCLIP benchmarks (``python -m workbench bench satclip``), on the CPU and, when one is
present, the model step on CUDA:

- the data pipeline beside the model step, so it shows whether loading is the bottleneck
  (the seed's SatCLIP users were loader-bound). On a generated S2-100K-layout folder of
  13-band 64 x 64 uint16 GeoTIFFs (in the page cache: this times decoding, not the disk),
  batch 256, augmentations crop 56, flips, blur p = 0.2, coordinate jitter:

  - ``loader_samples_per_s``: files -> augmented batch, a loader that decodes every epoch
    (``read_patches``, tifffile) through the Trainer's batch sampler, then ``augment_batch``;
  - its parts: ``decode_samples_per_s`` (files -> reflectance arrays) and
    ``augment_samples_per_s`` (the Trainer's loader over tiles preloaded as float16, which is
    what a training epoch runs, + ``augment_batch``);
  - ``step_samples_per_s``: one optimiser step (forward, clip loss, backward, the Trainer's
    AdamW) of SatClipModel fine-tuning a random-init resnet18 on augmented batches;
    ``frozen_cached_step_samples_per_s``: the default frozen backbone, whose step runs the
    heads and the location encoder on cached features (loader included);
  - ``loader_to_step_ratio`` = loader / fine-tune step. Target: >= 3.

- ``location_encoders``: points / s of a no-grad forward pass of every registered location
  encoder (sh_siren at L = 10, 20, 40) on points uniform on the sphere, in chunks of 8192;
  ``spherical_harmonics``: the real spherical-harmonic basis alone (float64) at the same L.

Interleaved repeats, medians (the machine is noisy). ``quick``: batch 32, 128 tiles, one
step, 4096 points, one repeat.
"""
from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from workbench.lines.satclip import data as sd

TARGET_RATIO = 3
BANDS, TILE_PX, CROP_PX = 13, 64, 56
SH_DEGREES = (10, 20, 40)
CHUNK = 8192  # points per location-encoder forward, as in ``encoders.encode``


def satclip_config(fine_tune: bool, batch: int, device: str = "cpu"):
    """The note's model on S2 tiles: resnet18 (timm, random init), 13 bands."""
    from workbench.experiments import build_config

    flat = {"data.source": "s2-100k", "data.image_size": TILE_PX, "model.backbone": "resnet18",
            "model.weights": "none", "train.device": device, "train.batch_size": batch}
    if fine_tune:  # augmentations need a backbone that runs every step
        flat.update({"model.freeze_backbone": "false", "data.crop": CROP_PX, "data.flips": "true",
                     "data.blur_p": 0.2})
    return build_config({"kind": "satclip"}, [f"{k}={v}" for k, v in flat.items()])


def sphere_points(n: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    """[n, 2] (lat, lon) degrees, uniform on the sphere."""
    g = torch.Generator().manual_seed(seed)
    lat = torch.rad2deg(torch.asin(torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1))
    lon = torch.rand(n, generator=g, dtype=torch.float64) * 360 - 180
    return torch.stack([lat, lon], dim=1).to(dtype)


def per_second(count: int, fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return count / (time.perf_counter() - start)


# -- data pipeline -------------------------------------------------------------------------
class S2Files(Dataset):
    """Tiles decoded from their GeoTIFFs on every access: a loader with no preloading."""

    def __init__(self, paths: Sequence[str], latlon: torch.Tensor, size: int):
        self.paths, self.latlon, self.size = list(paths), latlon, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        image = sd.read_patches([self.paths[i] for i in indices], self.size)  # (B, C, S, S) float32
        idx = torch.as_tensor(indices, dtype=torch.long)
        return {"image": torch.from_numpy(image), "latlon": self.latlon[idx], "row": idx}


def trainer_loader(dataset: Dataset, batch: int, epoch: int) -> DataLoader:
    """The Trainer's loader: whole batches by index (``EpochBatches``), no per-sample collate."""
    from workbench.train.trainer import EpochBatches

    return DataLoader(dataset, batch_sampler=EpochBatches(len(dataset), batch, 0, epoch),
                      collate_fn=sd.collate_batch)


def augment(batch: dict, cfg, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    d = cfg.data
    return sd.augment_batch(batch["image"], batch["latlon"], generator, crop=d.crop, flips=d.flips,
                            blur_p=d.blur_p, jitter_deg=d.jitter_deg)


def augmented_epoch(loader: DataLoader, cfg, generator: torch.Generator) -> None:
    for batch in loader:
        augment(batch, cfg, generator)


def decode_all(paths: list[str], batch: int) -> None:
    for start in range(0, len(paths), batch):
        sd.read_patches(paths[start:start + batch], TILE_PX)


# -- model steps ---------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def fine_tune_setup(cfg, device: torch.device):
    from workbench.lines.satclip.models import SatClipModel, build_backbone
    from workbench.train.schedulers import build_optimizer

    backbone, feature_dim = build_backbone(cfg, BANDS)
    model = SatClipModel(cfg, feature_dim, backbone, in_chans=BANDS).to(device).train()
    return model, build_optimizer(model, cfg.train), feature_dim


def optimiser_step(model, optimizer, image: torch.Tensor, latlon: torch.Tensor, device: torch.device) -> None:
    """The Trainer's step without AMP or clipping (their defaults on the CPU)."""
    out = model.loss(image.to(device), latlon.to(device))
    out["loss"].backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def step_rate(model, optimizer, batches: list[tuple[torch.Tensor, torch.Tensor]], steps: int,
              device: torch.device) -> float:
    """Samples / s of ``steps`` optimiser steps cycling over pre-augmented ``batches``."""
    _sync(device)
    start = time.perf_counter()
    for i in range(steps):
        optimiser_step(model, optimizer, *batches[i % len(batches)], device)
    _sync(device)
    return steps * len(batches[0][1]) / (time.perf_counter() - start)


def frozen_setup(batch: int, feature_dim: int, n: int):
    """The frozen-backbone default: heads + location encoder on cached features [n, D]."""
    from workbench.lines.satclip.models import SatClipModel
    from workbench.train.schedulers import build_optimizer

    cfg = satclip_config(fine_tune=False, batch=batch)
    g = torch.Generator().manual_seed(3)
    features = sd.FeatureBatches(torch.randn(n, feature_dim, generator=g), sphere_points(n, 4))
    model = SatClipModel(cfg, feature_dim, None, in_chans=BANDS).train()
    return cfg, model, build_optimizer(model, cfg.train), features


def frozen_epoch(cfg, model, optimizer, features: sd.FeatureBatches, epoch: int, limit: int | None = None) -> None:
    """One epoch as the Trainer runs it with cached features: gather, jitter, step."""
    for i, batch in enumerate(trainer_loader(features, cfg.train.batch_size, epoch)):
        if limit is not None and i >= limit:
            break
        latlon = sd.jitter_latlon(batch["latlon"], cfg.data.jitter_deg)
        optimiser_step(model, optimizer, batch["features"], latlon, torch.device("cpu"))


def bench_pipeline(quick: bool) -> dict[str, Any]:
    batch = 32 if quick else 256
    n_tiles = batch * (4 if quick else 8)
    steps, repeats = (1, 1) if quick else (2, 3)
    cfg = satclip_config(fine_tune=True, batch=batch)
    cpu = torch.device("cpu")
    g = torch.Generator().manual_seed(0)
    rates: dict[str, list[float]] = {k: [] for k in ("decode", "augment", "loader", "step", "frozen")}
    with tempfile.TemporaryDirectory() as folder:
        sd.make_s2_100k_sample(folder, n_tiles, bands=BANDS, size=TILE_PX, seed=0)
        index = sd.load_s2_index(folder)
        paths = index["path"].tolist()
        latlon = torch.tensor(index[["lat", "lon"]].to_numpy(np.float32))
        files = S2Files(paths, latlon, TILE_PX)
        # training preloads the tiles as float16 (experiment.load_tiles)
        tiles = sd.TileBatches(torch.from_numpy(sd.read_patches(paths, TILE_PX)).half(), latlon)
        train_batches = [augment(b, cfg, g) for _, b in zip(range(2), trainer_loader(tiles, batch, 0))]

        model, optimizer, feature_dim = fine_tune_setup(cfg, cpu)
        for i in range(1 if quick else 2):  # warm-up: first-call allocations, kernel choice
            optimiser_step(model, optimizer, *train_batches[i % 2], cpu)
        frozen = frozen_setup(batch, feature_dim, batch * (4 if quick else 16))
        frozen_epoch(*frozen, epoch=0, limit=2)  # warm-up

        for r in range(repeats):  # interleaved: the machine is noisy, report medians
            rates["decode"].append(per_second(n_tiles, lambda: decode_all(paths, batch)))
            rates["augment"].append(per_second(n_tiles, lambda: augmented_epoch(
                trainer_loader(tiles, batch, r + 1), cfg, g)))
            rates["loader"].append(per_second(n_tiles, lambda: augmented_epoch(
                trainer_loader(files, batch, r + 1), cfg, g)))
            rates["step"].append(step_rate(model, optimizer, train_batches, steps, cpu))
            rates["frozen"].append(per_second(len(frozen[3]), lambda: frozen_epoch(*frozen, epoch=r + 1)))
        cuda = bench_cuda_step(cfg, train_batches, steps, repeats) if torch.cuda.is_available() else None

    med = {k: statistics.median(v) for k, v in rates.items()}
    d = cfg.data
    out = {"what": f"{BANDS}-band {TILE_PX} px uint16 GeoTIFFs, batch {batch}; step: resnet18 (random init, "
                   f"fine-tuned) + sh_siren L{cfg.model.legendre_degrees} + heads, clip loss, AdamW",
           "tiles": n_tiles, "batch": batch,
           "augment": {"crop": d.crop, "flips": d.flips, "blur_p": d.blur_p, "jitter_deg": d.jitter_deg},
           "loader_samples_per_s": round(med["loader"], 1), "decode_samples_per_s": round(med["decode"], 1),
           "augment_samples_per_s": round(med["augment"], 1), "step_samples_per_s": round(med["step"], 1),
           "frozen_cached_step_samples_per_s": round(med["frozen"], 1),
           **against_target(med["loader"], med["step"]), "steps_per_repeat": steps, "repeats": repeats}
    if cuda is not None:
        out["cuda"] = {**cuda, **against_target(med["loader"], cuda["step_samples_per_s"])}
    return out


def against_target(loader: float, step: float) -> dict[str, Any]:
    ratio = loader / step
    return {"loader_to_step_ratio": round(ratio, 2), "target_ratio": TARGET_RATIO,
            "meets_target": bool(ratio >= TARGET_RATIO)}


def bench_cuda_step(cfg, batches, steps: int, repeats: int) -> dict[str, Any]:
    """The fine-tune step on CUDA (fp32, batches copied to the device each step); the loader
    stays on the CPU, so its ratio to this step is what a GPU run would see."""
    device = torch.device("cuda")
    model, optimizer, _ = fine_tune_setup(cfg, device)
    for i in range(2):
        optimiser_step(model, optimizer, *batches[i % 2], device)
    rates = [step_rate(model, optimizer, batches, steps * 5, device) for _ in range(repeats)]  # fast: more steps
    return {"step_samples_per_s": round(statistics.median(rates), 1), "device": torch.cuda.get_device_name()}


# -- location encoders ---------------------------------------------------------------------
def location_encoder_builds() -> dict[str, tuple[str, dict[str, Any]]]:
    """Entry -> (registered name, kwargs): every registered encoder, sh_siren per L."""
    from workbench.encoders.location import LOCATION_ENCODERS

    builds: dict[str, tuple[str, dict[str, Any]]] = {}
    for name in LOCATION_ENCODERS.list():
        if name == "sh_siren":
            builds.update({f"sh_siren_L{L}": (name, {"num_degrees": L}) for L in SH_DEGREES})
        else:
            builds[name] = (name, {})
    return builds


@torch.no_grad()
def forward_chunks(fn: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor) -> None:
    for start in range(0, len(points), CHUNK):
        fn(points[start:start + CHUNK])


def bench_location_encoders(quick: bool) -> dict[str, Any]:
    from workbench.encoders.location import create_location_encoder
    from workbench.encoders.location.spherical_harmonics import real_spherical_harmonics
    from workbench.errors import WorkbenchError

    n, repeats = (CHUNK // 2, 1) if quick else (2 * CHUNK, 3)
    points, points64 = sphere_points(n, 1), sphere_points(n, 2, torch.float64)
    runs: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    encoders: dict[str, Any] = {}
    for entry, (name, kwargs) in location_encoder_builds().items():
        try:
            encoder = create_location_encoder(name, **kwargs).eval()
        except WorkbenchError as exc:  # e.g. geoclip's weights not installed
            encoders[entry] = {"error": str(exc)}
            continue
        encoders[entry] = {"out_dim": encoder.out_dim}
        runs[entry] = encoder
    for L in SH_DEGREES:
        runs[f"sh_basis_L{L}"] = lambda x, L=L: real_spherical_harmonics(x, L)
    rates: dict[str, list[float]] = {k: [] for k in runs}
    for entry, fn in runs.items():  # warm-up: first-call allocations
        forward_chunks(fn, (points64 if entry.startswith("sh_basis") else points)[:256])
    for _ in range(repeats):  # interleaved repeats; medians
        for entry, fn in runs.items():
            x = points64 if entry.startswith("sh_basis") else points
            rates[entry].append(per_second(n, lambda: forward_chunks(fn, x)))
    med = {k: round(statistics.median(v)) for k, v in rates.items()}
    for entry in encoders:
        if entry in med:
            encoders[entry]["points_per_s"] = med[entry]
    return {"location_encoders": encoders,
            "spherical_harmonics": {f"L{L}": {"features": L * L, "points_per_s": med[f"sh_basis_L{L}"]}
                                    for L in SH_DEGREES},
            "location_points": n, "location_repeats": repeats}


def run(quick: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {**bench_pipeline(quick), **bench_location_encoders(quick)}
    out.update(torch_threads=torch.get_num_threads(), cpu_count=os.cpu_count(), machine=platform.machine(),
               quick=quick)
    return out
