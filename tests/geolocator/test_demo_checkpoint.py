"""The committed demo bundle checkpoints/geolocator-demo: self-contained, small, better than
the most-frequent-cell baseline on the demo test split, and usable for prediction."""
import io
import json

import numpy as np
import pytest
from PIL import Image

from workbench.geolocator.predict import DEMO_CHECKPOINT, load_predictor


@pytest.fixture(scope="module")
def demo():
    return load_predictor(DEMO_CHECKPOINT)


def test_bundle_is_complete_and_small():
    for name in ("model.pt", "config.yaml", "partition.csv", "metrics.json", "predictions.parquet"):
        assert (DEMO_CHECKPOINT / name).is_file(), name
    total = sum(p.stat().st_size for p in DEMO_CHECKPOINT.iterdir())
    assert total < 25 * 2**20


def test_saved_metrics_beat_the_most_frequent_cell_on_test():
    metrics = json.loads((DEMO_CHECKPOINT / "metrics.json").read_text())
    test = metrics["test"]
    for key in ("acc@750km", "acc@2500km", "geoguessr"):
        assert test["model"][key] > test["most_frequent_cell"][key], key
    assert test["n"] > 250 and metrics["predictions_split"] == "test"


def test_predicts_a_new_image(demo):
    # a picture no test or training step uses: a green-brown gradient with noise
    rng = np.random.default_rng(7)
    pixels = np.clip(np.linspace(30, 160, 96)[None, :, None] + rng.normal(0, 25, (80, 96, 3)), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, "WEBP")
    pred = demo.predict(buffer.getvalue(), top_k=5)
    assert len(pred.probs) == 5 and 0 < sum(pred.probs) <= 1 + 1e-6
    assert isinstance(pred.place, str) and "," in pred.place
    assert demo.n_cells == 54 and demo.cfg.model.backbone == "efficientnet-lite0"
