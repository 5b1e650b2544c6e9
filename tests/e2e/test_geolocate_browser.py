"""The Geolocate page in a real, offline browser: the default test tile is scored; choosing
"Upload" and uploading a photo geolocates it, every cell of the model is drawn on the map
coloured by probability, with a colour bar and a marker legend, and the GeoGuessr score
comes from the photo's EXIF GPS; the log scale relabels the colour bar.
Screenshots: /tmp/geolocate_e2e.png (upload), /tmp/geolocate_e2e_tile.png (default tile),
/tmp/geolocate_e2e_log.png (log scale)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError

from tests.e2e.conftest import map_frame
from workbench.data.exif import read_exif_gps
from workbench.ui.fmt import fmt_latlon

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGE = REPO_ROOT / "pages" / "4_Geolocate.py"
PHOTO = REPO_ROOT / "assets" / "photos" / "summer_palace_beijing.jpg"
SCREENSHOT = Path("/tmp/geolocate_e2e.png")
N_CELLS = 54  # checkpoints/geolocator-demo

MAP_STATE = """() => {
    const maps = Object.values(window).filter(v => v instanceof L.Map);
    const polys = [], points = [];
    maps[0].eachLayer(l => {
        if (l instanceof L.Polygon) polys.push(l.options.fillColor);
        else if (l instanceof L.CircleMarker) points.push(l.options.color);
    });
    const legends = [...document.querySelectorAll('.wb-legend')].map(e => e.innerText);
    return {n: polys.length, colours: [...new Set(polys)].length, points: points, legends: legends};
}"""


def _map_state(page, expect: str, timeout_s: float = 60.0):
    """The map's cells, points and legends once its legends mention ``expect``.

    A rerun replaces the map's iframe (a detached frame, mid-wait), so the current one is
    looked up again until the deadline."""
    deadline = time.monotonic() + timeout_s
    check = f"() => !!window.L && [...document.querySelectorAll('.wb-legend')].some(e => e.innerText.includes({expect!r}))"
    while True:
        try:
            _, frame = map_frame(page)
            if frame is not None and frame.evaluate(check):
                return frame.evaluate(MAP_STATE)
        except PlaywrightError:
            pass  # the iframe was replaced between the lookup and the evaluation
        if time.monotonic() > deadline:
            raise AssertionError(f"no map whose legend mentions {expect!r} within {timeout_s:.0f} s")
        page.wait_for_timeout(250)


@pytest.mark.e2e
def test_upload_shows_every_cell_legends_and_score(streamlit_app, offline_page, blocked_requests, runs_dir):
    app = streamlit_app(PAGE)
    page = offline_page
    page.set_viewport_size({"width": 1400, "height": 1700})
    page.goto(app.url, wait_until="domcontentloaded")
    page.get_by_role("heading", name="Geolocate").wait_for(timeout=60_000)
    page.get_by_text("GeoGuessr score").first.wait_for(timeout=120_000)  # the default test tile
    page.get_by_text("from the test split's position").wait_for(timeout=30_000)
    page.get_by_text("Top-1 probability").wait_for(timeout=60_000)
    tile = _map_state(page, "predicted point")
    assert tile["n"] == N_CELLS
    page.wait_for_timeout(1500)  # let fit_bounds finish its animation before the screenshot
    page.screenshot(path="/tmp/geolocate_e2e_tile.png", full_page=True)

    assert page.locator('[data-testid="stFileUploader"]').count() == 0  # no upload box until asked for
    page.locator('[data-testid="stRadio"]').first.get_by_text("Upload", exact=True).click()
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(PHOTO))
    truth = fmt_latlon(*read_exif_gps(PHOTO.read_bytes()))  # 39.9999° N, 116.2728° E
    page.get_by_text(f"True location: {truth}, from EXIF GPS.").wait_for(timeout=60_000)
    score = page.locator('[data-testid="stMetric"]', has_text="GeoGuessr score")
    value = score.locator('[data-testid="stMetricValue"]').inner_text().replace(",", "")
    assert 0 <= float(value) <= 5000
    page.get_by_text("Low confidence").wait_for(timeout=60_000)  # a street photo: out of distribution

    cells = _map_state(page, "EXIF GPS")
    assert cells["n"] == N_CELLS  # every cell of the model, as polygons ...
    assert cells["colours"] >= 5  # ... coloured by their probability
    assert sorted(cells["points"]) == ["#2ca02c", "#e31a1c"]  # green truth, red prediction
    bar = next(t for t in cells["legends"] if "P(cell)" in t)
    assert f"all {N_CELLS} cells" in bar and "linear scale" in bar and "%" in bar
    markers = next(t for t in cells["legends"] if "predicted point" in t)
    assert "true location (EXIF GPS)" in markers
    for metric in page.locator('[data-testid="stMetricValue"]').all():
        assert "…" not in metric.inner_text() and "None" not in metric.inner_text()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    page.get_by_text("Log colour scale").click()
    log = _map_state(page, "log scale")
    assert log["n"] == N_CELLS and log["colours"] >= cells["colours"]
    page.wait_for_timeout(1500)
    page.screenshot(path="/tmp/geolocate_e2e_log.png", full_page=True)
    assert not blocked_requests, blocked_requests


@pytest.mark.e2e
def test_click_sets_the_truth_and_clear_removes_it(streamlit_app, offline_page, blocked_requests, runs_dir, tmp_path):
    import numpy as np
    from PIL import Image

    lake = tmp_path / "lake.png"  # no EXIF: the truth must come from a click
    Image.fromarray(np.full((60, 80, 3), (30, 90, 160), np.uint8)).save(lake)
    app = streamlit_app(PAGE)
    page = offline_page
    page.set_viewport_size({"width": 1400, "height": 1700})
    page.goto(app.url, wait_until="domcontentloaded")
    page.get_by_text("GeoGuessr score").first.wait_for(timeout=120_000)
    page.locator('[data-testid="stRadio"]').first.get_by_text("Upload", exact=True).click()
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(lake))
    page.get_by_text("click the map where it was taken").wait_for(timeout=60_000)
    _map_state(page, "predicted point")
    page.wait_for_timeout(1500)  # fit_bounds animation

    frame_el, _ = map_frame(page)
    box = frame_el.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.6)
    page.get_by_text("from map click.").wait_for(timeout=60_000)
    assert page.locator('[data-testid="stMetric"]', has_text="GeoGuessr score").count() == 1
    assert "true location (map click)" in " ".join(_map_state(page, "map click")["legends"])

    page.get_by_role("button", name="Clear the clicked location").click()
    page.get_by_text("click the map where it was taken").wait_for(timeout=60_000)
    page.wait_for_timeout(3000)  # the fresh map must not bring the old click back
    assert page.get_by_text("from map click.").count() == 0
    assert page.locator('[data-testid="stMetric"]', has_text="GeoGuessr score").count() == 0
    state = _map_state(page, "predicted point")
    assert state["points"] == ["#e31a1c"] and not any("true location" in t for t in state["legends"])
    page.screenshot(path="/tmp/geolocate_e2e_cleared.png", full_page=True)
    assert not blocked_requests, blocked_requests
