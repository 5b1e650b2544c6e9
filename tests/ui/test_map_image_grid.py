"""``add_image_grid``: an RGB lat/lon grid as one inline-PNG layer whose rows are resampled to
Web Mercator (Leaflet stretches an image linearly between its bounds, so a plain lat/lon
picture would put every latitude but the equator in the wrong place)."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from workbench.data.static_assets import MERCATOR_MAX_LAT
from workbench.errors import InputError
from workbench.ui import map as wmap

PNG_URL = "data:image/png;base64,"


def _png(layer) -> np.ndarray:
    """The layer's inline image: uint8 [rows, W, 4] (folium writes RGBA)."""
    assert layer.url.startswith(PNG_URL)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(layer.url[len(PNG_URL):]))).convert("RGBA"))


def _mercator_row_lats(north: float, south: float, rows: int) -> np.ndarray:
    """Latitude at the centre of each of ``rows`` image rows that Leaflet spaces evenly in
    Mercator y between the bounds: [rows] degrees, north to south."""
    y_n, y_s = np.arcsinh(np.tan(np.radians([north, south])))
    y = y_n + (np.arange(rows) + 0.5) / rows * (y_s - y_n)
    return np.degrees(np.arctan(np.sinh(y)))


def _grid(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3]: red = row index (0 north .. 255 south), green = column index, blue =
    255 - red. Each channel spans 0..255 (see test_colours_pass_through_unchanged)."""
    h, w = len(lat), len(lon)
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[..., 0] = np.round(np.arange(h) * 255 / (h - 1))[:, None]
    rgb[..., 1] = np.round(np.arange(w) * 255 / (w - 1))[None, :]
    rgb[..., 2] = 255 - rgb[..., 0]
    return rgb


LAT = np.arange(80.0, -81.0, -10.0)  # 17 cell centres, edges at +-85: symmetric about the equator
LON = np.array([-135.0, -45.0, 45.0, 135.0])


def test_bounds_are_the_cell_edges():
    layer = wmap.add_image_grid(wmap.make_map(), _grid(LAT, LON), LAT, LON)
    np.testing.assert_allclose(layer.bounds, [[-85.0, -180.0], [85.0, 180.0]])


def test_bounds_are_clipped_to_the_mercator_limit():
    lat, lon = np.arange(89.0, -90.0, -2.0), np.arange(-179.0, 180.0, 2.0)  # edges at +-90
    layer = wmap.add_image_grid(wmap.make_map(), _grid(lat, lon), lat, lon)
    np.testing.assert_allclose(layer.bounds, [[-MERCATOR_MAX_LAT, -180.0], [MERCATOR_MAX_LAT, 180.0]])
    assert _png(layer).shape[:2] == (2 * len(lat), len(lon))


def test_the_layer_is_an_inline_png_of_twice_the_rows():
    m = wmap.make_map()
    layer = wmap.add_image_grid(m, _grid(LAT, LON), LAT, LON, opacity=0.4, name="pcs")
    png = _png(layer)
    assert png.shape == (2 * len(LAT), len(LON), 4)
    assert (png[..., 3] == 255).all()  # opaque pixels: the layer's opacity does the blending
    assert layer.options["opacity"] == 0.4 and layer.options["interactive"] is False
    assert layer.layer_name == "pcs" and layer in m._children.values()
    assert wmap.external_resources(m) == []  # nothing from a CDN


def test_rows_are_resampled_to_mercator():
    png = _png(wmap.add_image_grid(wmap.make_map(), rgb := _grid(LAT, LON), LAT, LON)).astype(np.int64)
    rows = 2 * len(LAT)
    red = png[:, :, 0]
    assert np.ptp(red, axis=1).max() == 0  # a row is one latitude
    red = red[:, 0]
    assert np.all(np.diff(red) >= 0) and red[0] == 0 and red[-1] == 255  # north -> south
    # the colour of each output row is the input rows interpolated at its Mercator latitude
    row_lat = _mercator_row_lats(85.0, -85.0, rows)
    want = np.interp(-row_lat, -LAT, rgb[:, 0, 0].astype(np.float64))
    assert np.abs(red - want).max() <= 1
    # the middle of a symmetric Mercator image is the equator
    equator = np.interp(0.0, -LAT, rgb[:, 0, 0].astype(np.float64))
    assert abs(red[rows // 2 - 1 : rows // 2 + 1].mean() - equator) <= 1
    # a linear stretch in latitude would put lower latitudes near the top: far from these colours
    linear_lat = 85.0 - (np.arange(rows) + 0.5) / rows * 170.0
    linear = np.interp(-linear_lat, -LAT, rgb[:, 0, 0].astype(np.float64))
    assert np.abs(red - linear).max() > 20
    assert red[6] < linear[6] - 20  # row 6 is at ~74 N in Mercator, ~52 N stretched linearly
    # columns are not resampled; blue stays the complement of red
    np.testing.assert_array_equal(png[:, :, 1], np.broadcast_to(rgb[0, :, 1], (rows, len(LON))))
    assert np.abs(png[:, :, 2] + png[:, :, 0] - 255).max() <= 1


def test_colours_pass_through_unchanged():
    rgb = np.broadcast_to(np.array([10, 128, 200], np.uint8), (len(LAT), len(LON), 3))
    png = _png(wmap.add_image_grid(wmap.make_map(), rgb, LAT, LON))
    # e.g. the constant mid-grey blue of a 2-dim encoder's PCA picture must stay grey
    np.testing.assert_array_equal(png[..., :3], np.broadcast_to(rgb[:1, :1], png[..., :3].shape))


@pytest.mark.parametrize("rgb_shape, lat, lon", [
    ((17, 4), LAT, LON),  # no channels
    ((17, 4, 4), LAT, LON),  # RGBA
    ((16, 4, 3), LAT, LON),  # rows do not match lat
    ((17, 5, 3), LAT, LON),  # columns do not match lon
    ((1, 4, 3), LAT[:1], LON),  # one row: no cell size
    ((17, 1, 3), LAT, LON[:1]),  # one column
])
def test_bad_shapes_raise_input_error(rgb_shape, lat, lon):
    with pytest.raises(InputError, match="rgb must have shape"):
        wmap.add_image_grid(wmap.make_map(), np.zeros(rgb_shape, np.uint8), lat, lon)


@pytest.mark.parametrize("lat, lon", [
    (LAT[::-1], LON),  # south first
    (np.array([80.0, 80.0, 70.0]), LON),  # a repeated row
    (LAT, LON[::-1]),  # east first
])
def test_lat_must_descend_and_lon_ascend(lat, lon):
    with pytest.raises(InputError, match="lat must descend"):
        wmap.add_image_grid(wmap.make_map(), np.zeros((len(lat), len(lon), 3), np.uint8), lat, lon)
