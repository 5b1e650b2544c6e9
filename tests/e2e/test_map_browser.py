"""The offline map in a real browser: Leaflet and the basemap load from /app/static with every
non-localhost request aborted, and a click on the map comes back to the Streamlit script."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from workbench.ui.map import normalize_lon

APP = Path(__file__).with_name("map_app.py")
from tests.e2e.conftest import map_frame
SCREENSHOT = Path("/tmp/map_e2e.png")


@pytest.mark.e2e
def test_map_renders_offline_and_reports_clicks(streamlit_app, offline_page, blocked_requests):
    app = streamlit_app(APP)
    page = offline_page
    page.goto(app.url, wait_until="domcontentloaded")
    page.get_by_text("clicked: none").wait_for(timeout=30_000)

    frame_el, frame = map_frame(page)

    # Leaflet 1.9 came from /app/static, and the Blue Marble overlay decoded (a broken or
    # blocked image has naturalWidth 0): the map is not blank.
    overlay = frame.locator("img.leaflet-image-layer")
    overlay.wait_for(state="visible", timeout=30_000)
    frame.wait_for_function(
        """() => {
            const img = document.querySelector('img.leaflet-image-layer');
            return img && img.complete && img.naturalWidth > 0;
        }""",
        timeout=30_000,
    )
    info = frame.evaluate(
        """() => {
            const img = document.querySelector('img.leaflet-image-layer');
            const box = img.getBoundingClientRect();
            return {
                leaflet: window.L && L.version,
                jquery: typeof window.jQuery === 'function',
                src: img.src, natural: [img.naturalWidth, img.naturalHeight],
                box: [box.width, box.height],
                canvases: document.querySelectorAll('canvas.leaflet-zoom-animated').length,
                heat: document.querySelectorAll('canvas.leaflet-heatmap-layer').length,
                legend: (document.querySelector('.wb-legend') || {}).innerText,
            };
        }"""
    )
    assert info["leaflet"].startswith("1.9")
    assert info["jquery"]
    assert info["src"].endswith("/app/static/basemap/bluemarble_3857.jpg")
    assert info["natural"] == [2048, 2048]
    assert info["box"][0] > 500 and info["box"][1] > 500  # zoom 2: a 1024 px world
    assert info["canvases"] >= 1  # points and polygons, drawn by the canvas renderer
    assert info["heat"] == 1  # Leaflet.heat loaded from /app/static and drew its canvas
    assert "error (km)" in info["legend"]
    # The page's pixels are the basemap's, not an empty grey map.
    shot = page.screenshot(path=str(SCREENSHOT))
    assert _distinct_colours(shot) > 200

    box = frame_el.bounding_box()
    # Panning moves the map but sends nothing back: the script does not rerun.
    runs = _runs(page)
    center = frame.evaluate("() => window.map.getCenter().lng")
    page.mouse.move(box["x"] + 300, box["y"] + 200)
    page.mouse.down()
    page.mouse.move(box["x"] + 200, box["y"] + 220, steps=8)
    page.mouse.up()
    page.wait_for_timeout(1500)
    assert frame.evaluate("() => window.map.getCenter().lng") != pytest.approx(center, abs=1.0)
    assert _runs(page) == runs
    frame.evaluate("() => window.map.setView([20, 0], 2, {animate: false})")  # back to the start

    # A click over Central Africa comes back as the point Leaflet puts under that pixel.
    lat, lon, raw = _click(page, frame, frame_el, box["width"] / 2 + 60, box["height"] / 2 + 60)
    assert lat == pytest.approx(raw[0], abs=0.5) and lon == pytest.approx(raw[1], abs=0.5)
    assert -10 < lat < 20 and 10 < lon < 35
    page.get_by_text(f"runs: {runs + 1}", exact=True).wait_for(timeout=10_000)  # one rerun per click

    # Right of the image lies the next copy of the world: Leaflet reports lng > 180 there,
    # and the widget wraps it into [-180, 180].
    lat, lon, raw = _click(page, frame, frame_el, box["width"] - 15, box["height"] / 2)
    assert raw[1] > 180
    assert lon == pytest.approx(normalize_lon(raw[1]), abs=0.5) and -180 <= lon < -150

    # Nothing the map needs came from outside: the guard aborted no request at all.
    assert blocked_requests == []


def _click(page, frame, frame_el, x: float, y: float) -> tuple[float, float, list[float]]:
    """Click the map at container pixel (x, y); return the (lat, lon) the app printed and
    Leaflet's own [lat, lng] for that pixel."""
    to_latlng = "([x, y]) => { const ll = window.map.containerPointToLatLng([x, y]); return [ll.lat, ll.lng]; }"
    raw = frame.evaluate(to_latlng, [x, y])
    before = page.get_by_text(re.compile(r"^clicked: ")).inner_text()
    frame_el.click(position={"x": x, "y": y})
    shown = page.get_by_text(re.compile(r"^clicked: lat="))
    page.wait_for_function(
        """before => [...document.querySelectorAll('p')]
            .some(p => p.innerText.startsWith('clicked: lat=') && p.innerText !== before)""",
        arg=before,
        timeout=30_000,
    )
    lat, lon = map(float, re.findall(r"-?\d+\.\d+", shown.inner_text()))
    return lat, lon, raw


def _runs(page) -> int:
    return int(page.get_by_text(re.compile(r"^runs: \d+$")).inner_text().split(": ")[1])


def _distinct_colours(png: bytes) -> int:
    import io

    import numpy as np
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    return len(np.unique(rgb.reshape(-1, 3) // 8, axis=0))
