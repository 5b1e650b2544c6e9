"""AppTest of pages/4_Geolocate.py with the demo checkpoint: sample photos with EXIF GPS,
uploads (valid, corrupt), and a map click as the true location.

AppTest cannot drive a file uploader or a Leaflet click, so both are injected: the page's
``st.file_uploader`` returns a fake upload, and ``workbench.ui.map.map_widget`` returns a
click (the browser test clicks for real)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from workbench.data.exif import read_exif_gps
from workbench.geo import geoguessr_score, haversine_km
from workbench.geolocator.predict import DEMO_CHECKPOINT, load_predictor

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGE = str(REPO_ROOT / "pages" / "4_Geolocate.py")
PHOTOS = REPO_ROOT / "assets" / "photos"


class FakeUpload(io.BytesIO):
    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.name, self.type, self.size = name, "application/octet-stream", len(data)


@pytest.fixture(scope="module")
def demo():
    return load_predictor(DEMO_CHECKPOINT)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_sample_photo_with_exif_gps_is_scored(runs_dir, demo):
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception and not at.error
    assert at.selectbox(key="geolocate_model").value == "checkpoint: geolocator-demo"
    photo = at.selectbox(key="geolocate_sample").value
    data = (PHOTOS / photo).read_bytes()
    pred = demo.predict(data, top_k=5)
    shown = metrics(at)
    assert shown["Predicted place"] == pred.place
    truth = read_exif_gps(data)
    d = float(haversine_km(truth[0], truth[1], pred.lat, pred.lon))
    assert shown["Distance"] == f"{d:,.0f} km"
    assert shown["GeoGuessr score"] == f"{float(geoguessr_score(d)):,.0f}"
    cells = at.dataframe[0].value
    assert cells["cell"].tolist() == pred.tokens
    assert cells["probability"].to_numpy() == pytest.approx(pred.probs, rel=1e-6)

    at.slider(key="geolocate_topk").set_value(8).run()
    assert len(at.dataframe[0].value) == 8
    at.selectbox(key="geolocate_sample").set_value("summer_palace_beijing.jpg").run()
    assert not at.exception
    assert metrics(at)["True location"] == "40.00, 116.27"


def test_uploads_corrupt_and_clicked_truth(runs_dir, monkeypatch, demo):
    buffer = io.BytesIO()
    Image.fromarray(np.full((50, 70, 3), (30, 90, 160), np.uint8)).save(buffer, "PNG")  # no EXIF
    upload = {"file": FakeUpload(b"GIF89a but really nothing", "broken.gif")}
    monkeypatch.setattr(st, "file_uploader", lambda *a, **k: upload["file"])
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception
    assert at.error and "could not read broken.gif as an image" in at.error[0].value
    assert "\n" not in at.error[0].value

    upload["file"] = FakeUpload(buffer.getvalue(), "lake.png")
    at.run()
    assert not at.exception and not at.error
    assert any("click the map" in i.value for i in at.info)
    assert "GeoGuessr score" not in metrics(at)

    import workbench.ui.map as ui_map

    monkeypatch.setattr(ui_map, "map_widget", lambda m, key, height=None: {"lat": 51.5, "lon": -0.12})
    at.run()  # the click is stored and the page reruns with it as the true location
    at.run()
    shown = metrics(at)
    pred = demo.predict(buffer.getvalue(), top_k=5)
    d = float(haversine_km(51.5, -0.12, pred.lat, pred.lon))
    assert shown["Distance"] == f"{d:,.0f} km"
    assert shown["GeoGuessr score"] == f"{float(geoguessr_score(d)):,.0f}"
    assert shown["True location"] == "51.50, -0.12"
