"""Offline Leaflet maps for every page: a folium map factory, vector layers and a click widget.

folium loads Leaflet, jQuery, Bootstrap and Font Awesome from CDNs. The app runs without
internet, and streamlit-folium loads a map's scripts one after another and gives up at the
first that fails, so a single CDN link leaves the map blank. ``make_map`` therefore points
the map's resources at the files ``workbench.data.static_assets.build_static`` copies into
``static/`` (served by Streamlit at ``/app/static/...``) and drops the Bootstrap / Awesome
Markers / Font Awesome links, which only ``folium.Icon`` markers need (use ``add_points``).

Vector layers (``add_points``, ``add_polygons``, ``add_density_cells``) are single GeoJson
objects with per-feature styles in ``properties.style`` (folium applies them in the browser),
so thousands of points or cells stay one layer and one JSON blob; maps use Leaflet's canvas
renderer for the same reason. ``add_heat`` is folium's HeatMap with Leaflet.heat served from
``/app/static`` too. ``map_widget`` refuses maps that would still load anything from a CDN.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Sequence

import branca.colormap
import folium
import folium.plugins
import numpy as np
from folium.template import Template

from workbench.data import static_assets
from workbench.data.static_assets import (
    BLUEMARBLE,
    JQUERY_JS,
    LEAFLET_CSS,
    LEAFLET_HEAT_JS,
    LEAFLET_JS,
    MERCATOR_MAX_LAT,
    STATIC_URL,
    static_url,
)
from workbench.errors import InputError, WorkbenchError

BASEMAPS = ("bluemarble", "osm", "none")
WORLD_BOUNDS = [[-MERCATOR_MAX_LAT, -180.0], [MERCATOR_MAX_LAT, 180.0]]
MAX_POINTS = 20_000  # beyond this, one vector per point makes the browser crawl: use add_heat
NAN_COLOR = "#808080"
LEGEND_BOX = "background: rgba(255,255,255,0.85); padding: 4px 6px; border-radius: 4px; font: 11px sans-serif"
LEGEND_BAR_PX = 160
TICKS_BAR_PX = 200  # a bar with tick labels: room for e.g. "0.01%" every quarter


def make_map(
    center: tuple[float, float] = (20.0, 0.0),
    zoom: int = 2,
    basemap: str = "bluemarble",
    height: int = 500,
    min_zoom: int = 1,
    max_zoom: int | None = None,
) -> folium.Map:
    """A folium map whose Leaflet, jQuery and basemap come from ``/app/static/...``.

    center: (lat, lon) in degrees; zoom: Leaflet zoom level (2 shows most of the world).
    basemap: "bluemarble" (NASA Blue Marble image served locally, works offline), "osm"
    (OpenStreetMap tiles, needs internet) or "none" (grey background).
    height: map height in pixels (also the default height of ``map_widget``).
    max_zoom: default 18 with "osm", else 10; the Blue Marble image (~20 km pixels at the
    equator, native at zoom 3) only gets blurrier beyond that, but vector layers gain.
    """
    if basemap not in BASEMAPS:
        raise InputError(f"basemap {basemap!r} is unknown. Available: {list(BASEMAPS)}")
    lat, lon = _check_latlon(np.array([center[0]]), np.array([center[1]]), "center")
    m = folium.Map(
        location=[float(lat[0]), float(lon[0])],
        zoom_start=zoom,
        tiles=None,
        height=height,
        min_zoom=min_zoom,
        max_zoom=max_zoom if max_zoom is not None else (18 if basemap == "osm" else 10),
        prefer_canvas=True,
        control_scale=True,
    )
    # Instance attributes shadow the class lists (which folium's add_js_link would mutate
    # for every map); only Leaflet itself and jQuery (for folium's templates) are needed.
    m.default_js = [("leaflet", static_url(LEAFLET_JS)), ("jquery", static_url(JQUERY_JS))]
    m.default_css = [("leaflet_css", static_url(LEAFLET_CSS))]

    if basemap == "bluemarble":
        overlay = folium.raster_layers.ImageOverlay(
            # folium would read a path string from disk and inline it as base64 (a 0.5 MB
            # page per rerun): construct with a dummy image and point the url at the server.
            image=np.zeros((1, 1, 4), dtype=np.uint8),
            bounds=WORLD_BOUNDS,
            pixelated=False,
            name="Blue Marble",
            attribution="NASA Blue Marble",
            interactive=False,
        )
        overlay.url = static_url(BLUEMARBLE)
        overlay.add_to(m)
    elif basemap == "osm":
        folium.TileLayer("OpenStreetMap", name="OpenStreetMap").add_to(m)
    return m


def add_points(
    m: folium.Map,
    lat: Sequence[float] | np.ndarray,
    lon: Sequence[float] | np.ndarray,
    color: str | Sequence[str] = "#ff7800",
    popup: Sequence[str] | None = None,
    tooltip: Sequence[str] | None = None,
    radius: float = 4.0,
    name: str = "points",
) -> folium.GeoJson:
    """Add N points as circle markers in one GeoJson layer and return that layer.

    lat, lon: [N] degrees. color: one CSS colour or [N] colours. popup / tooltip: [N]
    plain-text strings (HTML-escaped here) shown on click / hover. radius: pixels.
    Raises InputError for mismatched lengths, out-of-range coordinates or N > MAX_POINTS.
    """
    lat, lon = _check_latlon(lat, lon, "points")
    n = len(lat)
    if n > MAX_POINTS:
        raise InputError(
            f"{n} points are too many to draw one by one (limit {MAX_POINTS}); "
            "draw a density layer with add_heat(...) or pass a sample of the points"
        )
    colors = _per_item(color, n, "color")
    texts = {k: _per_item_text(v, n, k) for k, v in (("popup", popup), ("tooltip", tooltip)) if v is not None}
    coords = np.stack([lon, lat], axis=1).tolist()  # GeoJSON order is (lon, lat)
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": coords[i]},
            "properties": {
                "style": {"color": colors[i], "fillColor": colors[i]},
                **{key: t[i] for key, t in texts.items()},
            },
        }
        for i in range(n)
    ]
    layer = folium.GeoJson(
        {"type": "FeatureCollection", "features": features},
        name=name,
        marker=folium.CircleMarker(radius=radius, weight=1, fill=True, fill_opacity=0.8),
        popup=folium.GeoJsonPopup(fields=["popup"], labels=False) if "popup" in texts and n else None,
        tooltip=folium.GeoJsonTooltip(fields=["tooltip"], labels=False) if "tooltip" in texts and n else None,
    )
    layer.add_to(m)
    return layer


def add_polygons(
    m: folium.Map,
    polygons: np.ndarray,
    values: Sequence[float] | np.ndarray | None = None,
    colormap: str | branca.colormap.LinearColormap = "viridis",
    tooltips: Sequence[str] | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    opacity: float = 0.6,
    name: str = "cells",
    legend: str | None = None,
    legend_ticks: Sequence[tuple[float, str]] | None = None,
) -> folium.GeoJson:
    """Add N polygons (e.g. S2 cells) as one GeoJson layer coloured by value; return it.

    polygons: [N, k, 2] vertices as (lat, lon) degrees, open rings (the first vertex is not
    repeated). Longitudes of each polygon are unwrapped around its first vertex so a cell
    crossing the antimeridian is drawn as a small cell, not a band around the world.
    values: [N] numbers mapped through ``colormap`` over [vmin, vmax] (default: their
    range); NaN values are grey; None colours every polygon with the colormap's middle.
    colormap: a branca linear colormap name ("viridis", "YlOrRd_09", ...) or object.
    tooltips: [N] plain-text strings (HTML-escaped here); default shows the value.
    legend: caption for a colour-bar legend in the map corner; None for no legend.
    legend_ticks: [(value, label)] labels under the bar at those values (in the units of
    ``values``, e.g. log10 p labelled in percent); default: vmin and vmax as numbers.
    """
    poly = np.asarray(polygons, dtype=np.float64)
    if poly.ndim != 3 or poly.shape[2] != 2 or (len(poly) and poly.shape[1] < 3):
        raise InputError(f"polygons must have shape [N, k >= 3, 2] (lat, lon); got {poly.shape}")
    n = len(poly)
    _check_latlon(poly[..., 0].ravel(), poly[..., 1].ravel(), "polygon vertices")
    cmap = _colormap(colormap)
    vals = np.full(n, 0.5) if values is None else np.asarray(values, dtype=np.float64)
    if vals.shape != (n,):
        raise InputError(f"values must have shape [{n}] to match polygons; got {vals.shape}")
    lo, hi = _value_range(vals, vmin, vmax)
    colors = colors_for_values(vals, cmap, lo, hi)

    lon = poly[..., 1]
    lon = lon[:, :1] + normalize_lon(lon - lon[:, :1])  # unwrap around the first vertex
    ring = np.stack([lon, poly[..., 0]], axis=2)  # [N, k, 2] (lon, lat)
    ring = np.concatenate([ring, ring[:, :1]], axis=1)  # GeoJSON rings are closed
    if tooltips is not None:
        texts = _per_item_text(tooltips, n, "tooltips")
    elif values is not None:
        texts = ["" if np.isnan(v) else f"{v:.4g}" for v in vals.tolist()]
    else:
        texts = [""] * n
    style = {"weight": 0.5, "fillOpacity": opacity, "opacity": min(1.0, opacity + 0.2)}
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [r]},
            "properties": {"style": {**style, "color": c, "fillColor": c}, "tooltip": t},
        }
        for r, c, t in zip(ring.tolist(), colors, texts)
    ]
    layer = folium.GeoJson(
        {"type": "FeatureCollection", "features": features},
        name=name,
        tooltip=folium.GeoJsonTooltip(fields=["tooltip"], labels=False) if any(texts) else None,
    )
    layer.add_to(m)
    if legend is not None and values is not None:
        ColorLegend(cmap, lo, hi, legend, ticks=legend_ticks).add_to(m)
    return layer


def add_heat(
    m: folium.Map,
    lat: Sequence[float] | np.ndarray,
    lon: Sequence[float] | np.ndarray,
    weights: Sequence[float] | np.ndarray | None = None,
    bin_deg: float | None = 0.1,
    radius: int = 15,
    blur: int = 12,
    min_opacity: float = 0.3,
    name: str = "heat",
) -> folium.plugins.HeatMap:
    """Add a smooth Leaflet.heat heatmap of N points (weighted or not) and return the layer.

    lat, lon: [N] degrees; weights: [N] (default 1 per point). Points are first summed into
    bin_deg x bin_deg bins (vectorised), so the page carries one weighted point per
    non-empty bin however large N is; bin_deg=None sends every point. 0.1 degree is ~11 km,
    below what the heat kernel (radius, blur in pixels) resolves up to zoom ~7.
    Leaflet.heat is served from /app/static (folium's HeatMap would load it from a CDN).
    """
    lat, lon = _check_latlon(lat, lon, "points")
    w = _weights(weights, len(lat))
    if bin_deg is not None:
        if not 0 < bin_deg <= 10:
            raise InputError(f"bin_deg must be in (0, 10] degrees or None; got {bin_deg}")
        n_lon = int(np.ceil(360.0 / bin_deg))
        i = np.floor((lat + 90.0) / bin_deg).astype(np.int64)
        j = np.minimum(np.floor((lon + 180.0) / bin_deg).astype(np.int64), n_lon - 1)
        keys, inv = np.unique(i * n_lon + j, return_inverse=True)
        w = np.bincount(inv, weights=w)
        lat = np.clip(-90.0 + (keys // n_lon + 0.5) * bin_deg, -90.0, 90.0)
        lon = -180.0 + (keys % n_lon + 0.5) * bin_deg
    keep = w > 0
    layer = _LocalHeatMap([], name=name, radius=radius, blur=blur, min_opacity=min_opacity)
    layer.data = np.stack([lat[keep], lon[keep], w[keep]], axis=1).round(5).tolist()  # [M, 3]
    layer.add_to(m)
    return layer


class _LocalHeatMap(folium.plugins.HeatMap):
    """folium's HeatMap with Leaflet.heat from /app/static and vectorised bounds."""

    default_js = [("leaflet-heat.js", static_url(LEAFLET_HEAT_JS))]

    def _get_self_bounds(self):
        # folium's version loops over every point in Python; st_folium calls it per rerun.
        if not self.data:
            return [[None, None], [None, None]]
        pts = np.asarray(self.data)[:, :2]
        return [pts.min(0).tolist(), pts.max(0).tolist()]


def add_density_cells(
    m: folium.Map,
    lat: Sequence[float] | np.ndarray,
    lon: Sequence[float] | np.ndarray,
    weights: Sequence[float] | np.ndarray | None = None,
    cell_deg: float = 2.0,
    colormap: str | branca.colormap.LinearColormap = "YlOrRd_09",
    log_scale: bool = True,
    opacity: float = 0.6,
    name: str = "density",
) -> folium.GeoJson:
    """Add a density layer of cell_deg x cell_deg lat/lon cells with counts in tooltips.

    The non-empty cells of a 2-D histogram are drawn as one GeoJson layer: any number of
    points, at most (180 / cell_deg) * (360 / cell_deg) cells. lat, lon: [N] degrees;
    weights: [N] (default 1 per point). Colour follows log1p(total) when log_scale, else the
    total; each cell's tooltip gives its exact total. Returns the layer.
    """
    lat, lon = _check_latlon(lat, lon, "points")
    if not 0 < cell_deg <= 90:
        raise InputError(f"cell_deg must be in (0, 90] degrees; got {cell_deg}")
    w = _weights(weights, len(lat))
    lat_edges = np.arange(-90.0, 90.0 + cell_deg / 2, cell_deg).clip(-90, 90)
    lon_edges = np.arange(-180.0, 180.0 + cell_deg / 2, cell_deg).clip(-180, 180)
    hist, _, _ = np.histogram2d(lat, lon, bins=[lat_edges, lon_edges], weights=w)
    i, j = np.nonzero(hist)
    total = hist[i, j]
    south, north, west, east = lat_edges[i], lat_edges[i + 1], lon_edges[j], lon_edges[j + 1]
    corners = [(south, west), (north, west), (north, east), (south, east)]
    polys = np.stack([np.stack(c, axis=1) for c in corners], axis=1)  # [M, 4, 2] (lat, lon)
    label = "count" if weights is None else "weight"
    tips = [f"{label}: {t:.4g}" for t in total.tolist()]
    values = np.log1p(np.maximum(total, 0)) if log_scale else total
    return add_polygons(m, polys, values, colormap, tips, opacity=opacity, name=name)


def add_image_grid(
    m: folium.Map,
    rgb: np.ndarray,
    lat: Sequence[float] | np.ndarray,
    lon: Sequence[float] | np.ndarray,
    opacity: float = 0.75,
    name: str = "image",
) -> folium.raster_layers.ImageOverlay:
    """Add an RGB picture of a regular lat/lon grid as one image layer (inline PNG); return it.

    rgb: uint8 [H, W, 3] of cell values, rows north to south; lat [H] (descending) and lon
    [W] (ascending): the evenly spaced cell centres. The rows are resampled to Web Mercator
    here (vectorised linear interpolation between rows, twice the rows), since Leaflet
    stretches an image linearly between its bounds; rows beyond the Mercator limit are cut.
    The layer is not interactive, so clicks reach the map.
    """
    img = np.asarray(rgb)
    lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[:2] != (len(lat), len(lon)) or len(lat) < 2 or len(lon) < 2:
        raise InputError(f"rgb must have shape [len(lat) >= 2, len(lon) >= 2, 3]; got {img.shape} for "
                         f"{len(lat)} x {len(lon)} cells")
    if not (np.all(np.diff(lat) < 0) and np.all(np.diff(lon) > 0)):
        raise InputError("lat must descend (north first) and lon ascend")
    half_lat, half_lon = (lat[0] - lat[1]) / 2, (lon[1] - lon[0]) / 2
    north = min(lat[0] + half_lat, MERCATOR_MAX_LAT)
    south = max(lat[-1] - half_lat, -MERCATOR_MAX_LAT)
    west, east = lon[0] - half_lon, lon[-1] + half_lon

    def mercator_y(phi):
        return np.arcsinh(np.tan(np.radians(phi)))

    rows = 2 * len(lat)
    y = mercator_y(north) + (np.arange(rows) + 0.5) / rows * (mercator_y(south) - mercator_y(north))
    row_lat = np.degrees(np.arctan(np.sinh(y)))  # (rows,) north to south
    pos = np.interp(-row_lat, -lat, np.arange(len(lat), dtype=np.float64))  # fractional source row
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, len(lat) - 1)
    frac = (pos - lo)[:, None, None]
    out = (img[lo].astype(np.float32) * (1 - frac) + img[hi].astype(np.float32) * frac).round().astype(np.uint8)
    # RGBA uint8: folium would add a float alpha to RGB and stretch each channel to its maximum
    out = np.concatenate([out, np.full(out.shape[:2] + (1,), 255, np.uint8)], axis=2)
    layer = folium.raster_layers.ImageOverlay(
        image=out, bounds=[[south, west], [north, east]], opacity=opacity, pixelated=False, name=name,
        interactive=False,
    )
    layer.add_to(m)
    return layer


class ColorLegend(folium.MacroElement):
    """A Leaflet control with a horizontal colour bar from vmin to vmax and a caption."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.control({position: {{ this.position|tojson }}});
        {{ this.get_name() }}.onAdd = function (map) {
            var div = L.DomUtil.create('div', 'wb-legend');
            div.innerHTML = {{ this.html|tojson }};
            return div;
        };
        {{ this.get_name() }}.addTo({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(
        self,
        cmap: branca.colormap.LinearColormap,
        vmin: float,
        vmax: float,
        caption: str,
        position: str = "bottomright",
        ticks: Sequence[tuple[float, str]] | None = None,
    ):
        super().__init__()
        self._name = "ColorLegend"
        self.position = position
        stops = ", ".join(colors_for_values(np.linspace(0, 1, 11), cmap, 0.0, 1.0))
        width = LEGEND_BAR_PX if ticks is None else TICKS_BAR_PX
        bar = f"width: {width}px; height: 10px; background: linear-gradient(to right, {stops})"
        if ticks is None:
            ends = f"<span>{vmin:.4g}</span><span>{vmax:.4g}</span>"
            labels = f'<div style="display: flex; justify-content: space-between;">{ends}</div>'
        else:  # each label centred under its value (the end ones kept inside the box)
            span = (vmax - vmin) or 1.0
            items = []
            for value, text in ticks:
                t = min(max((value - vmin) / span, 0.0), 1.0)
                shift = -100 * t  # 0 % at the left end, -50 % in the middle, -100 % at the right
                items.append(
                    f'<span style="position: absolute; left: {100 * t:.1f}%; '
                    f'transform: translateX({shift:.0f}%); white-space: nowrap">{html.escape(text)}</span>'
                )
            labels = f'<div style="position: relative; height: 14px; width: {width}px">{"".join(items)}</div>'
        self.html = (
            f'<div style="{LEGEND_BOX}"><div>{html.escape(caption)}</div><div style="{bar}"></div>{labels}</div>'
        )


class PointLegend(folium.MacroElement):
    """A Leaflet control listing what each marker colour means: [(css colour, label)]."""

    _template = ColorLegend._template

    def __init__(self, items: Sequence[tuple[str, str]], title: str | None = None, position: str = "topright"):
        super().__init__()
        self._name = "PointLegend"
        self.position = position
        rows = "".join(
            f'<div><span style="display: inline-block; width: 10px; height: 10px; border-radius: 50%; '
            f'background: {html.escape(color)}; border: 1px solid #fff; margin-right: 5px; '
            f'vertical-align: middle"></span>{html.escape(label)}</div>'
            for color, label in items
        )
        head = f"<div><b>{html.escape(title)}</b></div>" if title else ""
        self.html = f'<div class="wb-point-legend" style="{LEGEND_BOX}">{head}{rows}</div>'


def colors_for_values(
    values: np.ndarray, cmap: branca.colormap.LinearColormap, vmin: float, vmax: float
) -> list[str]:
    """Hex colours ("#rrggbb") for [N] values through a linear colormap over [vmin, vmax].

    Vectorised piecewise-linear interpolation of the colormap's RGB stops; values outside
    the range are clipped, NaN gives NAN_COLOR.
    """
    values = np.asarray(values, dtype=np.float64)
    t = (values - vmin) / (vmax - vmin) if vmax > vmin else np.full_like(values, 0.5)
    t = np.clip(np.nan_to_num(t, nan=0.0), 0.0, 1.0)
    idx = np.asarray(cmap.index, dtype=np.float64)
    idx = (idx - idx[0]) / (idx[-1] - idx[0])
    stops = np.asarray(cmap.colors, dtype=np.float64)[:, :3]  # [S, 3] rgb in 0..1
    rgb = np.stack([np.interp(t, idx, stops[:, c]) for c in range(3)], axis=-1)  # [N, 3]
    code = (np.rint(rgb * 255).astype(np.int64) * np.array([1 << 16, 1 << 8, 1])).sum(-1)
    out = np.char.mod("#%06x", code)
    out[np.isnan(values)] = NAN_COLOR
    return out.tolist()


def normalize_lon(lon: float | np.ndarray) -> float | np.ndarray:
    """Wrap longitudes in degrees into [-180, 180); Leaflet reports e.g. 200 after panning east."""
    wrapped = (np.asarray(lon, dtype=np.float64) + 180.0) % 360.0 - 180.0
    return float(wrapped) if np.ndim(wrapped) == 0 else wrapped


def click_from_state(state: dict | None) -> dict | None:
    """{"lat", "lon"} (degrees, lon in [-180, 180)) of st_folium's ``last_clicked``, or None."""
    clicked = (state or {}).get("last_clicked")
    if not clicked:
        return None
    return {"lat": float(clicked["lat"]), "lon": normalize_lon(float(clicked["lng"]))}


def external_resources(m: folium.Map) -> list[str]:
    """URLs of scripts / stylesheets the map would load from outside this app (should be [])."""
    urls = []
    stack = [m]
    while stack:
        el = stack.pop()
        if isinstance(el, branca.colormap.ColorMap):
            urls.append("d3.js (streamlit-folium loads it from a CDN for a branca colormap)")
        for _, url in list(getattr(el, "default_js", [])) + list(getattr(el, "default_css", [])):
            if not url.startswith(STATIC_URL):
                urls.append(url)
        stack.extend(getattr(el, "_children", {}).values())
    return urls


@functools.cache
def ensure_static_assets() -> None:
    """Build the repo's ``static/`` (Leaflet, jQuery, basemap) if any file is missing."""
    root = static_assets.DEFAULT_STATIC_ROOT
    if not static_assets.static_status(root)["complete"]:
        static_assets.build_static(root)


def map_widget(m: folium.Map, key: str, height: int | None = None) -> dict | None:
    """Render ``m`` in Streamlit and return the last click as {"lat", "lon"} or None.

    Only ``last_clicked`` is sent back, so panning and zooming do not rerun the script.
    Raises WorkbenchError when an element of the map would load a CDN resource, because
    streamlit-folium then leaves the whole map blank offline. Builds ``static/`` first if
    files are missing (once per process; offline, ~1 s), since a missing leaflet.js also
    leaves the map blank.
    """
    from streamlit_folium import st_folium

    ensure_static_assets()
    ext = external_resources(m)
    if ext:
        raise WorkbenchError(
            f"the map loads {ext[0]} from outside the app, which is offline; use the layers in "
            "workbench.ui.map (add_points, add_heat, add_density_cells, add_polygons) instead of "
            "folium plugins"
        )
    if height is None:
        height = int(m.height[0]) if isinstance(m.height, tuple) and m.height[1] == "px" else 500
    state = st_folium(m, key=key, height=height, use_container_width=True, returned_objects=["last_clicked"])
    return click_from_state(state)


def _check_latlon(lat, lon, what: str) -> tuple[np.ndarray, np.ndarray]:
    lat = np.asarray(lat, dtype=np.float64).ravel()
    lon = np.asarray(lon, dtype=np.float64).ravel()
    if lat.shape != lon.shape:
        raise InputError(f"{what}: lat and lon must have the same length; got {len(lat)} and {len(lon)}")
    bad = ~(np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180))
    if bad.any():
        k = int(np.argmax(bad))
        raise InputError(
            f"{what}: {int(bad.sum())} coordinate(s) out of range, first at index {k}: "
            f"lat={lat[k]}, lon={lon[k]} (need lat in [-90, 90], lon in [-180, 180])"
        )
    return lat, lon


def _weights(weights, n: int) -> np.ndarray:
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any():
        raise InputError(f"weights must be {n} finite numbers >= 0; got {w.shape} values")
    return w


def _per_item(value, n: int, what: str) -> list[str]:
    if isinstance(value, str):
        return [value] * n
    items = [str(v) for v in value]
    if len(items) != n:
        raise InputError(f"{what} must be one value or {n} values; got {len(items)}")
    return items


def _per_item_text(texts, n: int, what: str) -> list[str]:
    if isinstance(texts, str):
        raise InputError(f"{what} must be a sequence of {n} strings, not one string")
    return [html.escape(t) for t in _per_item(texts, n, what)]


def _colormap(colormap) -> branca.colormap.LinearColormap:
    if isinstance(colormap, branca.colormap.LinearColormap):
        return colormap
    cmap = getattr(branca.colormap.linear, str(colormap), None)
    if not isinstance(cmap, branca.colormap.LinearColormap):
        raise InputError(
            f"colormap {colormap!r} is unknown. Available: the names in branca.colormap.linear, "
            "e.g. viridis, plasma, magma, YlOrRd_09, RdYlBu_11, Blues_09"
        )
    return cmap


def _value_range(vals: np.ndarray, vmin: float | None, vmax: float | None) -> tuple[float, float]:
    finite = vals[np.isfinite(vals)]
    lo = vmin if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    hi = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    return float(lo), float(hi)
