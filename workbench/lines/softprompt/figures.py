"""Figures of the Soft-Prompt Explorer (plotly figures and colour maps; never rendered here).

Each dictionary entry keeps one colour everywhere (bars, atlas cells), from
``entry_colors(K)``.
"""
from __future__ import annotations

from typing import Sequence

import branca.colormap
import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from workbench.ui.fmt import fmt_pct

OTHER_COLOR = "#c8c8c8"  # bars that are not among the top entries
_PALETTE = qualitative.Dark24 + qualitative.Alphabet + qualitative.Light24  # 74 distinct colours


def entry_colors(k: int) -> list[str]:
    """One hex colour per entry (cycles beyond 74 entries)."""
    return [_PALETTE[i % len(_PALETTE)].lower() for i in range(k)]


def entry_colormap(k: int) -> branca.colormap.LinearColormap:
    """A colormap whose value i (0..k-1) is exactly ``entry_colors(k)[i]``: a categorical map
    for layers that colour by value (``workbench.ui.map.add_polygons`` with vmin=0, vmax=k-1)."""
    colors = entry_colors(k)
    if k == 1:
        colors = colors * 2
    return branca.colormap.LinearColormap(colors, index=list(range(len(colors))), vmin=0, vmax=len(colors) - 1)


def mixture_bar_figure(weights: Sequence[float], top: int = 5, meanings: Sequence[Sequence[str]] | None = None,
                       title: str | None = None, height: int = 300) -> go.Figure:
    """The K mixture weights [K] sorted in decreasing order, one bar per entry; the ``top``
    largest in their entry colours, the rest grey. Hover shows the entry, its weight and
    (if given) ``meanings[entry]``, the prompts nearest to it."""
    w = np.asarray(weights, dtype=np.float64)
    k = len(w)
    order = np.argsort(-w, kind="stable")
    colors = np.array(entry_colors(k), dtype=object)[order]
    colors[top:] = OTHER_COLOR
    hover = [f"entry {e}<br>weight {fmt_pct(w[e])}" + (f"<br>{' / '.join(meanings[e])}" if meanings else "")
             for e in order]
    fig = go.Figure(go.Bar(x=[f"e{e}" for e in order], y=w[order], marker_color=colors.tolist(),
                           hovertext=hover, hoverinfo="text", name="weight"))
    fig.update_layout(title=title, height=height, margin=dict(l=40, r=10, t=40 if title else 10, b=40),
                      xaxis=dict(title=f"entries by weight (K = {k})", tickangle=-90, type="category",
                                 tickfont=dict(size=9)),
                      yaxis=dict(title="mixture weight", rangemode="tozero", tickformat=".0%"),
                      showlegend=False, bargap=0.1)
    return fig


def atlas_tooltips(dominant: np.ndarray, weight: np.ndarray, meanings: Sequence[Sequence[str]] | None = None) -> list[str]:
    """Plain-text tooltips of atlas cells: "entry 12 (41.0%): Lyon, France / Lille, France"
    (the dominant entry's weight in percent)."""
    return [f"entry {e} ({fmt_pct(w)})" + (f": {' / '.join(meanings[e])}" if meanings else "")
            for e, w in zip(np.asarray(dominant).tolist(), np.asarray(weight).tolist())]
