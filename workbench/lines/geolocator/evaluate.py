"""Evaluation of a geolocation classifier: distances, GeoGuessr score, cell accuracy, F1.

Metrics (keys of ``geolocation_metrics``; fractions in [0, 1], km, points):
``acc@1km`` .. ``acc@2500km`` (d <= t), ``geoguessr`` (mean 5000 exp(-d / 1492.7)),
``median_km``, ``mean_km``, ``cell_top1`` / ``cell_top5`` (true cell among the top 1 / 5),
``macro_f1`` (over the classes present in the truth or the predictions, like scikit-learn).
The predicted location is the top cell's centroid (``location="top1"``) or the
probability-weighted spherical mean of the top-k centroids (``"weighted"``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from workbench.errors import InputError
from workbench.geo import (
    DEFAULT_THRESHOLDS_KM,
    Partition,
    error_summary,
    haversine_km,
    latlon_to_xyz,
    xyz_to_latlon,
)
from workbench.runs import progress

LOCATION_MODES = ("top1", "weighted")


def predicted_location(top_idx: np.ndarray, top_prob: np.ndarray, centroids: np.ndarray,
                       mode: str = "top1", k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) [B] degrees from the top cells.

    top_idx, top_prob: [B, k'] cells and probabilities, best first; centroids [K, 2] degrees.
    "top1": the best cell's centroid. "weighted": the mean of the first k centroids' unit
    vectors weighted by their probabilities, projected back onto the sphere (so a split
    between two neighbouring cells lands between them, never inside the Earth).
    """
    if mode not in LOCATION_MODES:
        raise InputError(f"location mode {mode!r} is not valid. Choose one of {list(LOCATION_MODES)}")
    if mode == "top1" or k <= 1:
        best = centroids[top_idx[:, 0]]
        return best[:, 0], best[:, 1]
    idx, w = top_idx[:, :k], top_prob[:, :k].astype(np.float64)
    xyz = latlon_to_xyz(centroids[idx, 0], centroids[idx, 1])  # [B, k, 3]
    mean = (xyz * w[..., None]).sum(1)  # [B, 3]
    # antipodal ties cancel to ~0: fall back to the best cell there
    degenerate = np.linalg.norm(mean, axis=1) < 1e-9
    mean[degenerate] = xyz[degenerate, 0]
    return xyz_to_latlon(mean)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Macro-averaged F1 over the classes that occur in y_true or y_pred ([N] ints in
    [0, n_classes)); equals sklearn's ``f1_score(average="macro")``."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    if y_true.size == 0:
        raise InputError("macro_f1 needs at least one sample")
    tp = np.bincount(y_true[y_true == y_pred], minlength=n_classes).astype(np.float64)
    n_true = np.bincount(y_true, minlength=n_classes)
    n_pred = np.bincount(y_pred, minlength=n_classes)
    present = (n_true + n_pred) > 0
    denom = (n_true + n_pred)[present]
    return float(np.mean(2.0 * tp[present] / denom))


def geolocation_metrics(true_latlon: np.ndarray, pred_latlon: np.ndarray, y_true: np.ndarray,
                        top_idx: np.ndarray, n_classes: int,
                        thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS_KM) -> dict[str, float]:
    """All headline numbers. true_latlon, pred_latlon [N, 2] degrees; y_true [N] true cell
    (or -1 where none); top_idx [N, k] predicted cells, best first."""
    d = haversine_km(true_latlon[:, 0], true_latlon[:, 1], pred_latlon[:, 0], pred_latlon[:, 1])
    out: dict[str, float] = {k: float(v) for k, v in error_summary(d, thresholds).items() if k != "n"}
    out["cell_top1"] = float(np.mean(top_idx[:, 0] == y_true))
    out["cell_top5"] = float(np.mean((top_idx[:, :5] == y_true[:, None]).any(1)))
    known = y_true >= 0
    out["macro_f1"] = macro_f1(y_true[known], top_idx[known, 0], n_classes) if known.any() else float("nan")
    return out


@torch.no_grad()
def predict_loader(model, loader, top_k: int = 5, device: torch.device | None = None,
                   keep_embeddings: bool = False) -> dict[str, Any]:
    """Run the classifier over a loader of {"image", "label", "latlon", "index"} batches.

    Returns numpy arrays: index [N], label [N], latlon [N, 2], top_idx / top_prob [N, k]
    (k = min(top_k, K)), plus "loss" (mean label-space loss) and "n"; with
    ``keep_embeddings`` also "features" [N, D] (the backbone's) and "logits" [N, n_outputs].
    """
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    keys = ("index", "label", "latlon", "top_idx", "top_prob") + (("features", "logits") if keep_embeddings else ())
    parts: dict[str, list] = {k: [] for k in keys}
    loss_sum, n = 0.0, 0
    k = min(top_k, model.labels.n_cells)
    total = len(loader.dataset) if hasattr(loader.dataset, "__len__") else None
    seen = 0
    for batch in loader:
        seen += loader.batch_size or int(batch["label"].shape[0])  # failed images count as seen
        progress.advance(min(seen, total) if total else seen, total)  # a job's counters; else no-op
        if batch["label"].shape[0] == 0:
            continue
        x = batch["image"].to(device)
        labels, latlon = batch["label"].to(device), batch["latlon"].to(device)
        features = model.features(x)
        logits = model.head(features)
        loss_sum += float(model.labels.loss(logits, labels, latlon)) * len(labels)
        n += len(labels)
        prob, idx = model.labels.cell_log_probs(logits).exp().topk(k, dim=1)
        for key, value in (("index", batch["index"]), ("label", labels), ("latlon", latlon),
                           ("top_idx", idx), ("top_prob", prob)):
            parts[key].append(value.cpu())
        if keep_embeddings:
            parts["features"].append(features.float().cpu())
            parts["logits"].append(logits.float().cpu())
    model.train(was_training)
    if n == 0:
        raise InputError("no image of the evaluation set could be loaded")
    out = {key: torch.cat(v).numpy() for key, v in parts.items()}
    out["loss"], out["n"] = loss_sum / n, n
    return out


def evaluate_predictions(pred: dict[str, Any], centroids: np.ndarray, location: str = "top1",
                         weighted_k: int = 5) -> tuple[dict[str, float], np.ndarray]:
    """(metrics, predicted lat/lon [N, 2]) from ``predict_loader``'s output."""
    lat, lon = predicted_location(pred["top_idx"], pred["top_prob"], centroids, location, weighted_k)
    pred_latlon = np.stack([lat, lon], 1)
    metrics = geolocation_metrics(pred["latlon"], pred_latlon, pred["label"], pred["top_idx"],
                                  len(centroids))
    return {"loss": float(pred["loss"]), **metrics}, pred_latlon


def predictions_frame(pred: dict[str, Any], pred_latlon: np.ndarray, partition: Partition,
                      frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per sample, for the error pages (saved as artifacts/predictions.parquet).

    Columns: index (row of the evaluated dataset), path / place (when ``frame`` has them),
    true_lat, true_lon, pred_lat, pred_lon, distance_km, true_cell / pred_cell (class
    index), true_token / pred_token (S2 tokens), correct, topk_cells (list of class
    indices), topk_tokens, topk_probs (lists, best first).
    """
    tokens = partition.cells["token"].to_numpy()
    true, guess = pred["latlon"], pred_latlon
    out = pd.DataFrame({
        "index": pred["index"].astype(np.int64),
        "true_lat": true[:, 0], "true_lon": true[:, 1],
        "pred_lat": guess[:, 0], "pred_lon": guess[:, 1],
        "distance_km": haversine_km(true[:, 0], true[:, 1], guess[:, 0], guess[:, 1]),
        "true_cell": pred["label"].astype(np.int64),
        "pred_cell": pred["top_idx"][:, 0].astype(np.int64),
    })
    out["true_token"] = np.where(out["true_cell"] >= 0, tokens[out["true_cell"].clip(lower=0)], "")
    out["pred_token"] = tokens[out["pred_cell"]]
    out["correct"] = out["true_cell"] == out["pred_cell"]
    out["topk_cells"] = list(pred["top_idx"].astype(np.int64))
    out["topk_tokens"] = list(tokens[pred["top_idx"]])
    out["topk_probs"] = list(pred["top_prob"].astype(np.float64))
    if frame is not None:
        rows = frame.reset_index(drop=True).iloc[out["index"].to_numpy()]
        for col in ("path", "place", "country"):
            if col in rows.columns:
                out[col] = rows[col].to_numpy()
    return out


def most_frequent_cell_baseline(partition: Partition, lat: np.ndarray, lon: np.ndarray,
                                thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS_KM) -> dict[str, Any]:
    """Scores of always predicting the centroid of the cell with the most training images."""
    best = int(np.argmax(partition.cells["count"].to_numpy()))
    c_lat, c_lon = partition.centroids()
    d = haversine_km(np.asarray(lat, np.float64), np.asarray(lon, np.float64), c_lat[best], c_lon[best])
    return {**error_summary(d, thresholds), "cell": str(partition.cells["token"].iloc[best])}


def embedding_sets(pred: dict[str, Any], frame, split: str) -> dict[str, tuple[np.ndarray, Any]]:
    """The embeddings artifact's sets of one split (``workbench.embeddings.sets``):
    ``features`` (backbone [N, D]) and ``logits`` ([N, n_outputs]), one row per image with
    its true place and the prediction (``frame``: ``predictions_frame``'s rows, same order)."""
    import pandas as pd

    meta = pd.DataFrame({
        "id": [f"image:{int(i)}" for i in frame["index"]], "modality": "image",
        "group": [str(int(i)) for i in frame["index"]], "split": split,
        "lat": frame["true_lat"].to_numpy(np.float64), "lon": frame["true_lon"].to_numpy(np.float64),
        "country": frame.get("country", ""), "place": frame.get("place", ""),
        "cell": frame["true_token"].astype(str), "pred_cell": frame["pred_token"].astype(str),
        "correct": frame["correct"].to_numpy(), "distance_km": frame["distance_km"].to_numpy(np.float64),
        "path": frame.get("path", "")})
    return {"features": (pred["features"], meta), "logits": (pred["logits"], meta)}


def write_embedding_sets(folder, pred: dict[str, Any], frame, split: str, dtype: str = "float16") -> list[str]:
    from workbench.embeddings.sets import write_set

    sets = embedding_sets(pred, frame, split)
    for name, (vectors, meta) in sets.items():
        write_set(folder, name, vectors, meta, dtype)  # float16: half the size, plenty for maps of the space
    return list(sets)
