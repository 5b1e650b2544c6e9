"""Demo datasets: documented files and counts, leak-free splits, determinism, idempotency."""
import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from workbench.data.demo import DEMO_DATASETS, build_demo
from workbench.data.demo_patches import (
    BAND_NAMES,
    crop_tiles,
    gallery_latlon,
    load_bluemarble,
    load_geo_patches,
)
from workbench.data.demo_photos import SAMPLE_PHOTOS
from workbench.data.exif import read_exif_gps
from workbench.errors import NotFoundError
from workbench.geo import s2_cell_ids

SMALL = dict(n_patches=200, patch_size=32, seed=0, caption_images=40, caption_tile_px=32, caption_encode_px=64)
PATCH_COLUMNS = ["path", "lat", "lon", "split", "s2_cell", "land_fraction", "place", "city",
                 "admin1", "country", "place_km"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    lines = []
    report = build_demo(root / "data", photos_dir=root / "photos", progress=lines.append,
                        **SMALL)
    return root, report, lines


def file_digests(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_every_dataset_is_built_with_a_manifest(built):
    root, report, lines = built
    assert sorted(report) == DEMO_DATASETS.list() == ["cities", "gallery", "geo-captions", "geo-patches",
                                                      "photos"]
    for name, entry in report.items():
        assert entry["status"] == "built"
        manifest = json.loads((root / ("photos" if name == "photos" else f"data/{name}")
                               / "manifest.json").read_text())
        assert manifest["dataset"] == name and manifest["seed"] == 0
        assert manifest["counts"] == entry["counts"]
    assert any(line.startswith("geo-patches: writing 200") for line in lines)


def test_cities(built):
    root, report, _ = built
    cities = pd.read_csv(root / "data/cities/cities.csv", keep_default_na=False)
    assert list(cities.columns) == ["geonameid", "name", "country_code", "country", "continent",
                                    "admin1_code", "lat", "lon", "population", "timezone"]
    assert len(cities) == report["cities"]["counts"]["cities"] > 30000
    assert cities["population"].is_monotonic_decreasing
    assert (cities["population"] < 15000).sum() < 100  # GeoNames cities15000 + small capitals
    tokyo = cities[(cities["name"] == "Tokyo") & (cities["country_code"] == "JP")].iloc[0]
    assert tokyo["country"] == "Japan" and tokyo["continent"] == "Asia"
    assert tokyo[["lat", "lon"]].tolist() == pytest.approx([35.69, 139.69], abs=0.05)


def test_gallery_is_geoclips_100k(built):
    root, _, _ = built
    gallery = pd.read_csv(root / "data/gallery/gallery.csv")
    assert list(gallery.columns) == ["lat", "lon"] and len(gallery) == 100_000
    np.testing.assert_allclose(gallery.to_numpy(), gallery_latlon(), atol=5e-7)


def test_geo_patches_files_rows_and_bands(built):
    root, report, _ = built
    folder = root / "data/geo-patches"
    patches = load_geo_patches(folder)
    frame = patches.frame
    assert list(frame.columns) == PATCH_COLUMNS and len(frame) == 200
    assert frame["lat"].between(-90, 90).all() and frame["lon"].between(-180, 180).all()
    assert (frame["country"].str.len() == 2).all() and (frame["place"] != "").all()
    assert patches.bands.shape == (200, len(BAND_NAMES), 32, 32)
    assert patches.bands.dtype == np.uint8
    assert set(np.unique(patches.bands[:, -1])) <= {0, 1, 2}  # sea, land, lake
    np.testing.assert_allclose(frame["land_fraction"],
                               (patches.bands[:, -1] == 1).mean(axis=(1, 2)), atol=1e-4)
    with Image.open(folder / frame["path"][0]) as image:
        assert image.size == (32, 32) and image.mode == "RGB"
    assert report["geo-patches"]["bands_shape"] == [200, 7, 32, 32]

    # The JPEG tiles are the Blue Marble around each row's lat/lon (up to JPEG loss).
    rgb = patches.rgb(range(20)).transpose(0, 2, 3, 1).astype(int)
    expected = crop_tiles(load_bluemarble(), frame["lat"][:20].to_numpy(),
                          frame["lon"][:20].to_numpy(), 32).astype(int)
    assert np.abs(rgb - expected).mean() < 4
    shifted = crop_tiles(load_bluemarble(), frame["lat"][:20].to_numpy() + 1.0,
                         frame["lon"][:20].to_numpy(), 32).astype(int)
    assert np.abs(rgb - shifted).mean() > 2 * np.abs(rgb - expected).mean()


def test_geo_patch_splits_share_no_coarse_cell(built):
    root, report, _ = built
    frame = load_geo_patches(root / "data/geo-patches").frame
    counts = frame["split"].value_counts()
    assert set(counts.index) == {"train", "val", "test"}
    assert counts["train"] > 0.6 * len(frame) and min(counts["val"], counts["test"]) > 0.04 * 200
    assert {k: int(v) for k, v in counts.items()} == {
        k: report["geo-patches"]["counts"][k] for k in ("train", "val", "test")}
    cells = s2_cell_ids(frame["lat"].to_numpy(), frame["lon"].to_numpy(), 4)
    splits_per_cell = pd.Series(frame["split"].to_numpy()).groupby(cells).nunique()
    assert (splits_per_cell == 1).all()


def test_photos_carry_their_gps(built):
    root, report, _ = built
    manifest = json.loads((root / "photos/manifest.json").read_text())
    assert len(manifest["photos"]) == len(SAMPLE_PHOTOS) == report["photos"]["counts"]["photos"]
    for photo in manifest["photos"]:
        path = root / "photos" / photo["file"]
        assert path.stat().st_size < 200_000
        assert read_exif_gps(path) == pytest.approx((photo["lat"], photo["lon"]), abs=1e-6)
        assert photo["location"].split()[0] in ("true", "illustrative") and photo["credit"]


def test_build_is_deterministic(built, tmp_path):
    root, _, _ = built
    build_demo(tmp_path / "data", photos_dir=tmp_path / "photos", **SMALL)
    assert file_digests(tmp_path) == file_digests(root)


def test_build_is_idempotent_and_rebuilds_on_request_or_new_params(tmp_path):
    kw = dict(photos_dir=tmp_path / "photos", only=["geo-patches", "photos"], **SMALL)
    build_demo(tmp_path, **kw)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    again = build_demo(tmp_path, **kw)
    assert {name: r["status"] for name, r in again.items()} == {"geo-patches": "skipped",
                                                               "photos": "skipped"}
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before
    assert not (tmp_path / "cities").exists()  # only= is respected

    forced = build_demo(tmp_path, force=True, **{**kw, "only": ["photos"]})
    assert forced["photos"]["status"] == "built"
    bigger = build_demo(tmp_path, **{**kw, "n_patches": 120})
    assert bigger["geo-patches"]["status"] == "built" and bigger["photos"]["status"] == "skipped"
    assert len(pd.read_csv(tmp_path / "geo-patches/patches.csv")) == 120
    assert len(list((tmp_path / "geo-patches/images").iterdir())) == 120
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_missing_file_triggers_a_rebuild(tmp_path):
    kw = dict(only=["gallery"])
    build_demo(tmp_path, **kw)
    (tmp_path / "gallery/gallery.csv").unlink()
    assert build_demo(tmp_path, **kw)["gallery"]["status"] == "built"
    assert (tmp_path / "gallery/gallery.csv").is_file()


def test_unknown_dataset_lists_the_choices(tmp_path):
    with pytest.raises(NotFoundError, match="Available: .*geo-patches"):
        build_demo(tmp_path, only=["imagenet"])
    assert not any(tmp_path.iterdir())


def test_crop_wraps_the_antimeridian_and_clamps_at_the_poles():
    h, w = 2700, 5400  # a raster whose pixels hold their own (row, col)
    raster = np.empty((h, w, 2), np.uint16)
    raster[..., 0] = np.arange(h)[:, None]
    raster[..., 1] = np.arange(w)
    tile = crop_tiles(raster, np.array([0.0]), np.array([180.0]), 4)[0]  # centred on the seam
    assert tile[0, :, 1].tolist() == [w - 2, w - 1, 0, 1]
    tile = crop_tiles(raster, np.array([0.0]), np.array([-180.0]), 4)[0]
    assert tile[0, :, 1].tolist() == [w - 2, w - 1, 0, 1]
    assert tile[:, 0, 0].tolist() == [h // 2 - 2, h // 2 - 1, h // 2, h // 2 + 1]
    tile = crop_tiles(raster, np.array([90.0]), np.array([0.0]), 4)[0]  # rows past the pole
    assert tile[:, 0, 0].tolist() == [0, 0, 0, 1]


def test_build_demo_help_names_every_dataset(capsys):
    from workbench.cli import main

    with pytest.raises(SystemExit):
        main(["data", "build-demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in [*DEMO_DATASETS.list(), "static"])
