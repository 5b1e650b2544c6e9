"""AppTest of pages/4_Geolocate.py with the demo checkpoint: test tiles (the default, scored
from their data-set position), sample photos (EXIF GPS, flagged out of distribution),
uploads (explicit, valid or corrupt), a near-uniform answer, and a clicked true location
that can be cleared.

AppTest cannot drive a file uploader or a Leaflet click, so both are injected: the page's
``st.file_uploader`` returns a fake upload, and ``workbench.ui.map.map_widget`` records the
map it is given and returns a click (the browser test clicks and uploads for real)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

import workbench.ui.map as ui_map
from workbench.data.exif import read_exif_gps
from workbench.geo import geoguessr_score, haversine_km
from workbench.lines.geolocator.predict import DEMO_CHECKPOINT, GeoPredictor, load_predictor
from workbench.lines.geolocator.samples import sample_tiles
from workbench.ui.fmt import fmt_km, fmt_latlon, fmt_num, fmt_pct

REPO_ROOT = Path(__file__).resolve().parents[3]
PAGE = str(REPO_ROOT / "pages" / "4_Geolocate.py")
PHOTOS = REPO_ROOT / "assets" / "photos"


class FakeUpload(io.BytesIO):
    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.name, self.type, self.size = name, "application/octet-stream", len(data)


@pytest.fixture(scope="module")
def demo():
    return load_predictor(DEMO_CHECKPOINT)


@pytest.fixture
def maps(monkeypatch):
    """Records every map the page renders; ``maps.click`` is returned for map keys in
    ``maps.click_keys`` (a fresh widget, after "Clear", has no click)."""

    class Recorder(list):
        click = None
        click_keys: set = set()

        def __call__(self, m, key, height=None):
            self.append((key, m))
            return self.click if key in self.click_keys else None

    recorder = Recorder()
    monkeypatch.setattr(ui_map, "map_widget", recorder)
    return recorder


def png(colour, size=(50, 70)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((*size, 3), colour, np.uint8)).save(buffer, "PNG")  # no EXIF
    return buffer.getvalue()


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def texts(at: AppTest) -> list[str]:
    return [e.value for kind in ("caption", "markdown", "info", "warning", "success", "error")
            for e in getattr(at, kind)]


def cells_layer(m):
    return next(c for c in m._children.values() if getattr(c, "layer_name", None) == "cells")


def legends(m) -> str:
    return " ".join(c.html for c in m._children.values() if isinstance(c, (ui_map.ColorLegend, ui_map.PointLegend)))


def assert_readable(at: AppTest) -> None:
    """Short metric values (st.metric cuts long ones), no None / nan anywhere."""
    for label, value in metrics(at).items():
        assert len(value) <= 10, (label, value)
    for text in list(metrics(at).values()) + texts(at):
        assert "None" not in text and "nan" not in text.split(), text


def test_default_test_tile_is_scored_with_every_cell_drawn(runs_dir, demo, maps):
    at = AppTest.from_file(PAGE, default_timeout=300).run()
    assert not at.exception and not at.error
    assert at.selectbox(key="geolocate_model").value == "checkpoint: geolocator-demo"
    assert at.radio(key="geolocate_source").value == "tile"  # in-distribution samples first
    tile = sample_tiles()[0]
    assert at.selectbox(key="geolocate_tile").value == tile.name
    pred = demo.predict(tile.path, top_k=5)
    shown = metrics(at)
    d = float(haversine_km(tile.lat, tile.lon, pred.lat, pred.lon))
    assert shown["Distance"] == fmt_km(d)
    assert shown["GeoGuessr score"] == fmt_num(float(geoguessr_score(d)), 0)
    assert f"True location: {fmt_latlon(tile.lat, tile.lon)}, from the test split's position." in texts(at)
    assert f"**Predicted place:** {pred.place}" in texts(at)
    peak = pred.peakedness()
    assert shown["Top-1 probability"] == fmt_pct(peak["top1"])
    assert shown["Entropy vs uniform"] == fmt_pct(peak["entropy_norm"])
    assert shown["Top-5 mass"] == fmt_pct(peak["top_mass"])
    assert any(s.value.startswith("Not flagged") for s in at.success)  # a peaked, in-distribution tile
    assert_readable(at)

    key, m = maps[-1]
    cells = cells_layer(m).data["features"]
    assert len(cells) == demo.n_cells == 54  # the whole distribution, not the top-k
    assert len({f["properties"]["style"]["fillColor"] for f in cells}) >= 5
    assert "linear scale" in legends(m) and "predicted point" in legends(m) and "true location" in legends(m)
    table = at.dataframe[0].value
    assert table["cell"].tolist() == pred.tokens
    assert table["probability"].to_numpy() == pytest.approx(100 * np.asarray(pred.probs), rel=1e-6)

    at.toggle(key="geolocate_log").set_value(True).run()
    assert not at.exception and "log scale" in legends(maps[-1][1])
    at.slider(key="geolocate_topk").set_value(8).run()
    assert len(at.dataframe[0].value) == 8 and len(cells_layer(maps[-1][1]).data["features"]) == 54


def test_street_photo_is_low_confidence_and_scored_from_exif(runs_dir, demo, maps):
    at = AppTest.from_file(PAGE, default_timeout=300).run()
    at.radio(key="geolocate_source").set_value("photo").run()
    at.selectbox(key="geolocate_photo").set_value("summer_palace_beijing.jpg").run()
    assert not at.exception and not at.error
    data = (PHOTOS / "summer_palace_beijing.jpg").read_bytes()
    pred = demo.predict(data, top_k=5)
    truth = read_exif_gps(data)
    d = float(haversine_km(truth[0], truth[1], pred.lat, pred.lon))
    assert metrics(at)["Distance"] == fmt_km(d)
    assert f"True location: {fmt_latlon(*truth)}, from EXIF GPS." in texts(at)
    assert any("outside the demo model's training distribution" in c for c in texts(at))
    warning = at.warning[0].value
    assert warning.startswith("**Low confidence**") and "out of distribution" in warning
    assert_readable(at)


def test_near_uniform_answer_is_marked_low_confidence(runs_dir, monkeypatch, maps):
    real = GeoPredictor.features_and_probs

    def uniform(self, x):
        feats, probs = real(self, x)
        return feats, torch.full_like(probs, 1.0 / probs.shape[1])

    monkeypatch.setattr(GeoPredictor, "features_and_probs", uniform)
    upload = FakeUpload(png((7, 77, 177)), "flat.png")
    monkeypatch.setattr(st, "file_uploader", lambda *a, **k: upload)
    at = AppTest.from_file(PAGE, default_timeout=300)
    at.session_state["geolocate_source"] = "upload"
    at.run()
    assert not at.exception and not at.error
    shown = metrics(at)
    assert shown["Top-1 probability"] == fmt_pct(1 / 54) and shown["Entropy vs uniform"] == "100.0%"
    warning = at.warning[0].value
    assert warning.startswith("**Low confidence**") and "near uniform" in warning and "54 of 54 cells" in warning
    m = maps[-1][1]
    assert len({f["properties"]["style"]["fillColor"] for f in cells_layer(m).data["features"]}) == 1


def test_upload_is_explicit_and_the_clicked_truth_can_be_cleared(runs_dir, monkeypatch, demo, maps):
    upload = {"file": FakeUpload(b"GIF89a but really nothing", "broken.gif")}
    calls = []
    monkeypatch.setattr(st, "file_uploader", lambda *a, **k: calls.append(1) or upload["file"])
    at = AppTest.from_file(PAGE, default_timeout=300).run()
    # a pending upload does not override the selected sample: the tile is geolocated
    assert not at.exception and not at.error and not calls
    assert any(t.startswith("True location:") and "test split" in t for t in texts(at))

    at.radio(key="geolocate_source").set_value("upload").run()
    assert not at.exception and calls
    assert at.error and "could not read 'broken.gif': not an image" in at.error[0].value
    assert "\n" not in at.error[0].value

    lake = png((30, 90, 160))
    upload["file"] = FakeUpload(lake, "lake.png")
    at.run()
    assert not at.exception and not at.error
    assert any("click the map" in i.value for i in at.info)
    assert "GeoGuessr score" not in metrics(at) and not at.button

    maps.click = {"lat": 51.5, "lon": -0.12}
    maps.click_keys = {maps[-1][0]}  # the map now on the page was clicked
    at.run()  # the click is stored and the page reruns with it as the true location
    shown = metrics(at)
    pred = demo.predict(lake, top_k=5)
    d = float(haversine_km(51.5, -0.12, pred.lat, pred.lon))
    assert shown["Distance"] == fmt_km(d)
    assert shown["GeoGuessr score"] == fmt_num(float(geoguessr_score(d)), 0)
    assert f"True location: {fmt_latlon(51.5, -0.12)}, from map click." in texts(at)
    assert "true location (map click)" in legends(maps[-1][1])

    at.button(key="geolocate_clear").click().run()
    assert not at.exception
    assert "Distance" not in metrics(at) and any("click the map" in i.value for i in at.info)
    assert "true location" not in legends(maps[-1][1]) and not at.button
    assert maps[-1][0] not in maps.click_keys  # a fresh map widget, without the old click


def test_upload_with_invalid_exif_gps_says_so_and_asks_for_a_click(runs_dir, monkeypatch, maps):
    from tests.lines.geolocator.test_geolocate_view import _bad_gps_jpeg

    upload = FakeUpload(_bad_gps_jpeg(), "north_of_the_pole.jpg")
    monkeypatch.setattr(st, "file_uploader", lambda *a, **k: upload)
    at = AppTest.from_file(PAGE, default_timeout=300)
    at.session_state["geolocate_source"] = "upload"
    at.run()
    assert not at.exception and not at.error
    assert any("EXIF GPS is invalid: latitude 95 is outside [-90, 90]" in w.value for w in at.warning)
    assert any("click the map" in i.value for i in at.info) and "Distance" not in metrics(at)
