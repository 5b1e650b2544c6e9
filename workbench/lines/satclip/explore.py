"""What the Location embeddings page asks of a SatCLIP model, without Streamlit.

- ``load_satclip``: a bundle or run -> model, metrics (with the probe table) and the held-out
  tiles' image and location embeddings (the run's ``embeddings/`` artifact).
- ``nearest_tiles`` / ``nearest_locations``: a clicked point's location embedding against the
  held-out tiles' image embeddings (which tiles look like this place should) and against
  their location embeddings (which other places the encoder puts next to it).
- ``pca_grid``: any location encoder on a lat/lon grid -> its first three principal
  components as RGB (the world picture SatCLIP papers show).
- ``probe_comparison``: the probe tables of several models, side by side, baselines once.

The frozen baselines of ``probes.default_encoders`` are offered beside every model, so a
picture or a table is always compared with raw lat/lon, GeoCLIP and the untrained bases.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import InputError, NotFoundError
from workbench.lines.satclip.bundle import DEMO, list_sources, load_model  # noqa: F401
from workbench.lines.satclip.config import PROBE_ENCODERS, SatClipConfig
from workbench.lines.satclip.models import SatClipModel, location_encoder_fn
from workbench.lines.satclip.probes import probe_verdicts  # noqa: F401 (the page's)
from workbench.paths import repo_path
from workbench.runs.sources import Source

PCA_BATCH = 4096
PCA_MAX_LAT = 85.0  # the map is Web Mercator: rows beyond it are never drawn
BASELINE_LABELS = {
    "raw_latlon": "raw lat/lon",
    "geoclip": "GeoCLIP (pretrained, frozen)",
    "rff": "RFF + MLP (random init)",
    "sh10": "SH basis L = 10 (untrained)",
    "sh40": "SH basis L = 40 (untrained)",
    "sh40_siren": "SH L = 40 + SIREN (random init)",
}
TILE_COLUMNS = ("rank", "score", "place", "country", "continent", "lat", "lon", "distance_km", "land_fraction")


@dataclass
class LoadedSatClip:
    source: Source
    cfg: SatClipConfig
    model: SatClipModel
    metrics: dict
    tiles: pd.DataFrame  # held-out tiles, one row each (row i <-> image[i], location[i])
    image: np.ndarray  # [N, d] unit image embeddings
    location: np.ndarray  # [N, d] unit location embeddings

    @cached_property
    def encode(self):
        """latlon [M, 2] degrees -> [M, d] unit location embeddings."""
        return location_encoder_fn(self.model)

    @property
    def probes(self) -> list[dict]:
        return list(self.metrics.get("probes") or [])

    def tile_path(self, relative: str) -> Path | None:
        """The image file of a tile (in the data folder the model was trained on), if present."""
        if not relative:
            return None
        path = repo_path(self.cfg.data.dir) / relative
        return path if path.is_file() else None


def load_satclip(spec: Source | str | Path, runs_root=None) -> LoadedSatClip:
    """A satclip bundle or run with its held-out embeddings (a finished run or an export)."""
    from workbench.contrastive.artifacts import read_embeddings

    source, cfg, model = load_model(spec, runs_root)
    folder = source.artifacts if source.path.is_dir() else source.path.parent
    metrics_file = folder / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    if not any((folder / "embeddings" / f).is_file() for f in ("paired.parquet", "meta.parquet")):
        raise NotFoundError(f"{source.label} has no held-out embeddings yet (a run writes "
                            "artifacts/embeddings/ when it finishes)")
    emb = read_embeddings(folder / "embeddings")
    if "image" not in emb.vectors or "location" not in emb.vectors:
        raise NotFoundError(f"{source.label}: embeddings/ needs image and location points")
    tiles = emb.meta[emb.meta["modality"] == "image"].sort_values("row").reset_index(drop=True)
    image, location = emb.vectors["image"], emb.vectors["location"]
    if not len(tiles) == len(image) == len(location):
        raise InputError(f"{source.label}: {len(tiles)} tiles in the embeddings metadata for {len(image)} image and "
                         f"{len(location)} location embeddings")
    return LoadedSatClip(source, cfg, model.eval(), metrics, tiles, image, location)


def model_caption(ls: LoadedSatClip) -> str:
    m, c = ls.cfg.model, ls.metrics.get("counts", {})
    val = ls.metrics.get("val", {})
    recall = f"held-out mean tile <-> location R@K {val['r_mean'] * 100:.1f} %" if "r_mean" in val else ""
    return (f"{ls.source.label}: `{m.backbone}` ({'frozen' if m.freeze_backbone else 'fine-tuned'}) on "
            f"{ls.metrics.get('bands', '?')} bands of `{ls.cfg.data.source}`, `{m.location_encoder}` location encoder, "
            f"{m.embed_dim}-d space; {c.get('train', '?')} training tiles, {len(ls.tiles)} held-out tiles. {recall}")


# -- a clicked point ---------------------------------------------------------------------------


def _check_point(lat: float, lon: float) -> np.ndarray:
    if not (np.isfinite(lat) and np.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise InputError(f"a point needs lat in [-90, 90] and lon in [-180, 180]; got ({lat}, {lon})")
    return np.array([[lat, lon]], np.float64)


def _ranked(ls: LoadedSatClip, scores: np.ndarray, lat: float, lon: float, k: int) -> pd.DataFrame:
    from workbench.geo.distances import haversine_km

    k = max(1, min(int(k), len(scores)))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    out = ls.tiles.iloc[top].reset_index(drop=True).copy()
    out.insert(0, "rank", np.arange(1, k + 1))
    out.insert(1, "score", scores[top].astype(np.float64))
    out["distance_km"] = haversine_km(lat, lon, out["lat"].to_numpy(np.float64), out["lon"].to_numpy(np.float64))
    out["tile_row"] = top
    return out


def nearest_tiles(ls: LoadedSatClip, lat: float, lon: float, k: int = 8) -> pd.DataFrame:
    """The held-out tiles whose image embedding is nearest (cosine) to the location
    embedding of (lat, lon): rank, score, the tile's metadata, distance_km from the point."""
    query = ls.encode(_check_point(lat, lon))[0]  # (d,)
    return _ranked(ls, ls.image @ query, lat, lon, k)


def nearest_locations(ls: LoadedSatClip, lat: float, lon: float, k: int = 8) -> pd.DataFrame:
    """The held-out tile locations whose location embedding is nearest to that of (lat, lon)."""
    query = ls.encode(_check_point(lat, lon))[0]
    return _ranked(ls, ls.location @ query, lat, lon, k)


def closest_tile_km(ls: LoadedSatClip, lat: float, lon: float) -> float:
    """Distance from (lat, lon) to the nearest held-out tile, km."""
    from workbench.geo.distances import haversine_km

    _check_point(lat, lon)
    return float(np.min(haversine_km(lat, lon, ls.tiles["lat"].to_numpy(np.float64),
                                     ls.tiles["lon"].to_numpy(np.float64))))


# -- principal components on a grid -------------------------------------------------------------


def encoder_choices(models: list[LoadedSatClip]) -> dict[str, str]:
    """label -> key of every encoder the PCA map can show: each model, then the baselines."""
    out = {f"{ls.source.label} (trained)": f"model:{i}" for i, ls in enumerate(models)}
    out.update({label: f"baseline:{name}" for name, label in BASELINE_LABELS.items() if name in PROBE_ENCODERS})
    return out


def encoder_for(key: str, models: list[LoadedSatClip]):
    """The function latlon [N, 2] -> features [N, D] behind a key of ``encoder_choices``."""
    valid = set(encoder_choices(models).values())
    if key not in valid:
        raise InputError(f"unknown encoder key {key!r}. Available: {sorted(valid)}")
    kind, _, name = key.partition(":")
    if kind == "model":
        return models[int(name)].encode
    from workbench.lines.satclip.probes import default_encoders

    return default_encoders([name])[name]


def grid_points(step_deg: float, max_lat: float = PCA_MAX_LAT) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres of a step_deg lat/lon grid: lat [H] (north first), lon [W]."""
    if not 0.25 <= step_deg <= 10:
        raise InputError(f"the grid step must be in [0.25, 10] degrees; got {step_deg}")
    n_lat = int(round(2 * max_lat / step_deg))
    n_lon = int(round(360 / step_deg))
    lat = max_lat - (np.arange(n_lat) + 0.5) * (2 * max_lat / n_lat)
    lon = -180 + (np.arange(n_lon) + 0.5) * (360 / n_lon)
    return lat, lon


def pca_grid(encoder, step_deg: float = 2.0, max_lat: float = PCA_MAX_LAT) -> dict:
    """An encoder on a lat/lon grid -> the first three principal components as colours.

    Returns {"rgb": uint8 [H, W, 3] (rows north to south), "lat": [H], "lon": [W],
    "explained": [3] fraction of variance of each component, "dims": D}. Features are
    computed and reduced in batches (the covariance is accumulated in float64, so an
    L = 40 basis of 1600 dims never sits in memory for the whole grid); each component is
    stretched between its 1st and 99th percentile. An encoder of fewer than three dims
    fills the missing channels with mid-grey.
    """
    lat, lon = grid_points(step_deg, max_lat)
    points = np.stack(np.meshgrid(lat, lon, indexing="ij"), axis=-1).reshape(-1, 2)  # (H*W, 2)
    chunks = [np.asarray(encoder(points[i:i + PCA_BATCH]), np.float64) for i in range(0, len(points), PCA_BATCH)]
    dims = chunks[0].shape[1]
    n = len(points)
    mean = sum(c.sum(0) for c in chunks) / n  # (D,)
    cov = sum((c - mean).T @ (c - mean) for c in chunks) / max(n - 1, 1)  # (D, D)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][: min(3, dims)]
    comps = vectors[:, order]  # (D, k)
    scores = np.concatenate([(c - mean) @ comps for c in chunks])  # (H*W, k)
    lo, hi = np.percentile(scores, 1, axis=0), np.percentile(scores, 99, axis=0)
    unit = np.clip((scores - lo) / np.maximum(hi - lo, 1e-12), 0, 1)
    if unit.shape[1] < 3:
        unit = np.concatenate([unit, np.full((n, 3 - unit.shape[1]), 0.5)], axis=1)
    total = max(float(values.clip(min=0).sum()), 1e-300)
    explained = [float(values[i] / total) for i in order] + [0.0] * (3 - len(order))
    return {"rgb": (unit.reshape(len(lat), len(lon), 3) * 255).round().astype(np.uint8), "lat": lat, "lon": lon,
            "explained": explained, "dims": int(dims)}


# -- probe tables ---------------------------------------------------------------------------------


def probe_rows(models: list[LoadedSatClip]) -> list[dict]:
    """Every model's probe rows with ``satclip`` renamed to the model's label, and each
    baseline once (from the first model that probed it: the same points and seeds)."""
    rows, seen = [], set()
    for ls in models:
        for row in ls.probes:
            if row["encoder"] == "satclip":
                rows.append({**row, "encoder": ls.source.label})
            elif (row["encoder"], row["target"], row.get("probe")) not in seen:
                seen.add((row["encoder"], row["target"], row.get("probe")))
                rows.append(row)
    return rows


def probe_comparison(models: list[LoadedSatClip]) -> pd.DataFrame:
    """[encoder x probe, target] "mean ± std" of the selected models and the baselines."""
    from workbench.lines.satclip.probes import probe_table

    rows = probe_rows(models)
    return probe_table(rows) if rows else pd.DataFrame()
