"""Offline map assets: files copied from their packages, Blue Marble reprojected to Web Mercator."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workbench.data import static_assets as sa
from workbench.errors import NotFoundError


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("static")
    return root, sa.build_static(root)


@pytest.fixture(scope="module")
def source() -> np.ndarray:
    with Image.open(sa.bluemarble_source()) as im:
        return np.asarray(im.convert("RGB"))  # [2700, 5400, 3]


@pytest.fixture(scope="module")
def basemap(built) -> np.ndarray:
    root, _ = built
    with Image.open(root / sa.BLUEMARBLE) as im:
        assert im.format == "JPEG"
        return np.asarray(im.convert("RGB"))


def test_build_writes_every_file_as_copies_of_the_packages(built):
    root, written = built
    assert sorted(written) == sorted(root / rel for rel in sa.ALL_FILES)
    leaflet_dir = Path(importlib.import_module("xstatic.pkg.leaflet").BASE_DIR)
    jquery_dir = Path(importlib.import_module("xstatic.pkg.jquery").BASE_DIR)
    assert (root / sa.LEAFLET_JS).read_bytes() == (leaflet_dir / "leaflet.js").read_bytes()
    assert (root / sa.LEAFLET_CSS).read_bytes() == (leaflet_dir / "leaflet.css").read_bytes()
    icon = "images/marker-icon.png"
    assert (root / "leaflet" / icon).read_bytes() == (leaflet_dir / icon).read_bytes()
    assert b"Leaflet 1.9" in (root / sa.LEAFLET_JS).read_bytes()[:200]
    assert (root / sa.JQUERY_JS).read_bytes() == (jquery_dir / "jquery.min.js").read_bytes()
    assert sa.static_url(sa.LEAFLET_JS) == "/app/static/leaflet/leaflet.js"
    assert not list(root.rglob("*.tmp"))  # atomic writes leave no temp files behind


def test_basemap_is_a_square_mercator_jpeg(basemap):
    assert basemap.shape == (sa.BLUEMARBLE_SIZE, sa.BLUEMARBLE_SIZE, 3)


def _merc_pixel(lat: float, lon: float, size: int) -> tuple[int, int]:
    """(row, col) of (lat, lon) in a size x size Web Mercator image of the whole world."""
    y = np.log(np.tan(np.pi / 4 + np.radians(lat) / 2)) / np.pi  # 1 at 85.0511 N
    return int((1 - y) / 2 * size), int((lon + 180) / 360 * size)


def _src_pixel(lat: float, lon: float, shape) -> tuple[int, int]:
    h, w = shape[:2]
    return int((90 - lat) / 180 * h), int((lon + 180) / 360 * w)


@pytest.mark.parametrize(
    "lat, lon, what",
    [(0.0, 0.0, "Gulf of Guinea"), (23.0, 12.0, "Sahara"), (-25.0, 134.0, "Australia"),
     (72.0, -40.0, "Greenland ice"), (-30.0, -20.0, "South Atlantic"), (45.0, 100.0, "Mongolia")],
)  # fmt: skip
def test_basemap_pixels_come_from_the_same_place_in_the_source(basemap, source, lat, lon, what):
    r, c = _merc_pixel(lat, lon, basemap.shape[0])
    sr, sc = _src_pixel(lat, lon, source.shape)
    got = basemap[r - 1 : r + 2, c - 1 : c + 2].reshape(-1, 3).mean(0)
    want = source[sr - 3 : sr + 4, sc - 3 : sc + 4].reshape(-1, 3).mean(0)
    assert np.abs(got - want).max() < 20, (what, got, want)


@pytest.mark.parametrize("lat", [60.0, 40.0, -50.0, 75.0])
def test_basemap_rows_follow_mercator_not_linear_latitude(basemap, source, lat):
    # A whole row of the basemap matches the source row at the Mercator latitude, and not
    # the row a linear (equirectangular) reading of the same image row would give.
    size = basemap.shape[0]
    r, _ = _merc_pixel(lat, 0.0, size)
    row = basemap[r].astype(np.float64).mean(1)  # [size] brightness along longitude
    lat_linear = sa.MERCATOR_MAX_LAT * (1 - 2 * (r + 0.5) / size)

    def src_row(at: float) -> np.ndarray:
        sr, _ = _src_pixel(at, 0.0, source.shape)
        v = source[sr].astype(np.float64).mean(1)  # [5400]
        return v.reshape(size, -1).mean(1) if v.size % size == 0 else np.interp(
            (np.arange(size) + 0.5) * v.size / size, np.arange(v.size) + 0.5, v
        )

    right = np.corrcoef(row, src_row(lat))[0, 1]
    wrong = np.corrcoef(row, src_row(lat_linear))[0, 1]
    assert abs(lat - lat_linear) > 5
    assert right > 0.95 and right > wrong + 0.2, (right, wrong)


def test_reproject_maps_rows_to_mercator_latitude_and_columns_to_longitude():
    # Synthetic source: channel 0 = source row index, channel 1 = source column index.
    h, w, size = 180, 240, 64
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    src = np.stack([rows, cols, np.zeros_like(rows)], axis=2).astype(np.uint8)
    out = sa.reproject_to_mercator(src, size).astype(np.float64)
    lat = sa.mercator_lat(1 - 2 * (np.arange(size) + 0.5) / size)
    want_row = np.clip((90 - lat) / 180 * h - 0.5, 0, h - 1)
    lon = (np.arange(size) + 0.5) / size * 360 - 180
    want_col = np.clip((lon + 180) / 360 * w - 0.5, 0, w - 1)
    assert np.abs(out[:, :, 0] - want_row[:, None]).max() <= 0.5
    assert np.abs(out[:, :, 1] - want_col[None, :]).max() <= 0.5


def test_mercator_lat_limits():
    lat = sa.mercator_lat(np.array([-1.0, 0.0, 1.0]))
    np.testing.assert_allclose(lat, [-sa.MERCATOR_MAX_LAT, 0.0, sa.MERCATOR_MAX_LAT])
    y60 = np.log(np.tan(np.pi / 4 + np.radians(60) / 2)) / np.pi
    assert sa.mercator_lat(y60) == pytest.approx(60.0)


def test_build_is_idempotent_and_force_rewrites(tmp_path):
    assert len(sa.build_static(tmp_path)) == len(sa.ALL_FILES)
    stamps = {rel: os.stat(tmp_path / rel).st_mtime_ns for rel in sa.ALL_FILES}
    assert sa.build_static(tmp_path) == []
    assert {rel: os.stat(tmp_path / rel).st_mtime_ns for rel in sa.ALL_FILES} == stamps
    (tmp_path / sa.JQUERY_JS).unlink()
    assert sa.build_static(tmp_path) == [tmp_path / sa.JQUERY_JS]
    assert len(sa.build_static(tmp_path, force=True)) == len(sa.ALL_FILES)


def test_status_reports_missing_files(tmp_path):
    status = sa.static_status(tmp_path)
    assert status["complete"] is False and sorted(status["missing"]) == sorted(sa.ALL_FILES)
    sa.build_static(tmp_path)
    assert sa.static_status(tmp_path) == {
        "root": str(tmp_path),
        "files": dict.fromkeys(sa.ALL_FILES, True),
        "missing": [],
        "complete": True,
    }
    (tmp_path / sa.BLUEMARBLE).unlink()
    status = sa.static_status(tmp_path)
    assert status["missing"] == [sa.BLUEMARBLE] and status["files"][sa.LEAFLET_JS] is True


def test_missing_package_says_what_to_install(tmp_path, monkeypatch):
    real = importlib.import_module

    def fake(name, *a, **kw):
        if name == "xstatic.pkg.leaflet":
            raise ImportError(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(sa.importlib, "import_module", fake)
    with pytest.raises(NotFoundError, match="pip install xstatic-leaflet"):
        sa.build_static(tmp_path)
