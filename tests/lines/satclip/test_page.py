"""AppTest of pages/7_Location_Embeddings.py with the committed demo bundle (and the demo
data's tiles).

st_folium is a custom component (AppTest cannot render it), so the map widget is
monkeypatched to return a click; the image layers and points the page adds are captured.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import workbench.ui.map as wmap
from workbench.lines.satclip import explore

REPO_ROOT = Path(__file__).resolve().parents[3]
PAGE = str(REPO_ROOT / "pages" / "7_Location_Embeddings.py")
CLICK = {"lat": 35.7, "lon": 139.7}  # Tokyo: held-out tiles nearby in the demo split


@pytest.fixture
def maps(monkeypatch, runs_dir):
    drawn = {"images": [], "points": [], "click": None}
    real_image, real_points = wmap.add_image_grid, wmap.add_points

    def add_image_grid(m, rgb, lat, lon, **kw):
        drawn["images"].append(np.asarray(rgb))
        return real_image(m, rgb, lat, lon, **kw)

    def add_points(m, lat, lon, **kw):
        drawn["points"].append((list(lat), list(lon)))
        return real_points(m, lat, lon, **kw)

    monkeypatch.setattr(wmap, "add_image_grid", add_image_grid)
    monkeypatch.setattr(wmap, "add_points", add_points)
    monkeypatch.setattr(wmap, "map_widget", lambda m, key, height=None: drawn["click"] if key == "le_map" else None)
    return drawn


def frame(at: AppTest, column: str, nth: int = 0):
    """The nth dataframe of the page holding ``column``."""
    return [df.value for df in at.dataframe if column in df.value.columns][nth]


def page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=180).run()


def test_the_demo_colours_the_map_and_shows_its_probe_table(maps):
    at = page()
    assert not at.exception, at.exception
    assert at.title[0].value == "Location embeddings"
    assert at.multiselect(key="le_models").value == ["checkpoint: satclip-demo"]
    assert len(maps["images"]) == 1  # the principal components of the demo's encoder
    rgb = maps["images"][0]
    assert rgb.dtype == np.uint8 and rgb.shape == (85, 180, 3) and rgb.std() > 20  # 2 degree grid, not flat
    assert any("Click anywhere on the map" in i.value for i in at.info)
    probes = frame(at, "log_population")
    assert {"checkpoint: satclip-demo", "raw_latlon", "geoclip", "sh10", "sh40"} <= set(probes["encoder"])
    assert set(probes["probe"]) == {"linear", "mlp"}


def test_a_click_shows_the_nearest_tiles_and_places(maps):
    maps["click"] = CLICK
    at = page()
    assert not at.exception, at.exception
    ls = explore.load_satclip(explore.DEMO)
    tiles, places = frame(at, "land_fraction", 0), frame(at, "land_fraction", 1)
    want = explore.nearest_tiles(ls, CLICK["lat"], CLICK["lon"], 8)
    assert tiles["place"].tolist() == want["place"].tolist() and tiles["rank"].tolist() == list(range(1, 9))
    assert places["score"].is_monotonic_decreasing
    assert places["distance_km"].iloc[0] < 300  # the encoder puts Tokyo next to the held-out tiles near it
    assert len(at.get("image")) >= 8  # the tiles' thumbnails (the demo data is built by make test)
    assert maps["points"][-1][0] == places["lat"].tolist()  # the nearest places on the second map
    at.number_input(key="le_top").set_value(3).run()
    assert len(frame(at, "land_fraction", 0)) == 3


def test_another_encoder_and_no_colour(maps):
    at = page()
    at.selectbox(key="le_pca_encoder").set_value("raw lat/lon").run()
    assert not at.exception
    assert len(maps["images"]) == 2
    assert np.all(maps["images"][-1][..., 2] == maps["images"][-1][0, 0, 2])  # two dims: blue constant
    assert any("blue is constant" in c.value for c in at.caption)
    at.selectbox(key="le_pca_encoder").set_value("(none)").run()
    assert len(maps["images"]) == 2  # no new picture


def test_a_model_without_embeddings_is_an_error_box(maps, monkeypatch, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(explore.DEMO, broken)
    shutil.rmtree(broken / "embeddings")
    from workbench.runs.sources import Source

    monkeypatch.setattr(explore, "list_sources", lambda *a, **k: [Source("checkpoint: broken", "checkpoint", broken)])
    at = page()
    assert not at.exception
    assert any("no held-out embeddings" in e.value for e in at.error)


def test_without_any_model_the_page_says_how_to_make_one(maps, monkeypatch):
    monkeypatch.setattr(explore, "list_sources", lambda *a, **k: [])
    at = page()
    assert not at.exception
    assert any("satclip-demo" in i.value for i in at.info)
