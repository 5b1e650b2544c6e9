"""AppTest of pages/3_Soft_Prompt_Explorer.py with the committed demo checkpoint.

st_folium is a custom component (AppTest cannot click it), so the map widget is
monkeypatched to return a click, exactly the {"lat", "lon"} the real widget returns.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import workbench.ui.map as wmap
from workbench.softprompt import explorer

from tests.softprompt.conftest import write_bundle_folder

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGE = str(REPO_ROOT / "pages" / "3_Soft_Prompt_Explorer.py")
K = 64


@pytest.fixture
def click(monkeypatch, runs_dir):
    """Set ``click["value"]`` to what the map widget returns on the next run."""
    state = {"value": None}
    monkeypatch.setattr(wmap, "map_widget", lambda m, key, height=None: state["value"])
    return state


def page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=60).run()


def values(v) -> list:
    """Plotly sends numpy arrays as typed arrays ({"dtype", "bdata"})."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).tolist()
    return list(v)


def bars(at: AppTest) -> list[list[float]]:
    return [values(json.loads(c.proto.spec)["data"][0]["y"]) for c in at.get("plotly_chart")]


def test_first_launch_shows_the_demo_and_asks_for_a_click(click):
    at = page()
    assert not at.exception
    assert at.title[0].value == "Soft-Prompt Explorer"
    assert at.selectbox(key="sp_model").value == "checkpoint: softprompt-demo"
    assert any("Click anywhere" in i.value for i in at.info)
    assert not at.get("plotly_chart")


def test_a_click_shows_k_bars_top_entries_cities_and_latency(click):
    click["value"] = {"lat": -1.2921, "lon": 36.8219}  # Nairobi
    at = page()
    assert not at.exception
    (weights,) = bars(at)
    assert len(weights) == K and sum(weights) == pytest.approx(1.0, abs=1e-4)
    assert weights == sorted(weights, reverse=True)  # sorted bars
    top, cities = [d.value for d in at.dataframe][:2]
    assert len(top) == 5 and list(top.columns) == ["entry", "weight", "nearest prompts"]
    assert top["weight"].tolist() == pytest.approx(weights[:5], abs=1e-4)
    assert len(cities) == 5 and {"name", "country", "score", "distance_km"} <= set(cities.columns)
    (latency,) = [m for m in at.metric if m.label.startswith("latency")]
    assert float(latency.value.split()[0]) < 1000
    assert any("lat -1.2921, lon 36.8219" in md.value for md in at.markdown)


def test_side_by_side_with_a_model_without_mixture(click, monkeypatch, tmp_path):
    folder = tmp_path / "direct"
    folder.mkdir()
    write_bundle_folder(folder, arch="direct")
    sources = explorer.list_sources() + [explorer.Source("checkpoint: direct", "checkpoint", folder)]
    monkeypatch.setattr(explorer, "list_sources", lambda *a, **k: sources)
    click["value"] = {"lat": 40.4168, "lon": -3.7038}
    at = page()
    at.selectbox(key="sp_compare").set_value("checkpoint: direct").run()
    assert not at.exception
    assert [h.value for h in at.subheader] == ["checkpoint: softprompt-demo", "checkpoint: direct"]
    assert len(bars(at)) == 1  # only the dictionary model has mixture weights
    assert any("has no dictionary" in i.value for i in at.info)
    assert len([m for m in at.metric if m.label.startswith("latency")]) == 2


def test_atlas_layer_colours_the_grid_by_dominant_entry(click, monkeypatch):
    drawn = {}
    real = wmap.add_polygons
    monkeypatch.setattr(wmap, "add_polygons", lambda m, polygons, values=None, **kw: drawn.update(
        polygons=polygons, values=values, **kw) or real(m, polygons, values, **kw))
    at = page()
    at.toggle(key="sp_atlas").set_value(True).run()
    assert not at.exception
    assert drawn["polygons"].shape == (34 * 72, 4, 2)  # 5-degree cells over +-85 deg
    assert drawn["values"].min() >= 0 and drawn["values"].max() < K and (drawn["vmin"], drawn["vmax"]) == (0, K - 1)
    assert drawn["tooltips"][0].startswith("entry ")
    assert any("entries dominate somewhere" in c.value for c in at.caption)


def test_no_model_explains_how_to_make_one(click, monkeypatch):
    monkeypatch.setattr(explorer, "list_sources", lambda *a, **k: [])
    at = page()
    assert not at.exception
    assert "export-demo" in at.info[0].value
