"""The Retrieval page in a real, offline browser: the two demo models (projection heads and
CLIP from scratch, both preselected) answer the default caption side by side with 8 tiles
each (images served by the app) and 16 places on one offline map; typing another caption
and pressing Enter changes the tiles. Screenshot: /tmp/retrieval_e2e.png."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import CIRCLE_MARKERS, poll_map

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGE = REPO_ROOT / "pages" / "6_Retrieval.py"
SCREENSHOT = Path("/tmp/retrieval_e2e.png")
TILE_CAPTION = re.compile(r"^#1 ")

POINTS = CIRCLE_MARKERS


def _first_tile_caption(page) -> str:
    return page.get_by_text(TILE_CAPTION).first.inner_text()


@pytest.mark.e2e
def test_a_caption_returns_tiles_and_places_and_a_new_caption_changes_them(
        streamlit_app, offline_page, blocked_requests, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_RUNS", str(tmp_path / "runs"))  # only the committed demo bundle
    app = streamlit_app(PAGE)
    page = offline_page
    page.goto(app.url, wait_until="domcontentloaded")
    page.get_by_text("Caption → images").wait_for(timeout=60_000)
    page.get_by_text(TILE_CAPTION).first.wait_for(timeout=60_000)
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stImage] img')]"
                           ".filter(i => i.complete && i.naturalWidth > 0).length >= 16", timeout=30_000)
    page.get_by_text("checkpoint: clip-demo", exact=True).first.wait_for(timeout=30_000)  # its column's heading
    assert poll_map(page, POINTS, 16) == 16
    before = _first_tile_caption(page)

    box = page.get_by_label(re.compile("A caption"))
    box.fill("open ocean far from any coast")
    box.press("Enter")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _first_tile_caption(page) == before:
        time.sleep(0.5)
    after = _first_tile_caption(page)
    assert after != before, after
    page.get_by_text("Test R@K of the selected models").wait_for(timeout=30_000)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert blocked_requests == []  # nothing left localhost
