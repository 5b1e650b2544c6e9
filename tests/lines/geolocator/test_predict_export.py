"""Predicting from a checkpoint (file, bundle, run), the CLI, ONNX parity and the bundle."""
import io
import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from workbench.cli import main
from workbench.errors import InputError, NotFoundError
from workbench.lines.geolocator.predict import load_predictor, resolve_checkpoint


def photo_bytes(colour=(200, 40, 40), size=(300, 200), fmt="JPEG") -> bytes:
    rng = np.random.default_rng(1)
    pixels = np.clip(np.asarray(colour) + rng.normal(0, 20, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()


def test_bundle_files_and_metrics(tiny_bundle):
    for name in ("model.pt", "config.yaml", "README.md", "partition.csv", "metrics.json", "predictions.parquet"):
        assert (tiny_bundle / name).is_file(), name
    metrics = json.loads((tiny_bundle / "metrics.json").read_text())
    assert set(metrics["val"]) == {"n", "model", "oracle", "most_frequent_cell"}
    assert metrics["val"]["n"] == 12 and metrics["predictions_split"] == "val"
    predictions = pd.read_parquet(tiny_bundle / "predictions.parquet")
    assert len(predictions) == 12
    from workbench.embeddings.sets import SetRef, read_set, set_names

    assert set_names(tiny_bundle / "embeddings") == ["features", "logits"]
    features = read_set(SetRef("b", "features", tiny_bundle / "embeddings"))
    assert features.vectors.shape[0] == 12 and features.vectors.shape[1] > 1
    assert features.meta["id"].tolist() == [f"image:{i}" for i in predictions["index"]]  # the same images, in order
    np.testing.assert_allclose(features.meta["lat"], predictions["true_lat"])
    assert metrics["embeddings"] == ["features", "logits"]
    payload = torch.load(tiny_bundle / "model.pt", weights_only=True)
    assert set(payload) == {"format", "kind", "config", "model"}  # no optimiser state: a small file


def test_predict_returns_topk_cells_place_and_latency(tiny_bundle):
    predictor = load_predictor(tiny_bundle)
    assert resolve_checkpoint(tiny_bundle) == tiny_bundle / "model.pt"
    pred = predictor.predict(photo_bytes(), top_k=3)
    assert len(pred.cells) == len(pred.probs) == len(pred.tokens) == len(pred.cell_places) == 3
    assert pred.probs == sorted(pred.probs, reverse=True)
    assert 0 < sum(pred.probs) <= 1 + 1e-6
    assert pred.place and pred.country and pred.latency_ms > 0
    assert (pred.lat, pred.lon) == pytest.approx((pred.cell_lat[0], pred.cell_lon[0]))
    assert np.asarray(pred.polygons).shape == (3, 4, 2)
    everything = predictor.predict(photo_bytes(), top_k=100)
    assert len(everything.probs) == predictor.n_cells and sum(everything.probs) == pytest.approx(1.0, abs=1e-5)
    weighted = predictor.predict(photo_bytes(), top_k=3, location="weighted")
    assert weighted.cells == pred.cells
    with pytest.raises(InputError, match=r"could not read 'upload\.bin': not an image"):
        predictor.predict(b"\x00\x01garbage", name="upload.bin")
    with pytest.raises(InputError, match="top_k"):
        predictor.predict(photo_bytes(), top_k=0)


def test_predict_returns_the_whole_distribution_and_features(tiny_bundle):
    predictor = load_predictor(tiny_bundle)
    pred = predictor.predict(photo_bytes(), top_k=3)
    assert pred.all_probs.shape == (predictor.n_cells,) and pred.all_probs.sum() == pytest.approx(1.0, abs=1e-6)
    order = np.argsort(-pred.all_probs)[:3]
    assert pred.cells == order.tolist() and np.allclose(pred.probs, pred.all_probs[order])
    assert pred.features.shape == (predictor.model.num_features,)
    # the features are the backbone's: the head applied to them gives the same distribution
    with torch.no_grad():
        again = predictor.model.cell_probs(torch.as_tensor(pred.features)[None])[0].double().numpy()
    np.testing.assert_allclose(again, pred.all_probs, atol=1e-6)
    peak = pred.peakedness()
    assert peak["top1"] == pytest.approx(pred.probs[0]) and 0 <= peak["entropy_norm"] <= 1
    out = pred.to_json()
    assert {"all_probs", "features", "polygons"}.isdisjoint(out)
    assert out["confidence"]["top1"] == pytest.approx(pred.probs[0], abs=1e-6)
    assert set(out["confidence"]) == {"top1", "top_mass", "entropy_norm", "effective_cells"}
    json.dumps(out)
    places = predictor.cell_places()
    assert len(places) == predictor.n_cells and places[pred.cells[0]] == pred.cell_places[0]
    files = predictor.embed_files([])
    assert files.shape == (0, predictor.model.num_features)


def test_cli_predict_prints_json(tiny_bundle, tmp_path, capsys):
    image = tmp_path / "photo.png"
    image.write_bytes(photo_bytes(fmt="PNG"))
    assert main(["predict", "--checkpoint", str(tiny_bundle / "model.pt"), "--image", str(image), "--top-k", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["cells"]) == 2 and sum(c["prob"] for c in out["cells"]) <= 1.0
    assert {"token", "prob", "lat", "lon", "place"} <= set(out["cells"][0])
    assert isinstance(out["place"], str) and out["place"]
    assert -90 <= out["lat"] <= 90 and -180 <= out["lon"] <= 180
    assert 0 < out["confidence"]["top1"] <= 1 and 0 <= out["confidence"]["entropy_norm"] <= 1


def test_cli_non_image_is_a_one_line_error(tiny_bundle, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello, I am not a photo\n")
    assert main(["predict", "--checkpoint", str(tiny_bundle), "--image", str(notes)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: could not read")
    assert main(["predict", "--checkpoint", str(tmp_path / "nope.pt"), "--image", str(notes)]) == 2
    assert main(["predict", "--checkpoint", str(tiny_bundle), "--image", str(tmp_path / "x.jpg")]) == 2
    assert "image not found" in capsys.readouterr().err


def test_onnx_agrees_with_torch(tiny_bundle, tmp_path, capsys):
    from workbench.lines.geolocator.export import export_onnx

    report = export_onnx(tiny_bundle, tmp_path / "model.onnx")
    assert all(report["top5_agree"]) and report["max_abs_diff"] < 1e-4
    assert len(report["images"]) >= 4  # the sample photos
    assert main(["export", "onnx", str(tiny_bundle), "--out", str(tmp_path / "cli.onnx")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_cells"] == report["n_cells"] and (tmp_path / "cli.onnx").is_file()


def test_resolve_checkpoint_errors(tmp_path):
    with pytest.raises(NotFoundError, match="no checkpoint"):
        resolve_checkpoint(tmp_path)
    with pytest.raises(NotFoundError, match="checkpoint not found"):
        resolve_checkpoint("no-such-run")


def test_cli_export_checkpoint_and_lr_find(tiny_bundle, tiny_csv, tmp_path, capsys):
    from tests.lines.geolocator.conftest import tiny_config
    from workbench.config import write_yaml

    out = tmp_path / "copy"
    assert main(["export", "checkpoint", str(tiny_bundle), "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["n_cells"] == 6 and "val" in printed and (out / "metrics.json").is_file()
    assert load_predictor(out).predict(photo_bytes()).cells == load_predictor(tiny_bundle).predict(photo_bytes()).cells

    config = tmp_path / "tiny.yaml"
    write_yaml(tiny_config(tiny_csv), config)
    plot = tmp_path / "lr.html"
    assert main(["lr-find", str(config), "model.head=mlp", "--num-iter", "20", "--plot", str(plot)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["steps"] >= 10 and plot.is_file() and plot.stat().st_size > 10_000
    assert result["suggestion"] is None or result["suggestion"] > 0


def test_benchmark_quick_on_the_tiny_model(tiny_bundle):
    from workbench.lines.geolocator.bench import run

    out = run(quick=True, source=tiny_bundle)
    lat = out["predict_latency"]
    assert lat["calls"] == 12 and 0 < lat["p50_ms"] <= lat["p90_ms"] <= lat["max_ms"]
    assert out["evaluation"]["images"] == 12 and out["evaluation"]["images_per_s"] > 0
    json.dumps(out)  # JSON-ready


def test_commands_are_registered():
    from workbench.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["demo", "checkpoints/geolocator-demo", "--port", "7001"])
    assert args.func.__name__ == "cmd_demo" and args.port == 7001
    args = parser.parse_args(["predict", "--image", "x.jpg"])
    assert args.checkpoint is None and args.top_k == 5
    assert parser.parse_args(["export", "onnx"]).source is None
