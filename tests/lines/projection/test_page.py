"""AppTest of pages/6_Retrieval.py with the committed demo bundle (and the demo data's tiles).

st_folium is a custom component (AppTest cannot render it), so the map widget is
monkeypatched; the points the page puts on the map are captured instead.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import workbench.ui.map as wmap
from workbench.lines.projection import bundle

REPO_ROOT = Path(__file__).resolve().parents[3]
PAGE = str(REPO_ROOT / "pages" / "6_Retrieval.py")


@pytest.fixture
def maps(monkeypatch, runs_dir):
    drawn = []
    real_add_points = wmap.add_points

    def add_points(m, lat, lon, **kw):
        drawn.append((list(lat), list(lon), kw.get("tooltip")))
        return real_add_points(m, lat, lon, **kw)

    monkeypatch.setattr(wmap, "add_points", add_points)
    monkeypatch.setattr(wmap, "map_widget", lambda m, key, height=None: None)
    return drawn


def frame(at: AppTest, column: str):
    """The page's dataframe holding ``column`` (AppTest finds widgets, not frames, by key)."""
    return next(df.value for df in at.dataframe if column in df.value.columns)


def page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=120).run()


def test_demo_answers_a_caption_with_tiles_on_the_map_and_shows_the_table(maps):
    at = page()
    assert not at.exception, at.exception
    assert at.title[0].value == "Retrieval"
    assert at.multiselect(key="rt_models").value[0] == "checkpoint: projection-demo"
    assert at.text_input(key="rt_query").value
    images = frame(at, "place")
    assert len(images) == 8 and images["rank"].tolist() == list(range(1, 9))
    assert images["score"].is_monotonic_decreasing
    assert maps and len(maps[0][0]) == 8  # the retrieved places on the map
    assert len(at.get("image")) >= 8  # the tiles (the demo data is built by make test)
    metrics = frame(at, "heads")
    assert {"trained", "untrained", "random_projection", "ridge"} <= set(metrics["heads"])


def test_a_new_query_and_another_image_change_the_answers(maps):
    at = page()
    first = frame(at, "place")["image_id"].tolist()
    at.text_input(key="rt_query").set_value("open ocean far from any coast").run()
    assert not at.exception
    second = frame(at, "place")["image_id"].tolist()
    assert first != second
    captions = frame(at, "correct")
    assert len(captions) == 5 and captions["rank"].tolist() == [1, 2, 3, 4, 5]
    at.selectbox(key="rt_image").set_value(3).run()
    lp = bundle.load_projection(bundle.DEMO)
    expected = bundle.captions_for_image(lp, 3, 5)["caption"].tolist()
    assert frame(at, "correct")["caption"].tolist() == expected


def test_an_empty_query_is_an_error_box_not_a_traceback(maps):
    at = page()
    at.text_input(key="rt_query").set_value("   ").run()
    assert not at.exception
    assert any("type a caption" in e.value for e in at.error)


def test_without_any_model_the_page_says_how_to_make_one(maps, monkeypatch):
    from workbench.contrastive import serving

    monkeypatch.setattr(serving, "list_sources", lambda *a, **k: [])
    at = page()
    assert not at.exception
    assert any("projection-demo" in i.value for i in at.info)
