"""The static prediction map on a log colour scale: the tail of the distribution becomes visible."""
import numpy as np

from workbench.lines.geolocator.figures import colormap_rgb, probability_scale, render_prediction_map


def _square(lat: float, lon: float, size: float = 20.0) -> np.ndarray:
    return np.array([[lat, lon], [lat + size, lon], [lat + size, lon + size], [lat, lon + size]])


def test_log_scale_colours_the_tail_that_linear_paints_pale():
    polys = np.stack([_square(-60, -170), _square(0, 0), _square(30, 100)])  # [3, 4, 2]
    probs = [0.9, 0.03, 0.001]
    centre = (int((10 + 180) / 360 * 720), int((90 - 10) / 180 * 360))  # of the 0.03 cell
    linear = np.asarray(render_prediction_map(polys, probs, width=720, opacity=1.0)).astype(int)
    log = np.asarray(render_prediction_map(polys, probs, width=720, opacity=1.0, log_scale=True)).astype(int)
    x, y = centre
    pale, mid = colormap_rgb(np.array([0.03 / 0.9]))[0], colormap_rgb(np.array([0.5]))[0]
    assert np.abs(linear[y, x] - pale).max() <= 2  # 3% of the top: almost the pale end
    assert np.abs(log[y, x] - mid).max() <= 2  # half-way between 0.1% and 90% in decades
    scale = probability_scale(probs, log=True)
    assert abs((scale.values[1] - scale.vmin) / (scale.vmax - scale.vmin) - 0.5) < 1e-12
