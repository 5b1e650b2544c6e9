"""Error analysis of saved geolocator predictions (what the Errors page shows).

Input: the per-image predictions frame (``predictions_frame``: true / predicted location,
distance_km, true_cell / pred_cell, tokens, top-k lists) and the partition. Everything is
a pandas group-by or a bincount: no per-sample loops.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import NotFoundError
from workbench.geo import Partition
from workbench.geo.metrics import DEFAULT_THRESHOLDS_KM, accuracy_key
from workbench.paths import REPO_ROOT
from workbench.ui.fmt import fmt_count, fmt_frame, fmt_km, fmt_num, fmt_pct

SUMMARY_ROWS = ("model", "oracle", "most_frequent_cell")
ALL_CELLS = "(all)"  # the cell filters' "no filter" choice
IMAGE_MISSING = "image not available (build the data: python -m workbench data build-demo)"
TABLE_COLUMNS = ["n", *[accuracy_key(t) for t in DEFAULT_THRESHOLDS_KM], "geoguessr", "median_km", "mean_km",
                 "cell_top1", "cell_top5", "macro_f1"]


@dataclass
class SavedPredictions:
    """A run's (or a bundle's) predictions with the partition and the metrics beside them."""

    frame: pd.DataFrame
    partition: Partition
    metrics: dict[str, Any]  # metrics.json (model vs oracle vs baseline)
    folder: Path


def load_saved_predictions(folder: str | Path) -> SavedPredictions:
    """Read predictions.parquet, partition.csv and metrics.json from a checkpoint bundle
    folder, a run's artifacts/ folder or a run folder."""
    folder = Path(folder)
    for candidate in (folder, folder / "artifacts"):
        if (candidate / "predictions.parquet").is_file():
            folder = candidate
            break
    else:
        raise NotFoundError(f"no predictions.parquet in {folder}; predictions are written when a "
                            "geolocator run finishes (or by python -m workbench export checkpoint)")
    frame = pd.read_parquet(folder / "predictions.parquet")
    if "path" in frame.columns:  # bundles store repo-relative image paths
        frame["path"] = [p if not p or Path(p).is_absolute() else str(REPO_ROOT / p) for p in frame["path"]]
    partition = Partition.load(folder / "partition.csv")
    metrics = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").is_file() else {}
    return SavedPredictions(frame, partition, metrics, folder)


def metrics_table(metrics: dict[str, Any], split: str | None = None) -> pd.DataFrame:
    """Rows model / oracle / most_frequent_cell, columns TABLE_COLUMNS, for one split.

    ``metrics`` is a run's artifacts/metrics.json ({"model", "oracle", ...}) or a bundle's
    ({"val": {...}, "test": {...}}); ``split`` picks the bundle's split (default: test if any).
    """
    block = metrics
    if "model" not in metrics:
        splits = [s for s in ("test", "val") if s in metrics]
        if not splits:
            return pd.DataFrame(columns=TABLE_COLUMNS)
        block = metrics[split if split in metrics else splits[0]]
    rows = {name: {k: (block.get(name) or {}).get(k) for k in TABLE_COLUMNS}
            for name in SUMMARY_ROWS if block.get(name)}
    if "model" in rows and rows["model"].get("n") is None:
        rows["model"]["n"] = block.get("n")
    return pd.DataFrame.from_dict(rows, orient="index", columns=TABLE_COLUMNS)


def worst_errors(frame: pd.DataFrame, k: int = 12, true_token: str | None = None,
                 pred_token: str | None = None) -> pd.DataFrame:
    """The k largest errors (distance_km, descending), optionally only those whose true or
    predicted cell is the given token."""
    mask = np.ones(len(frame), bool)
    if true_token:
        mask &= (frame["true_token"] == true_token).to_numpy()
    if pred_token:
        mask &= (frame["pred_token"] == pred_token).to_numpy()
    return frame[mask].nlargest(k, "distance_km")


def per_cell_accuracy(frame: pd.DataFrame, partition: Partition, threshold_km: float = 750.0) -> pd.DataFrame:
    """One row per partition cell: token, level, train_count, n_val (evaluated images whose
    true cell it is), n_correct, accuracy (top-1 cell; NaN without images), within (fraction
    with distance <= threshold_km), median_km, n_predicted (times it was the top guess)."""
    k = len(partition)
    true = frame["true_cell"].to_numpy(np.int64)
    valid = true >= 0
    t = true[valid]
    n_val = np.bincount(t, minlength=k)
    n_correct = np.bincount(t, weights=frame["correct"].to_numpy()[valid].astype(float), minlength=k)
    within = np.bincount(t, weights=(frame["distance_km"].to_numpy()[valid] <= threshold_km).astype(float),
                         minlength=k)
    n_pred = np.bincount(frame["pred_cell"].to_numpy(np.int64), minlength=k)
    medians = frame[valid].groupby("true_cell")["distance_km"].median()
    with np.errstate(invalid="ignore", divide="ignore"):
        out = pd.DataFrame({
            "cell": np.arange(k), "token": partition.cells["token"].to_numpy(),
            "level": partition.cells["level"].to_numpy(), "train_count": partition.cells["count"].to_numpy(),
            "n_val": n_val, "n_correct": n_correct.astype(np.int64),
            "accuracy": np.where(n_val > 0, n_correct / n_val, np.nan),
            "within": np.where(n_val > 0, within / n_val, np.nan),
            "median_km": medians.reindex(np.arange(k)).to_numpy(),
            "n_predicted": n_pred,
        })
    return out


def confused_pairs(frame: pd.DataFrame, per_cell: pd.DataFrame, n_cells: int = 10, top: int = 3,
                   min_images: int = 3) -> pd.DataFrame:
    """For the ``n_cells`` least accurate cells (with >= min_images evaluated images), their
    ``top`` most frequent wrong predictions: true_token, true_accuracy, pred_token, count,
    share (of the true cell's images), n_val."""
    eligible = per_cell[per_cell["n_val"] >= min_images].nsmallest(n_cells, "accuracy")
    wrong = frame[~frame["correct"] & frame["true_cell"].isin(eligible["cell"])]
    pairs = wrong.groupby(["true_cell", "pred_cell"]).size().rename("count").reset_index()
    pairs = pairs.sort_values(["true_cell", "count"], ascending=[True, False])
    pairs = pairs.groupby("true_cell").head(top)
    info = eligible.set_index("cell")
    tokens = per_cell.set_index("cell")["token"]
    out = pd.DataFrame({
        "true_token": tokens.reindex(pairs["true_cell"]).to_numpy(),
        "true_accuracy": info["accuracy"].reindex(pairs["true_cell"]).to_numpy(),
        "pred_token": tokens.reindex(pairs["pred_cell"]).to_numpy(),
        "count": pairs["count"].to_numpy(),
        "share": pairs["count"].to_numpy() / info["n_val"].reindex(pairs["true_cell"]).to_numpy(),
        "n_val": info["n_val"].reindex(pairs["true_cell"]).to_numpy(),
    })
    return out.sort_values(["true_accuracy", "true_token", "count"], ascending=[True, True, False],
                           ignore_index=True)


# -- display (what the Errors page prints; numbers through workbench.ui.fmt) ---------------

def _percent_columns(columns) -> list[str]:
    """The columns of a metrics table that are fractions in [0, 1] (shown as percent)."""
    return [c for c in columns if c.startswith("acc@") or c in ("cell_top1", "cell_top5", "macro_f1")]


def metrics_display(table: pd.DataFrame) -> pd.DataFrame:
    """``metrics_table`` for display: n exact ("311"), accuracies / top-k / macro F1 in
    percent with one decimal, GeoGuessr in points, distances in km, a missing value as an
    em dash (never "None" / "nan"). Same rows and columns, string cells."""
    formats = {"n": fmt_count, "geoguessr": lambda v: fmt_num(v, 0), "median_km": fmt_km,
               "mean_km": fmt_km, **{c: fmt_pct for c in _percent_columns(table.columns)}}
    return fmt_frame(table, formats)


def pairs_display(pairs: pd.DataFrame) -> pd.DataFrame:
    """``confused_pairs`` for display: accuracy and share in percent with one decimal,
    counts exact."""
    return fmt_frame(pairs, {"true_accuracy": fmt_pct, "share": fmt_pct, "count": fmt_count,
                             "n_val": fmt_count})


def cell_tooltips(per_cell: pd.DataFrame) -> list[str]:
    """One hover text per cell of ``per_cell_accuracy``: "<token>: 60.1% of 1,234 images
    (train 5,678)"; a cell without images reads "—"."""
    return [f"{t}: {fmt_pct(a)} of {fmt_count(n)} images (train {fmt_count(c)})"
            for t, a, n, c in zip(per_cell["token"], per_cell["accuracy"], per_cell["n_val"],
                                  per_cell["train_count"])]


def error_caption(distance_km: float, true_token: str, pred_token: str, place: str,
                  tokens: Any, probs: Any, top: int = 5) -> str:
    """The gallery's caption of one prediction (markdown): its error in km, the true and
    predicted cells, the place, and the top-``top`` cells with their probability in percent
    with one decimal."""
    guesses = ", ".join(f"{t} {fmt_pct(p)}" for t, p in zip(list(tokens)[:top], list(probs)[:top]))
    return (f"**{fmt_km(distance_km)}** · true `{true_token}` → predicted `{pred_token}`  \n"
            f"{place or ''}  \ntop-{top}: {guesses}")


# -- what the Errors page selects and lays out --------------------------------------------

def predictions_split(metrics: dict[str, Any]) -> str:
    """The split the saved predictions are of: metrics.json's predictions_split, else its
    split, else "val"."""
    return metrics.get("predictions_split") or metrics.get("split") or "val"


def predictions_summary(saved: SavedPredictions) -> str:
    """"311 test images · 54 cells · `<folder>`" (markdown)."""
    split = predictions_split(saved.metrics)
    return (f"{fmt_count(len(saved.frame))} {split} images · {fmt_count(len(saved.partition))} cells · "
            f"`{saved.folder}`")


def threshold_rows(table: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """``metrics_table`` as {row name: {column: value}} (what ``thresholds_figure`` takes)."""
    return {name: row.to_dict() for name, row in table.iterrows()}


def cell_filter_options(frame: pd.DataFrame) -> list[str]:
    """The cell filters' choices: ALL_CELLS, then every true or predicted cell token, sorted."""
    return [ALL_CELLS] + sorted(set(frame["true_token"]) | set(frame["pred_token"]))


def cell_filter(choice: str) -> str | None:
    """A cell filter's choice as ``worst_errors`` takes it: None for ALL_CELLS, else the token."""
    return None if choice == ALL_CELLS else choice


@dataclass(frozen=True)
class GalleryItem:
    """One tile of the worst-errors gallery: the image (None: not on disk), the inputs of
    the small map (the top-k cells' polygons as float64 bytes [k, 4, 2], their
    probabilities, the predicted and true (lat, lon)) and the caption (markdown)."""

    image: str | None
    polygons: bytes
    probs: tuple[float, ...]
    pred: tuple[float, float]
    true: tuple[float, float]
    caption: str


def gallery_items(rows: pd.DataFrame, polygons: np.ndarray) -> list[GalleryItem]:
    """The gallery of ``rows`` (from ``worst_errors``), in their order; ``polygons`` [K, 4, 2]
    is the partition's."""
    items = []
    for row in rows.itertuples(index=False):
        path = getattr(row, "path", None)
        cells = np.asarray(row.topk_cells, dtype=np.int64)
        items.append(GalleryItem(
            image=path if path and Path(path).is_file() else None,
            polygons=polygons[cells].tobytes(),
            probs=tuple(np.asarray(row.topk_probs, float).tolist()),
            pred=(row.pred_lat, row.pred_lon), true=(row.true_lat, row.true_lon),
            caption=error_caption(row.distance_km, row.true_token, row.pred_token, getattr(row, "place", ""),
                                  row.topk_tokens, row.topk_probs)))
    return items
