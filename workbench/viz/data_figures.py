"""Figures and tables for the Data page (plotly / pandas; never rendered here)."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench.geo.metrics import DEFAULT_THRESHOLDS_KM, accuracy_key
from workbench.ui.fmt import fmt_count, fmt_frame, fmt_km, fmt_num, fmt_pct


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
        title=f"Class sizes ({fmt_count(counts.size)} cells)", xaxis_title="training points per cell",
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
    """The oracle table (``workbench.geo.oracle_table``) as rows metric / value, the values
    already formatted for display (``workbench.ui.fmt``): accuracies in percent with one
    decimal, the GeoGuessr mean score per guess (0..5000) in points, distances in km,
    counts exact ("34,006"; a numeric column format such as %.4g would print 34010).
    """
    n, outside = table["n"], table["n_outside"]
    share = f" ({fmt_pct(outside / n)})" if n else ""
    rows = [(accuracy_key(t), fmt_pct(table[accuracy_key(t)])) for t in thresholds]
    rows += [("GeoGuessr (mean points)", fmt_num(table["geoguessr"], 0)),
             ("mean error", fmt_km(table["mean_km"])),
             ("median error", fmt_km(table["median_km"])),
             ("samples", fmt_count(n)),
             ("outside every cell", fmt_count(outside) + share)]
    return pd.DataFrame(rows, columns=["metric", "value"])


def split_table(split_counts: pd.DataFrame) -> pd.DataFrame:
    """``catalog.split_counts`` (columns split, count) for display: counts exact with
    thousands separators, a last row "total"."""
    total = pd.DataFrame({"split": ["total"], "count": [int(split_counts["count"].sum())]})
    both = pd.concat([split_counts, total], ignore_index=True) if len(split_counts) > 1 \
        else split_counts
    return fmt_frame(both, {"count": fmt_count})
