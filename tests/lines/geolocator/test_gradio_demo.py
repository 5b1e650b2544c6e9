"""The Gradio demo: the request handler, and the app serving on 127.0.0.1."""
import socket
import urllib.request

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from workbench.lines.geolocator.gradio_demo import build_demo, geolocate_image, launch_demo
from workbench.lines.geolocator.predict import load_predictor


@pytest.fixture(scope="module")
def predictor(tiny_bundle):
    return load_predictor(tiny_bundle)


def test_handler_returns_top_places_and_a_map(predictor, tmp_path):
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.full((64, 80, 3), (40, 40, 200), np.uint8)).save(path)
    places, picture, text = geolocate_image(predictor, str(path), top_k=3)
    assert len(places) == 3 and 0 < sum(places.values()) <= 1 + 1e-6
    assert all("(cell " in label for label in places)
    assert picture.size == (720, 360) and "Predicted:" in text and "latency" in text
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(gr.Error, match=r"could not read '.*bad\.jpg': not an image"):
        geolocate_image(predictor, str(bad))
    with pytest.raises(gr.Error, match="upload a photo"):
        geolocate_image(predictor, None)


def test_app_serves_on_localhost(predictor, monkeypatch):
    assert isinstance(build_demo(predictor), gr.Blocks)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = launch_demo(predictor, port=port, block=False)
    try:
        assert demo.server_name == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=20) as r:
            assert r.status == 200 and b"gradio" in r.read().lower()
    finally:
        demo.close()
