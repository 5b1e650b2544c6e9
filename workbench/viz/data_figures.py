"""Figures and tables for the Data page (plotly / pandas; never rendered here)."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench.geo.metrics import DEFAULT_THRESHOLDS_KM, accuracy_key


def class_size_histogram(counts: np.ndarray, t_min: int | None = None,
                         t_max: int | None = None, nbins: int = 40) -> go.Figure:
    """Histogram of class sizes: how many partition cells hold how many training points.

    counts: [K] points per cell. t_min / t_max (optional) are drawn as dashed lines: cells
    lie between them except at the finest level, where cells are never split.
    """
    counts = np.asarray(counts, dtype=np.int64)
    fig = go.Figure(go.Histogram(x=counts, nbinsx=nbins, marker_color="#3b6ea8",
                                 hovertemplate="%{x} points: %{y} cells<extra></extra>"))
    for value, label in ((t_min, "t_min"), (t_max, "t_max")):
        if value is not None:
            fig.add_vline(x=value, line_dash="dash", line_color="#c0392b",
                          annotation_text=f"{label} = {value}", annotation_position="top")
    fig.update_layout(
        title=f"Class sizes ({counts.size} cells)", xaxis_title="training points per cell",
        yaxis_title="cells", bargap=0.05, height=320, margin=dict(l=10, r=10, t=50, b=10),
    )
    return fig


def split_bar(split_counts: pd.DataFrame) -> go.Figure:
    """Samples per split as a bar chart; split_counts has columns split, count."""
    fig = go.Figure(go.Bar(x=split_counts["split"], y=split_counts["count"],
                           marker_color="#3b6ea8", text=split_counts["count"],
                           textposition="outside"))
    fig.update_layout(yaxis_title="samples", height=240, margin=dict(l=10, r=10, t=20, b=10))
    return fig


def oracle_frame(table: Mapping[str, Any],
                 thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS_KM) -> pd.DataFrame:
    """The oracle table (``workbench.geo.oracle_table``) as rows metric / value.

    Accuracies are in percent (acc@25km = 41.3 means 41.3 %), GeoGuessr is the mean score
    per guess (0..5000), distances in km.
    """
    rows = [(f"{accuracy_key(t)} (%)", 100.0 * table[accuracy_key(t)]) for t in thresholds]
    rows += [("GeoGuessr (mean)", table["geoguessr"]), ("mean error (km)", table["mean_km"]),
             ("median error (km)", table["median_km"]), ("samples", table["n"]),
             ("outside every cell", table["n_outside"])]
    return pd.DataFrame(rows, columns=["metric", "value"])
