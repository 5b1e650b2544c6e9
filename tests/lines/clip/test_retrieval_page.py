"""The Retrieval page (pages/6_Retrieval.py) serves the CLIP demo beside the projection demo:
both are preselected and answer the same caption and the same test image side by side.
AppTest with the committed bundles (st_folium is a custom component: the map widget is
monkeypatched and the points put on the map are captured)."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import workbench.ui.map as wmap
from workbench.contrastive import serving
from workbench.lines.clip import bundle as clip_bundle
from workbench.lines.projection import ui

REPO_ROOT = Path(__file__).resolve().parents[3]
PAGE = str(REPO_ROOT / "pages" / "6_Retrieval.py")
BOTH = ["checkpoint: projection-demo", "checkpoint: clip-demo"]


@pytest.fixture
def maps(monkeypatch, runs_dir):
    drawn = []
    real_add_points = wmap.add_points

    def add_points(m, lat, lon, **kw):
        drawn.append((kw.get("name"), list(lat), list(lon)))
        return real_add_points(m, lat, lon, **kw)

    monkeypatch.setattr(wmap, "add_points", add_points)
    monkeypatch.setattr(wmap, "map_widget", lambda m, key, height=None: None)
    return drawn


def frames(at: AppTest, column: str) -> list:
    return [df.value for df in at.dataframe if column in df.value.columns]


def test_both_demos_answer_the_same_caption_side_by_side(maps):
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception, at.exception
    assert at.multiselect(key="rt_models").value == BOTH
    projection, clip = frames(at, "place")[:2]
    assert len(projection) == len(clip) == 8
    assert clip["score"].is_monotonic_decreasing
    # the CLIP table is the CLIP model's own answer to the page's query
    lc = clip_bundle.load_clip(clip_bundle.DEMO)
    want = serving.images_for_query(lc, lc.encode_query(ui.DEFAULT_QUERY), 8)
    assert clip["image_id"].tolist() == want["image_id"].tolist()
    names = [name for name, _, _ in maps]
    assert names == [f"{label}: retrieved images" for label in BOTH]  # one map, a colour per model
    assert all(len(lat) == 8 for _, lat, _ in maps)
    metrics = frames(at, "heads")[0]
    assert set(metrics[metrics["model"] == "checkpoint: clip-demo"]["heads"]) == {"trained", "untrained", "chance"}


def test_a_test_image_gets_each_models_captions_for_the_same_tile(maps):
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    at.selectbox(key="rt_image").set_value(5).run()
    assert not at.exception, at.exception
    projection_captions, clip_captions = frames(at, "correct")[:2]
    lc = clip_bundle.load_clip(clip_bundle.DEMO)
    from workbench.lines.projection import bundle as projection_bundle

    lp = projection_bundle.load_projection(projection_bundle.DEMO)
    picked = lp.images.iloc[5]
    row = ui.same_image(lc, picked)
    assert row is not None and lc.images.iloc[row]["path"] == picked["path"]  # the same tile
    assert clip_captions["caption"].tolist() == serving.captions_for_image(lc, row, 5)["caption"].tolist()
    assert projection_captions["caption"].tolist() == serving.captions_for_image(lp, 5, 5)["caption"].tolist()


def test_clip_alone_answers_with_its_own_tokenizer(maps):
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    at.multiselect(key="rt_models").set_value(["checkpoint: clip-demo"]).run()
    at.text_input(key="rt_query").set_value("open ocean far from any coast").run()
    assert not at.exception, at.exception
    assert "own tokenizer and text tower" in at.text_input(key="rt_query").label
    assert len(frames(at, "place")) == 1 and len(frames(at, "correct")) == 1
