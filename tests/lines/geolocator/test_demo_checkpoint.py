"""The committed demo bundle checkpoints/geolocator-demo: self-contained, small, better than
the most-frequent-cell baseline on the demo test split, and usable for prediction."""
import io
import json

import numpy as np
import pytest
from PIL import Image

from workbench.lines.geolocator.predict import DEMO_CHECKPOINT, load_predictor


@pytest.fixture(scope="module")
def demo():
    return load_predictor(DEMO_CHECKPOINT)


def test_bundle_is_complete_and_small():
    for name in ("model.pt", "config.yaml", "partition.csv", "metrics.json", "predictions.parquet"):
        assert (DEMO_CHECKPOINT / name).is_file(), name
    total = sum(p.stat().st_size for p in DEMO_CHECKPOINT.rglob("*") if p.is_file())
    assert total < 6 * 2**20
    import torch

    payload = torch.load(DEMO_CHECKPOINT / "model.pt", weights_only=True)
    # the frozen EfficientNet-Lite0 ships in a package: named, not copied
    assert payload["backbone_weights"] == "offline" and not any(k.startswith("backbone.") for k in payload["model"])


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


def test_the_bundle_is_the_core_format_and_reproduces_its_test_metrics():
    """Loading the shipped bundle and evaluating it on the demo test split gives the numbers
    its metrics.json reports (the bundle is what it says it is)."""
    from workbench.lines.geolocator.pipeline import evaluate_split
    from workbench.lines.geolocator.predict import load_geolocator
    from workbench.train.bundle import BUNDLE_FORMAT, load_bundle, missing_files

    assert missing_files(DEMO_CHECKPOINT) == []
    raw = load_bundle(DEMO_CHECKPOINT, kind="geolocator")
    assert raw["format"] == BUNDLE_FORMAT and set(raw) >= {"config", "model"}
    model, cfg, partition = load_geolocator(DEMO_CHECKPOINT)
    result = evaluate_split(model, cfg, partition, "test")
    saved = json.loads((DEMO_CHECKPOINT / "metrics.json").read_text())["test"]
    assert result["n"] == saved["n"]
    for key, value in saved["model"].items():
        assert result["metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    for key in ("acc@750km", "geoguessr"):
        assert result["most_frequent_cell"][key] == pytest.approx(saved["most_frequent_cell"][key], abs=1e-6)
