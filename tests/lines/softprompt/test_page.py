"""AppTest of pages/3_Soft_Prompt_Explorer.py with the committed demo checkpoint.

st_folium is a custom component (AppTest cannot click it), so the map widget is
monkeypatched to return a click, exactly the {"lat", "lon"} the real widget returns.
"""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import workbench.ui.map as wmap
from workbench.lines.softprompt import explorer
from workbench.ui.fmt import fmt_km

from tests.lines.softprompt.conftest import write_bundle_folder

REPO_ROOT = Path(__file__).resolve().parents[3]
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
    # probabilities in percent with one decimal, like every fraction in the app
    assert top["weight"].tolist() == [f"{100 * w:.1f}%" for w in weights[:5]]
    assert list(cities.columns) == ["name", "country", "score", "distance", "prompt"]
    assert len(cities) == 5 and all(re.fullmatch(r"-?\d\.\d{3}", v) for v in cities["score"])
    report = explorer.click_report(explorer.load_source(explorer.DEMO_CHECKPOINT), -1.2921, 36.8219)
    assert cities["distance"].tolist() == [fmt_km(c["distance_km"]) for c in report["nearest_cities"]]
    assert all(re.fullmatch(r"[\d,]+ km|\d\.\d km", v) for v in cities["distance"])
    (latency,) = [m for m in at.metric if m.label.startswith("latency")]
    assert float(latency.value.split()[0]) < 1000
    assert any("**Clicked:** 1.2921° S, 36.8219° E" in md.value for md in at.markdown)


def test_metrics_table_reads_in_percent_without_none(click):
    at = page()
    metrics = json.loads((explorer.DEMO_CHECKPOINT / "metrics.json").read_text())
    (table,) = [d.value for d in at.dataframe if "trained" in d.value.columns]
    assert list(table.columns) == ["trained", "untrained", "mean_sequence", "nearest_train_city"]
    assert list(table.index) == list(explorer.HEADLINE_METRICS)
    base = metrics["baselines"]["nearest_train_city"]
    assert table.loc["retrieval_r10", "nearest_train_city"] == f"{100 * base['retrieval_r10']:.1f}%"
    assert table.loc["country_match", "nearest_train_city"] == f"{100 * base['country_match']:.1f}%"
    assert table.loc["retrieval_r1", "trained"] == f"{100 * metrics['held_out']['retrieval_r1']:.1f}%"
    assert table.loc["token_cosine", "trained"] == f"{metrics['held_out']['token_cosine']:.3f}"
    cells = table.to_numpy().ravel().tolist()
    assert "None" not in cells and "nan" not in cells
    assert table.loc["usage_perplexity", "mean_sequence"] == "—"  # a baseline has no mixture
    assert any(c.value.startswith("parameters: trainable 738,624") for c in at.caption)


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
