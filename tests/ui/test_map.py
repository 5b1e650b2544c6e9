"""The offline map factory and its layers: local resources only, right features, clicks."""

from __future__ import annotations

import re

import folium
import folium.plugins
import numpy as np
import pytest
import streamlit_folium

from workbench.errors import InputError, WorkbenchError
from workbench.ui import map as wmap

LOCAL = ["/app/static/leaflet/leaflet.js", "/app/static/jquery/jquery.min.js"]
HEAT_JS = "/app/static/leaflet-heat/leaflet-heat.js"


def _resource_urls(html: str) -> list[str]:
    return re.findall(r'<script[^>]*\bsrc="([^"]*)"', html) + re.findall(r'<link[^>]*\bhref="([^"]*)"', html)


@pytest.fixture
def no_static_build(monkeypatch):
    """map_widget without its one-off build of the repo's static/ (tested on its own below)."""
    monkeypatch.setattr(wmap, "ensure_static_assets", lambda: None)


def _full_map() -> folium.Map:
    m = wmap.make_map()
    wmap.add_points(m, [48.85, 40.71], [2.35, -74.0], popup=["Paris", "NY"], tooltip=["a", "b"])
    cell = np.array([[[0, 0], [0, 10], [10, 10], [10, 0]]], dtype=float)
    wmap.add_polygons(m, cell, [1.0], legend="value")
    wmap.add_heat(m, [1.0, 2.0], [3.0, 4.0])
    wmap.add_density_cells(m, [1.0, 2.0], [3.0, 4.0])
    return m


def test_rendered_html_loads_only_local_scripts_and_styles():
    html = _full_map().get_root().render()
    urls = _resource_urls(html)
    assert urls == LOCAL + [HEAT_JS, "/app/static/leaflet/leaflet.css"]
    # Not one http(s) URL anywhere: no CDN script, stylesheet, font or tile.
    assert re.findall(r"https?://", html) == []
    # The basemap is referenced by URL, not inlined as base64.
    assert '"/app/static/basemap/bluemarble_3857.jpg"' in html
    assert "data:image" not in html
    assert "L.imageOverlay" in html and "85.0511" in html
    assert "L.heatLayer" in html and html.count("L.geoJson(") == 3


def test_make_map_does_not_change_folium_defaults_for_other_maps():
    wmap.make_map()
    assert folium.Map.default_js[0][1].startswith("https://")  # class lists untouched
    assert "https://" in folium.Map().get_root().render()


def test_streamlit_folium_receives_only_local_links(monkeypatch):
    # What the st_folium component is told to load in the browser, captured at its boundary.
    sent = {}

    def component(**kwargs):
        sent.update(kwargs)
        return kwargs["default"]

    monkeypatch.setattr(streamlit_folium, "_component_func", component)
    m = _full_map()
    result = streamlit_folium.st_folium(m, key="k", returned_objects=["last_clicked"])
    assert sent["js_links"] == LOCAL + [HEAT_JS]
    assert sent["css_links"] == ["/app/static/leaflet/leaflet.css"]
    assert re.findall(r"https?://", sent["script"] + sent["header"] + sent["html"]) == []
    assert "/app/static/basemap/bluemarble_3857.jpg" in sent["script"]
    assert result == {"last_clicked": None}


def test_basemap_options():
    osm = wmap.make_map(basemap="osm").get_root().render()
    assert "tile.openstreetmap.org" in osm and "bluemarble" not in osm
    assert _resource_urls(osm) == LOCAL + ["/app/static/leaflet/leaflet.css"]
    none = wmap.make_map(basemap="none").get_root().render()
    assert "imageOverlay" not in none and "tileLayer" not in none
    with pytest.raises(InputError, match=r"'sat'.*bluemarble"):
        wmap.make_map(basemap="sat")
    with pytest.raises(InputError, match="center"):
        wmap.make_map(center=(95, 0))


def test_points_are_one_layer_with_one_feature_per_point():
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-80, 80, 3000), rng.uniform(-180, 180, 3000)
    colors = np.where(lat > 0, "#ff0000", "#0000ff")
    m = wmap.make_map()
    layer = wmap.add_points(m, lat, lon, color=colors, popup=[f"p{i} <b>" for i in range(3000)], radius=3)
    feats = layer.data["features"]
    assert len(feats) == 3000
    np.testing.assert_allclose([f["geometry"]["coordinates"] for f in feats], np.stack([lon, lat], 1))
    assert [f["properties"]["style"]["fillColor"] for f in feats] == colors.tolist()
    assert feats[7]["properties"]["popup"] == "p7 &lt;b&gt;"  # user text is escaped
    html = m.get_root().render()
    assert html.count("L.geoJson(") == 1 and "L.CircleMarker" in html and '"radius": 3' in html


def test_points_reject_bad_input():
    m = wmap.make_map()
    with pytest.raises(InputError, match=r"index 1: lat=91"):
        wmap.add_points(m, [0, 91], [0, 0])
    with pytest.raises(InputError, match="same length"):
        wmap.add_points(m, [0, 1], [0])
    with pytest.raises(InputError, match="color must be one value or 2"):
        wmap.add_points(m, [0, 1], [0, 1], color=["red"])
    with pytest.raises(InputError, match="add_heat"):
        wmap.add_points(m, np.zeros(wmap.MAX_POINTS + 1), np.zeros(wmap.MAX_POINTS + 1))


def test_polygons_coloured_by_value_with_closed_rings():
    # Three 1-degree squares with values 0, 5, 10 and a NaN one, viridis over [0, 10].
    corners = np.array([[0, 0], [0, 1], [1, 1], [1, 0]], dtype=float)
    polys = np.stack([corners + [0, k] for k in range(4)])  # [4, 4, 2] (lat, lon)
    m = wmap.make_map()
    layer = wmap.add_polygons(m, polys, [0.0, 5.0, 10.0, np.nan], colormap="viridis", legend="loss")
    feats = layer.data["features"]
    assert len(feats) == 4
    ring = feats[1]["geometry"]["coordinates"][0]
    assert ring == [[1.0, 0.0], [2.0, 0.0], [2.0, 1.0], [1.0, 1.0], [1.0, 0.0]]  # (lon, lat), closed
    fills = [f["properties"]["style"]["fillColor"] for f in feats]
    assert fills[0] == "#440154" and fills[2] == "#fde725"  # viridis ends
    assert fills[3] == wmap.NAN_COLOR
    assert [f["properties"]["tooltip"] for f in feats] == ["0", "5", "10", ""]
    html = m.get_root().render()
    assert "wb-legend" in html and "loss" in html


def test_polygon_crossing_the_antimeridian_stays_small():
    cell = np.array([[[10, 179.5], [10, -179.5], [11, -179.5], [11, 179.5]]])
    layer = wmap.add_polygons(wmap.make_map(), cell)
    lons = [p[0] for p in layer.data["features"][0]["geometry"]["coordinates"][0]]
    assert max(lons) - min(lons) == pytest.approx(1.0)
    # Without values or tooltips there is nothing to show on hover: no empty tooltip box.
    assert not any(isinstance(c, folium.GeoJsonTooltip) for c in layer._children.values())


def test_empty_layers_render():
    m = wmap.make_map()
    assert wmap.add_points(m, [], [], popup=[]).data["features"] == []
    assert wmap.add_polygons(m, np.zeros((0, 4, 2)), []).data["features"] == []
    assert wmap.add_heat(m, [], []).data == []
    assert "L.geoJson(" in m.get_root().render()


def test_polygons_reject_bad_shapes():
    with pytest.raises(InputError, match=r"\[N, k >= 3, 2\]"):
        wmap.add_polygons(wmap.make_map(), np.zeros((3, 2)))
    with pytest.raises(InputError, match="values must have shape"):
        wmap.add_polygons(wmap.make_map(), np.zeros((2, 4, 2)), [1.0])
    with pytest.raises(InputError, match="colormap 'nope'"):
        wmap.add_polygons(wmap.make_map(), np.zeros((1, 4, 2)), [1.0], colormap="nope")


def test_colors_interpolate_between_stops():
    cmap = wmap._colormap("viridis")
    got = wmap.colors_for_values(np.array([-1.0, 0.0, 0.37, 1.0, 2.0]), cmap, 0.0, 1.0)
    assert got[0] == got[1] == "#440154" and got[3] == got[4] == "#fde725"  # clipped
    # branca's own (scalar) colormap agrees with the vectorised interpolation.
    want = cmap.scale(0.0, 1.0).rgb_hex_str(0.37)
    assert int(got[2][1:3], 16) == pytest.approx(int(want[1:3], 16), abs=1)
    assert int(got[2][3:5], 16) == pytest.approx(int(want[3:5], 16), abs=1)


def test_heat_sums_points_into_bins_before_sending_them():
    lat = [10.21, 10.27, 10.29, -45.11, 0.0]
    lon = [20.11, 20.15, 20.19, -100.22, 0.0]
    layer = wmap.add_heat(wmap.make_map(), lat, lon, weights=[1, 2, 3, 0.5, 0], bin_deg=0.1)
    # One weighted point per non-empty bin, at the bin centre; the zero-weight one is dropped.
    assert sorted(layer.data) == [pytest.approx([-45.15, -100.25, 0.5]), pytest.approx([10.25, 20.15, 6.0])]
    raw = wmap.add_heat(wmap.make_map(), lat, lon, bin_deg=None)
    assert len(raw.data) == 5 and raw.data[0] == pytest.approx([10.21, 20.11, 1.0])
    assert raw.get_bounds() == [[-45.11, -100.22], [10.29, 20.19]]
    assert raw.default_js == [("leaflet-heat.js", HEAT_JS)]
    with pytest.raises(InputError, match="weights must be 5 finite numbers >= 0"):
        wmap.add_heat(wmap.make_map(), lat, lon, weights=[1, 1, 1, 1, -1])


def test_heat_page_size_is_bounded_by_bins_not_points():
    rng = np.random.default_rng(2)
    n = 200_000
    layer = wmap.add_heat(wmap.make_map(), rng.uniform(-10, 10, n), rng.uniform(-10, 10, n), bin_deg=1.0)
    assert len(layer.data) == 400
    assert sum(p[2] for p in layer.data) == pytest.approx(n)


def test_density_cells_bin_points_with_counts():
    lat = [10.2, 10.7, 10.9, -45.1]
    lon = [20.1, 20.5, 20.9, -100.2]
    layer = wmap.add_density_cells(wmap.make_map(), lat, lon, cell_deg=1.0)
    feats = sorted(layer.data["features"], key=lambda f: f["properties"]["tooltip"])
    assert [f["properties"]["tooltip"] for f in feats] == ["count: 1", "count: 3"]
    lons, lats = np.array(feats[1]["geometry"]["coordinates"][0]).T
    assert (lats.min(), lats.max(), lons.min(), lons.max()) == (10.0, 11.0, 20.0, 21.0)

    weighted = wmap.add_density_cells(wmap.make_map(), lat, lon, weights=[1, 2, 3, 0.5], cell_deg=1.0)
    tips = sorted(f["properties"]["tooltip"] for f in weighted.data["features"])
    assert tips == ["weight: 0.5", "weight: 6"]


def test_density_cells_handle_many_points_in_one_layer():
    rng = np.random.default_rng(1)
    n = 200_000  # far beyond MAX_POINTS: the layer has no per-point cost in the page
    lat, lon = rng.uniform(-30, 30, n), rng.uniform(-60, 60, n)
    layer = wmap.add_density_cells(wmap.make_map(), lat, lon, cell_deg=5.0)
    assert len(layer.data["features"]) == 12 * 24
    total = sum(float(f["properties"]["tooltip"].split(": ")[1]) for f in layer.data["features"])
    assert total == pytest.approx(n, rel=1e-3)  # tooltips are rounded to 4 significant digits


def test_normalize_lon():
    np.testing.assert_allclose(
        wmap.normalize_lon(np.array([190.0, -190.0, 540.0, 0.0, 179.5, -180.0, 359.0])),
        [-170.0, 170.0, -180.0, 0.0, 179.5, -180.0, -1.0],
    )
    assert wmap.normalize_lon(200.0) == -160.0 and isinstance(wmap.normalize_lon(200.0), float)


def test_click_from_state():
    assert wmap.click_from_state({"last_clicked": {"lat": 12.5, "lng": 380.0}}) == {"lat": 12.5, "lon": 20.0}
    assert wmap.click_from_state({"last_clicked": None}) is None
    assert wmap.click_from_state(None) is None


def test_map_widget_returns_normalised_click(monkeypatch, no_static_build):
    calls = []

    def fake_st_folium(m, **kwargs):
        calls.append(kwargs)
        return {"last_clicked": {"lat": -33.9, "lng": -208.8}}

    monkeypatch.setattr(streamlit_folium, "st_folium", fake_st_folium)
    click = wmap.map_widget(wmap.make_map(height=420), key="probe")
    assert click == {"lat": -33.9, "lon": pytest.approx(151.2)}
    assert calls[0]["returned_objects"] == ["last_clicked"]  # panning does not rerun the app
    assert calls[0]["key"] == "probe" and calls[0]["height"] == 420


def test_map_widget_builds_missing_static_assets_once(monkeypatch, tmp_path):
    from workbench.data import static_assets

    monkeypatch.setattr(static_assets, "DEFAULT_STATIC_ROOT", tmp_path / "static")
    monkeypatch.setattr(streamlit_folium, "st_folium", lambda m, **kw: {"last_clicked": None})
    wmap.ensure_static_assets.cache_clear()
    try:
        assert wmap.map_widget(wmap.make_map(), key="m") is None
        assert static_assets.static_status(tmp_path / "static")["complete"]
        (tmp_path / "static" / static_assets.LEAFLET_JS).unlink()
        wmap.map_widget(wmap.make_map(), key="m")  # checked once per process, not per rerun
        assert not (tmp_path / "static" / static_assets.LEAFLET_JS).exists()
    finally:
        wmap.ensure_static_assets.cache_clear()


def test_map_widget_refuses_cdn_plugins(monkeypatch, no_static_build):
    def fail(*args, **kwargs):
        pytest.fail("map_widget rendered a map that needs a CDN")

    monkeypatch.setattr(streamlit_folium, "st_folium", fail)
    m = wmap.make_map()
    assert wmap.external_resources(m) == []
    folium.plugins.HeatMap([[0.0, 0.0]]).add_to(m)
    assert any(u.startswith("https://cdn") and "leaflet_heat" in u for u in wmap.external_resources(m))
    with pytest.raises(WorkbenchError, match="add_heat"):
        wmap.map_widget(m, key="x")


def test_color_legend_default_shows_the_range_ends():
    m = wmap.make_map()
    cell = np.array([[[0, 0], [0, 10], [10, 10], [10, 0]]], dtype=float)
    wmap.add_polygons(m, np.concatenate([cell, cell + 20]), [0.25, 2.0], legend="count")
    legend = next(c for c in m._children.values() if isinstance(c, wmap.ColorLegend))
    assert "<span>0.25</span><span>2</span>" in legend.html  # unchanged for the Data / Soft Prompt pages
    assert f"width: {wmap.LEGEND_BAR_PX}px" in legend.html


def test_color_legend_ticks_sit_at_their_values():
    m = wmap.make_map()
    cell = np.array([[[0, 0], [0, 10], [10, 10], [10, 0]]], dtype=float)
    ticks = [(-4.0, "0.01%"), (-2.0, "1.0%"), (0.0, "100.0%")]
    wmap.add_polygons(m, np.concatenate([cell, cell + 20]), [-4.0, 0.0], legend="P(cell)", legend_ticks=ticks)
    legend = next(c for c in m._children.values() if isinstance(c, wmap.ColorLegend))
    lefts = [float(x) for x in re.findall(r"left: ([\d.]+)%", legend.html)]
    shifts = [int(x) for x in re.findall(r"translateX\((-?\d+)%\)", legend.html)]
    assert lefts == [0.0, 50.0, 100.0] and shifts == [0, -50, -100]  # end labels stay inside the bar
    assert ">0.01%<" in legend.html and ">100.0%<" in legend.html and "P(cell)" in legend.html


def test_point_legend_lists_colours_and_escapes_labels():
    m = wmap.make_map()
    legend = wmap.PointLegend([("#e31a1c", "predicted"), ("#2ca02c", "true <b>location</b>")])
    legend.add_to(m)
    assert "background: #e31a1c" in legend.html and "background: #2ca02c" in legend.html
    assert "true &lt;b&gt;location&lt;/b&gt;" in legend.html
    html = m.get_root().render()
    assert "L.control" in html and "topright" in html and wmap.external_resources(m) == []
