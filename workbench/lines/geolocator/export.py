"""Export a trained geolocator: a self-contained checkpoint bundle, or an ONNX model.

``export_bundle(run, out_dir)`` writes what checkpoints/geolocator-demo/ holds, a core
bundle (``workbench.train.bundle``) with the line's artifacts:

| file | content |
| --- | --- |
| ``model.pt`` | {"format", "kind", "config", "model"}: the resolved config and the weights (partition inside) |
| ``config.yaml`` | the same config, readable |
| ``README.md`` | what the model is, how to remake it, its test numbers beside the baselines |
| ``partition.csv`` | the S2 cells (``Partition.save``) |
| ``metrics.json`` | val and test metrics next to the partition's oracle and the most-frequent-cell baseline |
| ``predictions.parquet`` | per-image test predictions (the Errors page reads them) |
| ``embeddings/`` | ``features`` and ``logits`` sets of the same images (the Embeddings page) |

``export_onnx(source, path)`` writes images [B, C, S, S] -> P(cell) [B, K] and checks it with
onnxruntime against torch on sample images (same top-5 cells, probabilities within 1e-4).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.config import to_dict
from workbench.errors import NotFoundError, WorkbenchError
from workbench.io import json_safe
from workbench.paths import ASSETS, REPO_ROOT
from workbench.lines.geolocator.data import in_chans_of
from workbench.train.bundle import save_bundle

SAMPLE_PHOTOS = ASSETS / "photos"


def export_bundle(source: str | Path, out_dir: str | Path, splits: tuple[str, ...] = ("val", "test"),
                  runs_root: str | Path | None = None) -> dict[str, Any]:
    """Write a checkpoint bundle (see module doc) from a run / checkpoint; returns metrics.json."""
    from workbench.lines.geolocator.evaluate import write_embedding_sets
    from workbench.lines.geolocator.pipeline import evaluate_split
    from workbench.lines.geolocator.predict import load_geolocator, resolve_checkpoint

    ckpt = resolve_checkpoint(source, runs_root)
    model, cfg, partition = load_geolocator(ckpt, runs_root=runs_root)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    in_run = ckpt.parent.name == "checkpoints"
    summary: dict[str, Any] = {
        "source": f"run {ckpt.parent.parent.name}, {ckpt.name}" if in_run else ckpt.name,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"), "n_cells": len(partition), "csv": cfg.data.csv,
        "note": "model = the bundled weights; oracle = every image predicted as its own cell's centroid "
                "(nearest kept centroid outside every cell); most_frequent_cell = always the centroid of "
                "the cell with the most training images"}
    available = [s for s in splits if s in _splits_of(cfg)]
    for split in available:
        held_out = split == available[-1]
        result = evaluate_split(model, cfg, partition, split, keep_embeddings=held_out)
        summary[split] = {"n": result["n"], "model": result["metrics"], "oracle": result["oracle"],
                          "most_frequent_cell": result["most_frequent_cell"]}
        if held_out:  # the held-out split (test when there is one) feeds the Errors and Embeddings pages
            frame = result["predictions"]
            if "path" in frame.columns:  # a bundle travels: image paths relative to the repo when inside it
                frame["path"] = [_repo_relative(p) for p in frame["path"]]
            frame.to_parquet(out / "predictions.parquet", index=False)
            summary["predictions_split"] = split
            summary["embeddings"] = write_embedding_sets(out / "embeddings", result["raw"], frame, split)
    summary = json_safe(summary)
    state, extra = slim_state(model, cfg)
    save_bundle(out, to_dict(cfg), state, summary, bundle_readme(out.name, cfg, summary), **extra)
    partition.save(out / "partition.csv")
    return summary


def slim_state(model, cfg) -> tuple[dict, dict]:
    """(state dict, bundle extras): without the backbone when it is the offline package's
    weights, untouched (frozen for the whole run and equal to a fresh offline copy, tensor by
    tensor): the bundle then names them (``backbone_weights: offline``) instead of copying
    them, and ``predict._load`` rebuilds them from the package."""
    from workbench.lines.geolocator.models import build_classifier

    state = model.state_dict()
    m = cfg.model
    if m.weights != "offline" or not (m.freeze_epochs == -1 or m.freeze_epochs >= cfg.train.max_epochs):
        return state, {}
    fresh, _ = build_classifier(m, model.labels, in_chans_of(cfg.data))
    ref = fresh.state_dict()
    backbone = [k for k in state if k.startswith("backbone.")]
    if not backbone or any(k not in ref or not torch.equal(state[k].cpu(), ref[k]) for k in backbone):
        return state, {}
    return {k: v for k, v in state.items() if not k.startswith("backbone.")}, {"backbone_weights": "offline"}


def bundle_embeddings(bundle: str | Path, runs_root: str | Path | None = None) -> dict[str, Any]:
    """(Re)write ``embeddings/`` of a bundle from its own weights and its predictions split
    (metrics.json ``predictions_split``), leaving every other file as it is. The fresh
    predictions must equal the bundle's predictions.parquet (the same weights and data)."""
    import json

    import pandas as pd

    from workbench.lines.geolocator.evaluate import write_embedding_sets
    from workbench.lines.geolocator.pipeline import evaluate_split
    from workbench.lines.geolocator.predict import load_geolocator

    bundle = Path(bundle)
    for need in ("model.pt", "metrics.json", "predictions.parquet"):
        if not (bundle / need).is_file():
            raise NotFoundError(f"{bundle / need} not found: {bundle} is not a geolocator bundle")
    split = json.loads((bundle / "metrics.json").read_text()).get("predictions_split", "val")
    model, cfg, partition = load_geolocator(bundle / "model.pt", runs_root=runs_root)
    result = evaluate_split(model, cfg, partition, split, keep_embeddings=True)
    frame = result["predictions"]
    if "path" in frame.columns:
        frame["path"] = [_repo_relative(p) for p in frame["path"]]
    saved = pd.read_parquet(bundle / "predictions.parquet")
    if len(saved) != len(frame) or not np.array_equal(saved["pred_cell"].to_numpy(), frame["pred_cell"].to_numpy()):
        raise WorkbenchError(f"the predictions of {bundle} on its {split} split differ from its predictions.parquet: "
                             "the data or the weights changed; export the bundle again instead")
    sets = write_embedding_sets(bundle / "embeddings", result["raw"], frame, split)
    return {"bundle": str(bundle), "split": split, "n": int(len(frame)), "sets": sets}


def bundle_readme(name: str, cfg, summary: dict[str, Any]) -> str:
    """README.md of a geolocator bundle, its numbers read from ``summary`` (metrics.json)."""
    split = summary.get("predictions_split") or "val"
    block = summary.get(split) or {}
    keys = ("acc@200km", "acc@750km", "acc@2500km", "geoguessr", "median_km")
    rows = [("model", block.get("model") or {}), ("oracle (own cell's centroid)", block.get("oracle") or {}),
            ("most-frequent cell", block.get("most_frequent_cell") or {})]

    def cell(row: dict, key: str) -> str:
        value = row.get(key)
        if value is None:
            return "-"
        return f"{value:,.0f}" if key in ("geoguessr", "median_km") else f"{value:.3f}"

    model, base = rows[0][1], rows[2][1]
    lower = ("median_km",)
    wins = [k for k in keys if model.get(k) is not None and base.get(k) is not None
            and ((base[k] < model[k]) if k in lower else (base[k] > model[k]))]
    m = cfg.model
    return "\n".join([
        f"# {name}",
        "",
        f"A geolocation classifier: {m.backbone} ({m.weights} weights) -> {m.head} head over "
        f"{summary.get('n_cells', '?')} adaptive S2 cells built on the training split of `{cfg.data.csv}` "
        f"({cfg.data.image_size} px inputs, labels {cfg.labels.mode}, smoothing {cfg.labels.smoothing_km:g} km). "
        "The Geolocate and Errors pages, `predict`, `export onnx` and `demo` load it.",
        "",
        "Remake it:",
        "",
        "    python -m workbench data build-demo --only geo-patches",
        f"    python -m workbench train {cfg.name if cfg.name.endswith('-demo') else 'CONFIG'}",
        f"    python -m workbench export checkpoint RUN_ID --out checkpoints/{name}",
        "",
        "| file | content |",
        "| --- | --- |",
        "| `model.pt` | the core bundle: config and weights with the partition inside (`torch.load(weights_only=True)`); a backbone frozen at its offline package weights is named (`backbone_weights: offline`), not copied |",
        "| `config.yaml` | the resolved run config |",
        "| `partition.csv` | the S2 cells (`Partition.load`) |",
        "| `metrics.json` | val and test: model vs the partition's oracle vs the most-frequent-cell baseline |",
        "| `predictions.parquet` | per-image predictions of the held-out split (the Errors page) |",
        "| `embeddings/` | backbone features and logits of the same images (`features`, `logits`: the Embeddings page) |",
        "",
        f"{split} split ({block.get('n', '?')} images):",
        "",
        "| | " + " | ".join(keys) + " |",
        "| --- |" + " --- |" * len(keys),
        *[f"| {label} | " + " | ".join(cell(row, k) for k in keys) + " |" for label, row in rows],
        "",
        ("The most-frequent-cell baseline beats the model on: " + ", ".join(wins) + "."
         if wins else "The model beats the most-frequent-cell baseline on every metric above."),
        "The oracle is not a baseline but the partition's ceiling: every image at its own cell's centroid.",
    ])


def _repo_relative(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _splits_of(cfg) -> list[str]:
    import pandas as pd

    try:
        return sorted(pd.read_csv(cfg.data.csv, usecols=["split"], dtype=str)["split"].unique())
    except (ValueError, FileNotFoundError):
        raise NotFoundError(f"cannot evaluate: the data CSV {cfg.data.csv} is missing or has no split "
                            "column; build it with: python -m workbench data build-demo") from None


def sample_inputs(predictor, images: list[Path] | None = None) -> tuple[torch.Tensor, list[str]]:
    """Network inputs [N, C, S, S] of sample photos (assets/photos by default)."""
    suffixes = (".jpg", ".jpeg", ".png", ".webp")
    paths = images or sorted(p for p in SAMPLE_PHOTOS.glob("*") if p.suffix.lower() in suffixes)
    if not paths:
        raise NotFoundError(f"no sample images in {SAMPLE_PHOTOS}; pass images explicitly")
    x = torch.cat([predictor.preprocess(predictor.load(p)) for p in paths])
    return x, [Path(p).name for p in paths]


def export_onnx(source: str | Path | None, path: str | Path, opset: int = 17,
                images: list[Path] | None = None, runs_root: str | Path | None = None) -> dict[str, Any]:
    """Export images -> cell probabilities to ONNX and verify it with onnxruntime.

    Returns {"path", "n_cells", "input_shape", "opset", "images", "top5_agree" (bool per
    image), "max_abs_diff"}. Raises WorkbenchError if onnxruntime disagrees with torch.
    """
    import onnxruntime as ort

    from workbench.lines.geolocator.models import CellProbabilities
    from workbench.lines.geolocator.predict import load_predictor

    predictor = load_predictor(source, runs_root=runs_root)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = CellProbabilities(predictor.model).eval()
    x, names = sample_inputs(predictor, images)
    try:
        torch.onnx.export(wrapper, (x[:1],), str(path), dynamo=False, opset_version=opset,
                          input_names=["images"], output_names=["cell_probs"],
                          dynamic_axes={"images": {0: "batch"}, "cell_probs": {0: "batch"}})
    except Exception as exc:  # an operator the exporter does not support, ...
        raise WorkbenchError(f"ONNX export failed: {str(exc).splitlines()[0]}") from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_probs = session.run(None, {"images": x.numpy()})[0]
    with torch.no_grad():
        torch_probs = wrapper(x).numpy()
    k = min(5, torch_probs.shape[1])
    top_t = np.argsort(-torch_probs, axis=1)[:, :k]
    top_o = np.argsort(-onnx_probs, axis=1)[:, :k]
    agree = (top_t == top_o).all(1)
    diff = float(np.abs(onnx_probs - torch_probs).max())
    report = {"path": str(path), "n_cells": int(torch_probs.shape[1]), "input_shape": list(x.shape[1:]),
              "opset": opset, "images": names, "top5_agree": agree.tolist(), "max_abs_diff": diff,
              "source": predictor.source}
    if not agree.all() or diff > 1e-4:
        raise WorkbenchError(f"onnxruntime disagrees with torch (top-5 equal: {agree.tolist()}, max |diff| "
                             f"{diff:.2e}); the ONNX file at {path} should not be used")
    return report
