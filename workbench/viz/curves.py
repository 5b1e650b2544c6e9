"""Training-curve figures built from metrics.jsonl records (plotly; never rendered here).

Records are the dicts a run logs (``{"step", "epoch", "split", "time", "train/loss", ...}``).
Long runs log hundreds of thousands of points; a browser chart needs a few thousand, so
every trace goes through ``minmax_indices`` first, which keeps the first and last point
and the minimum and maximum of each bucket (spikes and dips stay visible, unlike a plain
stride).
"""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

MAX_POINTS = 5000
# Record fields that are bookkeeping, not metrics.
INDEX_FIELDS = ("step", "epoch", "split", "time")
SPLIT_PREFIXES = ("train/", "val/")
_DASH = {"train": "solid", "val": "dash"}


def minmax_indices(y: np.ndarray, target: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most ``target`` points of ``y`` [N] that keep its shape.

    The first and last points are always kept; the N - 2 interior points are split into
    equal-count buckets and each bucket contributes its argmin and argmax. NaNs are never
    chosen as extremes unless a bucket holds nothing else. Returns sorted int64 indices.
    """
    y = np.asarray(y, dtype=np.float64)
    n = y.shape[0]
    if target < 4:
        raise ValueError(f"target must be >= 4 points, got {target}")
    if n <= target:
        return np.arange(n)
    interior = n - 2
    n_buckets = (target - 2) // 2
    width = -(-interior // n_buckets)  # ceil: every bucket but the last is full
    n_rows = -(-interior // width)  # <= n_buckets, so no bucket is empty
    pad = n_rows * width - interior
    body = y[1:-1]
    lo = np.concatenate([np.where(np.isnan(body), np.inf, body), np.full(pad, np.inf)])
    hi = np.concatenate([np.where(np.isnan(body), -np.inf, body), np.full(pad, -np.inf)])
    offsets = np.arange(n_rows) * width + 1  # index in y of each bucket's first point
    mins = lo.reshape(n_rows, width).argmin(axis=1) + offsets
    maxs = hi.reshape(n_rows, width).argmax(axis=1) + offsets
    # Padding sorts last (+inf for argmin, -inf for argmax) and every row starts with a real
    # point, so no index lands in the padding, even for an all-NaN bucket.
    keep = np.concatenate([[0], mins, maxs, [n - 1]])
    return np.unique(keep)


def records_frame(records: Iterable[Mapping]) -> pd.DataFrame:
    """Records -> a DataFrame sorted by step (one row per record, NaN where not logged)."""
    frame = pd.DataFrame.from_records(list(records))
    if frame.empty:
        return pd.DataFrame(columns=list(INDEX_FIELDS))
    if "step" in frame:
        frame = frame.sort_values("step", kind="stable").reset_index(drop=True)
    return frame


def metric_names(frame: pd.DataFrame) -> list[str]:
    """Numeric metric columns (everything but step/epoch/split/time), sorted."""
    names = [c for c in frame.columns if c not in INDEX_FIELDS]
    return sorted(c for c in names if pd.api.types.is_numeric_dtype(frame[c]))


def metric_base(name: str) -> str:
    """'train/loss' and 'val/loss' -> 'loss'; 'lr' -> 'lr'."""
    for prefix in SPLIT_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def metric_groups(names: Iterable[str]) -> dict[str, list[str]]:
    """Metrics grouped by what they measure, so train and val share one figure.

    {"loss": ["train/loss", "val/loss"], "lr": ["lr"], ...}; "loss" comes first.
    """
    groups: dict[str, list[str]] = {}
    for name in sorted(names):
        groups.setdefault(metric_base(name), []).append(name)
    order = sorted(groups, key=lambda g: (g != "loss", g))
    return {g: groups[g] for g in order}


def _series(frame: pd.DataFrame, metric: str, x: str, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """The (x, y) points where ``metric`` was logged, downsampled to ``max_points``."""
    if metric not in frame or x not in frame:
        return np.empty(0), np.empty(0)
    sub = frame[[x, metric]].dropna()
    xs, ys = sub[x].to_numpy(), sub[metric].to_numpy(dtype=np.float64)
    idx = minmax_indices(ys, max_points)
    return xs[idx], ys[idx]


def _split_of(metric: str) -> str:
    return metric.split("/", 1)[0] if metric.startswith(SPLIT_PREFIXES) else "train"


def curves_figure(frame: pd.DataFrame, metrics: list[str], title: str = "", x: str = "step",
                  max_points: int = MAX_POINTS, log_y: bool = False) -> go.Figure:
    """One line per metric (val dashed with markers) against ``x``; each trace is
    downsampled to at most ``max_points`` points."""
    fig = go.Figure()
    for metric in metrics:
        xs, ys = _series(frame, metric, x, max_points)
        split = _split_of(metric)
        fig.add_trace(go.Scatter(
            x=xs, y=ys, name=metric, mode="lines+markers" if split == "val" else "lines",
            line={"dash": _DASH.get(split, "solid")}, marker={"size": 5},
        ))
    return _layout(fig, title or ", ".join(metrics), x, log_y)


def compare_figure(frames: Mapping[str, pd.DataFrame], metric: str, x: str = "step",
                   max_points: int = MAX_POINTS, log_y: bool = False) -> go.Figure:
    """``metric`` of several runs overlaid, one trace per run (named by the mapping's keys)."""
    fig = go.Figure()
    split = _split_of(metric)
    for label, frame in frames.items():
        xs, ys = _series(frame, metric, x, max_points)
        fig.add_trace(go.Scatter(x=xs, y=ys, name=label,
                                 mode="lines+markers" if split == "val" else "lines"))
    return _layout(fig, metric, x, log_y)


def _layout(fig: go.Figure, title: str, x: str, log_y: bool) -> go.Figure:
    fig.update_layout(
        title={"text": title, "font": {"size": 14}}, height=340, hovermode="x unified",
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        # below the axis: the top right belongs to plotly's toolbar
        legend={"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0.0},
    )
    fig.update_xaxes(title_text=x)
    if log_y:
        fig.update_yaxes(type="log")
    return fig
