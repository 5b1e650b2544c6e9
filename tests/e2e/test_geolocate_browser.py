"""The Geolocate page in a real, offline browser: upload a sample photo, see the top-k cells
drawn on the map coloured by probability, and the GeoGuessr score from its EXIF GPS.
Screenshot: /tmp/geolocate_e2e.png."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGE = REPO_ROOT / "pages" / "4_Geolocate.py"
PHOTO = REPO_ROOT / "assets" / "photos" / "summer_palace_beijing.jpg"
from tests.e2e.conftest import map_frame
SCREENSHOT = Path("/tmp/geolocate_e2e.png")


@pytest.mark.e2e
def test_upload_shows_cells_and_score(streamlit_app, offline_page, blocked_requests, runs_dir):
    app = streamlit_app(PAGE)
    page = offline_page
    page.set_viewport_size({"width": 1400, "height": 1600})
    page.goto(app.url, wait_until="domcontentloaded")
    page.get_by_role("heading", name="Geolocate").wait_for(timeout=60_000)
    page.get_by_text("GeoGuessr score").first.wait_for(timeout=60_000)  # the default sample photo

    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(PHOTO))
    metric = page.locator('[data-testid="stMetric"]', has_text="True location")
    metric.get_by_text("40.00, 116.27").wait_for(timeout=60_000)  # the upload's EXIF GPS
    score = page.locator('[data-testid="stMetric"]', has_text="GeoGuessr score")
    score.wait_for(timeout=30_000)
    value = score.locator('[data-testid="stMetricValue"]').inner_text().replace(",", "")
    assert 0 <= float(value) <= 5000

    frame_el, frame = map_frame(page)
    frame.wait_for_function("() => window.L && document.querySelector('.wb-legend')", timeout=30_000)
    cells = frame.evaluate(
        """() => {
            const maps = Object.values(window).filter(v => v instanceof L.Map);
            const polys = [];
            maps[0].eachLayer(l => { if (l instanceof L.Polygon) polys.push(l.options.fillColor); });
            return {n: polys.length, colours: [...new Set(polys)].length,
                    legend: document.querySelector('.wb-legend').innerText};
        }"""
    )
    assert cells["n"] == 5  # the top-5 cells, as polygons ...
    assert cells["colours"] >= 2  # ... coloured by their probability
    assert "probability" in cells["legend"]
    page.wait_for_timeout(1500)  # let fit_bounds finish its animation before the screenshot
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert not blocked_requests, blocked_requests
