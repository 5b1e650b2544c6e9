"""The Location embeddings page in a real, offline browser: the demo SatCLIP model colours
the map by its first three principal components (an inline image layer), a click shows the
nearest held-out tiles (images served by the app) and the nearest places on a second map,
and the probe table is drawn. Screenshot: /tmp/location_embeddings_e2e.png."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.conftest import CIRCLE_MARKERS, map_frame, poll_map

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGE = REPO_ROOT / "pages" / "7_Location_Embeddings.py"
SCREENSHOT = Path("/tmp/location_embeddings_e2e.png")
TOP = 8

IMAGE_LAYERS = """() => {
    const maps = Object.values(window).filter(v => v instanceof L.Map);
    let n = 0;
    maps[0].eachLayer(l => { if (l instanceof L.ImageOverlay && l._url.startsWith('data:image/png')) n += 1; });
    return n;
}"""
POINTS = CIRCLE_MARKERS


@pytest.mark.e2e
def test_pca_map_then_a_click_shows_nearest_tiles_places_and_probes(
        streamlit_app, offline_page, blocked_requests, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_RUNS", str(tmp_path / "runs"))  # only the committed demo bundle
    app = streamlit_app(PAGE)
    page = offline_page
    page.goto(app.url, wait_until="domcontentloaded")
    page.get_by_text(re.compile(r"^Click anywhere on the map")).wait_for(timeout=60_000)
    page.get_by_text(re.compile(r"principal components 1, 2, 3")).wait_for(timeout=60_000)
    # the principal-component picture (Blue Marble is a served file, this one is inline)
    assert poll_map(page, IMAGE_LAYERS, 1) == 1

    frame_el, frame = map_frame(page)
    frame.wait_for_function("() => window.map && window.L", timeout=30_000)
    frame.evaluate("() => window.map.setView([48, 10], 3, {animate: false})")  # central Europe
    # Leaflet's own reading of the click, to compare with what the page reports
    frame.evaluate("() => window.map.once('click', e => { window.__clicked = [e.latlng.lat, e.latlng.lng]; })")
    frame_el.click(position={"x": frame_el.bounding_box()["width"] / 2, "y": frame_el.bounding_box()["height"] / 2})
    want = frame.evaluate("() => window.__clicked")

    clicked = page.get_by_text(re.compile(r"^Clicked: "))
    clicked.wait_for(timeout=60_000)
    (lat, ns, lon, ew), = re.findall(r"(\d+\.\d{3})° ([NS]), (\d+\.\d{3})° ([EW])", clicked.inner_text())
    assert (ns, ew) == ("N", "E")
    assert float(lat) == pytest.approx(want[0], abs=1e-3) and float(lon) == pytest.approx(want[1], abs=1e-3)
    assert 30 < float(lat) < 60 and 0 < float(lon) < 20  # Europe, where the view was put
    page.get_by_text("Tiles this place should look like").wait_for(timeout=60_000)
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stImage] img')]"
                           f".filter(i => i.complete && i.naturalWidth > 0).length >= {TOP}", timeout=30_000)
    # the second map: the clicked point and its TOP nearest places
    assert poll_map(page, POINTS, TOP + 1, index=1) == TOP + 1
    page.get_by_text("Location-embedding probes").wait_for(timeout=30_000)
    page.get_by_text(re.compile(r"raw lat/lon")).first.wait_for(timeout=30_000)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert blocked_requests == []  # nothing left localhost
