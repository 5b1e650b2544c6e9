"""The Data page in a real, offline browser: the points heat map and the partition's cells
are drawn inside the st_folium iframes, one SVG path per cell."""
from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.data import catalog

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGE = REPO_ROOT / "pages" / "2_Data.py"
from tests.e2e.conftest import MAP_IFRAME
SCREENSHOT = Path("/tmp/data_e2e.png")
CITIES = [(48.85, 2.35), (40.71, -74.0), (35.68, 139.69), (-33.87, 151.21), (-23.55, -46.63),
          (19.43, -99.13), (28.61, 77.21), (30.04, 31.24), (-1.29, 36.82), (55.76, 37.62),
          (1.35, 103.82), (34.05, -118.24), (-34.60, -58.38), (6.52, 3.38), (39.90, 116.40)]
CELL_PATHS = "() => document.querySelectorAll('.leaflet-overlay-pane svg path.leaflet-interactive').length"


@pytest.fixture
def small_dataset(tmp_path, monkeypatch) -> Path:
    """2000 points around 15 cities, train / val splits, in a data root of its own."""
    rng = np.random.default_rng(0)
    centre = np.array(CITIES)[rng.integers(0, len(CITIES), 2000)]
    lat = np.clip(centre[:, 0] + rng.normal(0, 1.5, 2000), -89, 89)
    lon = (centre[:, 1] + rng.normal(0, 1.5, 2000) + 180) % 360 - 180
    split = np.where(rng.random(2000) < 0.8, "train", "val")
    folder = tmp_path / "data" / "cities-small"
    folder.mkdir(parents=True)
    pd.DataFrame({"lat": lat.round(5), "lon": lon.round(5), "split": split}).to_csv(
        folder / "cities-small.csv", index=False)
    monkeypatch.setenv(catalog.DATA_ENV, str(tmp_path / "data"))  # read by the server at start
    return folder


@pytest.mark.e2e
def test_data_page_draws_partition_cells_offline(small_dataset, streamlit_app, offline_page,
                                                 blocked_requests):
    app = streamlit_app(PAGE)
    page = offline_page
    start = time.perf_counter()
    page.goto(app.url, wait_until="domcontentloaded")
    page.get_by_text("S2 partition").wait_for(timeout=60_000)
    maps = page.locator(MAP_IFRAME)
    maps.nth(1).wait_for(state="visible", timeout=60_000)
    points_frame = maps.nth(0).element_handle().content_frame()
    cells_frame = maps.nth(1).element_handle().content_frame()
    cells_frame.wait_for_function(f"() => ({CELL_PATHS})() > 0", timeout=60_000)
    seconds_to_cells = time.perf_counter() - start

    n_cells = int(_metric(page, "cells"))
    assert n_cells > 20
    # One SVG path per partition cell in the GeoJSON layer, and the colour legend.
    assert cells_frame.evaluate(CELL_PATHS) == n_cells
    legend = cells_frame.evaluate("() => (document.querySelector('.wb-legend') || {}).innerText")
    assert "training points per cell" in legend
    fills = cells_frame.evaluate(
        "() => new Set([...document.querySelectorAll('.leaflet-overlay-pane svg path')]"
        ".map(p => p.getAttribute('fill'))).size")
    assert fills > 1  # coloured by count, not one flat colour
    # The points map drew its heat layer; the Blue Marble basemap decoded in both maps.
    points_frame.wait_for_function(
        "() => document.querySelectorAll('canvas.leaflet-heatmap-layer').length === 1",
        timeout=30_000)
    for frame in (points_frame, cells_frame):
        frame.wait_for_function(
            """() => { const img = document.querySelector('img.leaflet-image-layer');
                       return img && img.complete && img.naturalWidth > 0; }""", timeout=30_000)

    # The oracle table and the class-size histogram are on the page too.
    page.get_by_text("Oracle").first.wait_for(timeout=10_000)
    assert page.locator(".js-plotly-plot").count() == 1

    # Streamlit scrolls inside its own container, so a full-page shot needs a tall viewport.
    page.set_viewport_size({"width": 1280, "height": 2000})
    page.wait_for_timeout(1500)
    page.screenshot(path=str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 50_000
    assert blocked_requests == []  # nothing left localhost
    print(f"\ncells drawn: {n_cells}; page open -> cells on the map: {seconds_to_cells:.1f} s")


def _metric(page, label: str) -> str:
    """The value of the st.metric with this label."""
    box = page.locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]', has_text=re.compile(rf"^{label}$")))
    return box.locator('[data-testid="stMetricValue"]').inner_text().replace(",", "")


@pytest.mark.e2e
def test_add_a_csv_by_upload_and_a_system_path_is_refused(small_dataset, streamlit_app,
                                                         offline_page, blocked_requests):
    """The "Add a CSV dataset" form as a user meets it: /etc/passwd is refused with a message
    that quotes none of it; an upload is saved under the data folder and selected."""
    app = streamlit_app(PAGE)
    page = offline_page
    page.set_viewport_size({"width": 1280, "height": 1600})
    page.goto(app.url, wait_until="domcontentloaded")
    page.get_by_text("S2 partition").wait_for(timeout=60_000)
    page.get_by_text("Add a CSV dataset").click()

    page.get_by_role("tab", name="A CSV already on the server").click()
    page.get_by_label("CSV path (absolute, or relative to the data folder)").fill("/etc/passwd")
    page.get_by_role("button", name="Register").click()
    error = page.locator('[data-testid="stAlertContentError"]')
    error.wait_for(timeout=30_000)
    text = error.inner_text()
    assert text.startswith("cannot register /etc/passwd: it is outside the folders")
    assert catalog.PATHS_ENV in text and "upload" in text
    body = page.locator("body").inner_text()
    assert "root:" not in body and "/bin/" not in body  # nothing of the file reached the page
    error.scroll_into_view_if_needed()
    page.screenshot(path="/tmp/data_e2e_passwd.png")

    page.get_by_role("tab", name="Upload a CSV").click()
    csv = b"lat,lon,split\n48.85,2.35,train\n35.68,139.69,train\n-33.87,151.21,val\n"
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
        files=[{"name": "My Points.csv", "mimeType": "text/csv", "buffer": csv}])
    page.get_by_text("My Points.csv").first.wait_for(timeout=30_000)
    page.get_by_role("button", name="Add the upload").click()
    page.get_by_text(re.compile(r"^Registered My-Points ")).wait_for(timeout=60_000)
    saved = small_dataset.parent / catalog.UPLOADS / "My-Points.csv"
    assert saved.read_bytes() == csv
    page.get_by_text("S2 partition").wait_for(timeout=60_000)
    assert _metric(page, "samples") == "3"
    page.wait_for_timeout(1000)
    page.screenshot(path="/tmp/data_e2e_upload.png")
    assert blocked_requests == []
