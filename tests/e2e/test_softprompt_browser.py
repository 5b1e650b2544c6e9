"""The Soft-Prompt Explorer in a real browser, offline: clicking the map makes the demo
model's K mixture-weight bars appear (plus the nearest cities and the call's latency)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "pages" / "3_Soft_Prompt_Explorer.py"
from tests.e2e.conftest import map_frame
K = 64


@pytest.mark.e2e
def test_click_on_the_map_shows_k_bars(streamlit_app, offline_page, blocked_requests, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_RUNS", str(tmp_path / "runs"))  # only the committed demo checkpoint
    app = streamlit_app(PAGE)
    page = offline_page
    page.goto(app.url, wait_until="domcontentloaded")
    page.get_by_text("Click anywhere on the map to see the mixture weights.").wait_for(timeout=45_000)

    frame_el, frame = map_frame(page)
    frame.wait_for_function("() => window.map && window.L && L.version.startsWith('1.9')", timeout=30_000)
    box = frame_el.bounding_box()
    # Put a known place under the click, then click it: Leaflet's own pixel -> lat/lng.
    frame.evaluate("() => window.map.setView([30, 20], 2, {animate: false})")
    frame_el.click(position={"x": box["width"] / 2, "y": box["height"] / 2})

    clicked = page.get_by_text(re.compile(r"^Clicked: "))
    clicked.wait_for(timeout=30_000)
    bars = page.locator(".js-plotly-plot .barlayer .point")
    page.wait_for_function(f"() => document.querySelectorAll('.js-plotly-plot .barlayer .point').length >= {K}",
                           timeout=30_000)
    assert bars.count() == K
    (lat, ns, lon, ew), = re.findall(r"(\d+\.\d{4})° ([NS]), (\d+\.\d{4})° ([EW])", clicked.inner_text())
    assert (ns, ew) == ("N", "E")  # the shared lat/lon format, hemispheres spelled out
    assert float(lat) == pytest.approx(30, abs=1.0) and float(lon) == pytest.approx(20, abs=1.0)
    # weights in percent on the axis, like the tables
    ticks = page.eval_on_selector_all(".js-plotly-plot .ytick text", "els => els.map(e => e.textContent)")
    assert ticks and all(t.endswith("%") for t in ticks), ticks
    assert page.get_by_text(re.compile(r"^latency: click")).count() == 1, page.locator("[data-testid=stMetricLabel]").all_inner_texts()
    assert page.get_by_text("Nearest cities", exact=False).count() >= 1
    assert blocked_requests == []  # nothing left localhost
