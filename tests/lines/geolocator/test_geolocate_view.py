"""The Geolocate page's logic: truth precedence, scores, the confidence verdict and the map
(every cell drawn and coloured, colour bar with percent ticks, marker legend)."""
import numpy as np
import pytest

from workbench.geo import geoguessr_score, haversine_km
from workbench.lines.geolocator import geolocate_view as view
from workbench.lines.geolocator.confidence import FeatureReference
from workbench.lines.geolocator.figures import prob_label, probability_scale


def test_truth_precedence_dataset_then_exif_then_click():
    click = {"lat": 1.0, "lon": 2.0}
    assert view.pick_truth((10, 20), (30, 40), click) == view.Truth(10.0, 20.0, view.TRUTH_DATASET)
    assert view.pick_truth(None, (30, 40), click) == view.Truth(30.0, 40.0, view.TRUTH_EXIF)
    assert view.pick_truth(None, None, click) == view.Truth(1.0, 2.0, view.TRUTH_CLICK)
    assert view.pick_truth(None, None, None) is None


def test_score_is_haversine_and_geoguessr():
    s = view.score(view.Truth(48.85, 2.35, view.TRUTH_CLICK), 40.71, -74.0)
    assert s.distance_km == pytest.approx(float(haversine_km(48.85, 2.35, 40.71, -74.0)))
    assert s.distance_km == pytest.approx(5837, abs=5)
    assert s.geoguessr == pytest.approx(float(geoguessr_score(s.distance_km)))


def test_exif_position_reports_problems_instead_of_raising():
    from workbench.data.exif import read_exif_gps

    from workbench.lines.geolocator.samples import PHOTOS_DIR

    data = (PHOTOS_DIR / "summer_palace_beijing.jpg").read_bytes()
    assert view.exif_position(data) == (read_exif_gps(data), None)
    position, problem = view.exif_position(b"not an image", "notes.jpg")
    assert position is None and "notes.jpg" in problem and "\n" not in problem
    assert view.exif_position(_png()) == (None, None)  # no GPS: not a problem, a click stands in
    assert view.exif_position(_bad_gps_jpeg()) == (None, "EXIF GPS is invalid: latitude 95 is outside [-90, 90]")


def _bad_gps_jpeg() -> bytes:
    """A JPEG whose EXIF GPS latitude is 95 degrees N."""
    import io

    import piexif
    from PIL import Image

    gps = {piexif.GPSIFD.GPSLatitudeRef: b"N", piexif.GPSIFD.GPSLatitude: ((95, 1), (0, 1), (0, 1)),
           piexif.GPSIFD.GPSLongitudeRef: b"E", piexif.GPSIFD.GPSLongitude: ((10, 1), (0, 1), (0, 1))}
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 120, 60)).save(buffer, "JPEG", exif=piexif.dump({"GPS": gps}))
    return buffer.getvalue()


def _reference(threshold_at: float = 0.5) -> FeatureReference:
    train = np.eye(4)[[0, 0, 0, 1, 1, 1]] + 0.01
    return FeatureReference(train, np.linspace(0, threshold_at, 100), threshold_at, 0.99, 1, "toy reference")


def test_confidence_verdicts():
    k = 54
    uniform = view.assess_confidence(np.full(k, 1 / k), np.eye(4)[0], _reference())
    assert uniform.near_uniform and uniform.low and uniform.ood is False
    assert uniform.top1 == pytest.approx(1 / k) and uniform.entropy_norm == pytest.approx(1.0)
    reasons = uniform.reasons()
    assert len(reasons) == 1 and "near uniform" in reasons[0] and "100.0%" in reasons[0] and "54 of 54" in reasons[0]

    peaked = np.r_[0.9, np.full(k - 1, 0.1 / (k - 1))]
    fine = view.assess_confidence(peaked, np.eye(4)[0], _reference())
    assert not fine.low and fine.reasons() == [] and fine.ood_distance == pytest.approx(0.0, abs=1e-3)

    ood = view.assess_confidence(peaked, np.eye(4)[2], _reference())  # orthogonal to every training row
    assert ood.ood and ood.low and ood.ood_rank == 1.0
    assert "out of distribution" in ood.reasons()[0] and "100.0%" in ood.reasons()[0]

    unknown = view.assess_confidence(peaked, np.eye(4)[2], None, note="data CSV not found: x.csv")
    assert unknown.ood is None and not unknown.low and unknown.ood_note == "data CSV not found: x.csv"


def test_probability_scale_linear_and_log():
    p = np.array([0.5, 0.3, 0.15, 0.04, 0.01, 1e-7])
    lin = probability_scale(p)
    assert (lin.vmin, lin.vmax) == (0.0, 0.5) and lin.values is not None and not lin.log
    assert [t for _, t in lin.ticks] == ["0.0%", "25.0%", "50.0%"]
    log = probability_scale(p, log=True)
    assert log.log and log.vmax == pytest.approx(np.log10(0.5))
    assert log.vmin == pytest.approx(np.log10(0.5e-4))  # 4 decades below the top: 1e-7 clips there
    assert log.values[-1] == pytest.approx(log.vmin) and log.values[0] == pytest.approx(log.vmax)
    labels = [t for _, t in log.ticks]
    assert labels[0] == "0.005%" and labels[-1] == "50.0%" and "0.1%" in labels and "1.0%" in labels
    positions = [v for v, _ in log.ticks]
    assert positions == sorted(positions) and np.diff(positions).min() >= 0.25 * (log.vmax - log.vmin) - 1e-9
    # the order of cells is the order of probabilities on both scales
    assert (np.argsort(lin.values) == np.argsort(log.values)).all()
    one = probability_scale(np.array([1.0, 0.0]), log=True)
    assert one.vmin < one.vmax


def test_prob_label_never_reads_zero_for_a_positive_probability():
    assert prob_label(0.0123) == "1.2%" and prob_label(2e-4) == "0.02%" and prob_label(0.0) == "0.0%"
    assert prob_label(3e-6) == "0.0003%"


@pytest.fixture(scope="module")
def demo():
    from workbench.lines.geolocator.predict import DEMO_CHECKPOINT, load_predictor

    return load_predictor(DEMO_CHECKPOINT)


@pytest.mark.parametrize("log_scale", [False, True])
def test_prediction_map_draws_every_cell_coloured_with_legends(demo, log_scale):
    from workbench.lines.geolocator.samples import sample_tiles

    tile = sample_tiles()[0]
    pred = demo.predict(tile.path, top_k=5)
    assert pred.all_probs.shape == (demo.n_cells,)
    truth = view.pick_truth((tile.lat, tile.lon), None, None)
    m = view.prediction_map(pred, demo.polygons(), demo.tokens, demo.cell_places(), truth, log_scale)
    layers = {c.layer_name: c for c in m._children.values() if hasattr(c, "layer_name")}
    cells = layers["cells"].data["features"]
    assert len(cells) == demo.n_cells == 54
    tips = [f["properties"]["tooltip"] for f in cells]
    fills = [f["properties"]["style"]["fillColor"] for f in cells]
    best = int(np.argmax(pred.all_probs))
    assert tips[-1].startswith(f"{demo.tokens[best]}: {prob_label(pred.all_probs[best])}")  # drawn on top
    assert len(set(fills)) >= (20 if log_scale else 5)  # coloured by probability, not one colour
    from workbench.ui.map import ColorLegend, PointLegend

    colour_bar = next(c for c in m._children.values() if isinstance(c, ColorLegend)).html
    markers = next(c for c in m._children.values() if isinstance(c, PointLegend)).html
    assert "all 54 cells" in colour_bar and ("log scale" in colour_bar) == log_scale
    assert prob_label(pred.all_probs.max()) in colour_bar  # the bar's top end, in percent
    assert f"background: {view.PRED_COLOR}" in markers and "predicted point" in markers
    assert f"background: {view.TRUE_COLOR}" in markers and "true location (the test split&#x27;s position)" in markers
    assert "wb-legend" in m.get_root().render()
    assert layers["prediction"].data["features"][0]["properties"]["style"]["color"] == view.PRED_COLOR
    assert layers["truth"].data["features"][0]["geometry"]["coordinates"] == [tile.lon, tile.lat]


def test_cells_table_in_percent(demo):
    pred = demo.predict(_png(), top_k=3)
    table = view.cells_table(pred)
    assert table.columns.tolist() == ["cell", "probability", "nearest place", "lat", "lon"]
    np.testing.assert_allclose(table["probability"], 100 * np.asarray(pred.probs))
    assert table["cell"].tolist() == pred.tokens and not table.isna().any().any()


def _png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (40, 90, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def test_prediction_map_without_truth_has_only_the_prediction(demo):
    pred = demo.predict(_png(), top_k=5)
    m = view.prediction_map(pred, demo.polygons(), demo.tokens, demo.cell_places(), None)
    names = [getattr(c, "layer_name", None) for c in m._children.values()]
    assert "truth" not in names and "prediction" in names
    from workbench.ui.map import PointLegend

    markers = next(c for c in m._children.values() if isinstance(c, PointLegend)).html
    assert "predicted point" in markers and "true location" not in markers


# -- the user's choices: image, truth, map clicks, verdict ---------------------------------

class _Upload:
    """What st.file_uploader returns, as far as the page uses it."""

    def __init__(self, data: bytes, name: str):
        self.data, self.name = data, name

    def getvalue(self) -> bytes:
        return self.data


def _sample(tmp_path, kind, data: bytes, name="x.jpg", lat=None, lon=None):
    from workbench.lines.geolocator.samples import Sample

    path = tmp_path / name
    path.write_bytes(data)
    return Sample(kind, name, path, "somewhere", lat, lon)


def test_choose_image_takes_the_upload_else_the_sample(tmp_path):
    import hashlib

    tile = _sample(tmp_path, "tile", _png(), "t.png", 10.0, 20.0)
    chosen = view.choose_image(tile)
    assert (chosen.data, chosen.name, chosen.what, chosen.sample) == (_png(), "t.png", "test tile", tile)
    assert chosen.digest == hashlib.sha1(_png()).hexdigest() and chosen.is_tile
    assert chosen.dataset_position == (10.0, 20.0)
    photo = view.choose_image(_sample(tmp_path, "photo", b"jpeg bytes", "p.jpg"))
    assert photo.what == "sample photo" and not photo.is_tile and photo.dataset_position is None
    upload = view.choose_image(None, _Upload(b"mine", "holiday.jpg"))
    assert (upload.data, upload.name, upload.what, upload.sample) == (b"mine", "holiday.jpg", "your upload", None)
    assert view.choose_image(None, None) is None
    assert view.no_image_message("upload") == "Upload an image to geolocate it."
    assert view.no_image_message("tile") == view.no_image_message("photo") == "Pick an image to geolocate."


def test_a_tile_is_scored_from_its_data_set_position_and_its_exif_is_never_read(tmp_path, monkeypatch):
    tile = view.choose_image(_sample(tmp_path, "tile", _bad_gps_jpeg(), "t.jpg", 10.0, 20.0))
    monkeypatch.setattr(view, "exif_position", lambda *a: pytest.fail("EXIF read for a tile"))
    resolved = view.resolve_truth(tile, {"digest": tile.digest, "lat": 1.0, "lon": 2.0})
    assert resolved.truth == view.Truth(10.0, 20.0, view.TRUTH_DATASET)
    assert resolved.exif_problem is None  # its (invalid) EXIF GPS is not even looked at


def test_a_photo_is_scored_from_exif_and_an_invalid_exif_asks_for_a_click(tmp_path):
    from workbench.data.exif import read_exif_gps
    from workbench.lines.geolocator.samples import PHOTOS_DIR

    data = (PHOTOS_DIR / "summer_palace_beijing.jpg").read_bytes()
    photo = view.choose_image(_sample(tmp_path, "photo", data, "palace.jpg"))
    resolved = view.resolve_truth(photo, {"digest": photo.digest, "lat": 1.0, "lon": 2.0})
    assert resolved.truth == view.Truth(*read_exif_gps(data), view.TRUTH_EXIF) and resolved.exif_problem is None

    bad = view.choose_image(None, _Upload(_bad_gps_jpeg(), "pole.jpg"))
    resolved = view.resolve_truth(bad, None)
    assert resolved.truth is None and resolved.click is None
    assert resolved.exif_problem == "EXIF GPS is invalid: latitude 95 is outside [-90, 90]"
    clicked = view.resolve_truth(bad, {"digest": bad.digest, "lat": 1.0, "lon": 2.0})
    assert clicked.truth == view.Truth(1.0, 2.0, view.TRUTH_CLICK)
    assert clicked.exif_problem == resolved.exif_problem  # still said, next to the clicked truth


def test_an_old_click_for_another_image_is_dropped():
    lake = view.choose_image(None, _Upload(_png(), "lake.png"))
    old = {"digest": "another image", "lat": 1.0, "lon": 2.0}
    assert view.click_for_image(old, lake.digest) is None
    assert view.click_for_image(None, lake.digest) is None
    resolved = view.resolve_truth(lake, old)
    assert resolved.truth is None and resolved.click is None
    mine = {"digest": lake.digest, "lat": 1.0, "lon": 2.0}
    assert view.click_for_image(mine, lake.digest) == mine


def test_a_click_on_a_tiles_map_is_ignored_because_the_truth_is_the_data_set_position():
    tile_truth = view.Truth(10.0, 20.0, view.TRUTH_DATASET)
    assert view.click_action({"lat": 1.0, "lon": 2.0}, None, tile_truth) == view.CLICK_IGNORE
    assert view.ignored_click_note(tile_truth) == ("Map clicks are ignored here: the true location comes from "
                                                   "the test split's position.")
    exif_truth = view.Truth(10.0, 20.0, view.TRUTH_EXIF)
    assert view.click_action({"lat": 1.0, "lon": 2.0}, None, exif_truth) == view.CLICK_IGNORE


def test_a_new_click_on_an_image_without_position_is_stored_once():
    click = {"lat": 51.5, "lon": -0.12}
    assert view.click_action(click, None, None) == view.CLICK_STORE
    stored = view.bound_click("abc", click)
    assert stored == {"digest": "abc", "lat": 51.5, "lon": -0.12}
    truth = view.pick_truth(None, None, stored)
    # the widget keeps returning its last click: once stored it is no news (no rerun loop) ...
    assert view.click_action(click, stored, truth) is None
    # ... a click elsewhere replaces the clicked truth
    assert view.click_action({"lat": 48.85, "lon": 2.35}, stored, truth) == view.CLICK_STORE
    assert view.click_action(None, stored, truth) is None and view.click_action(None, None, None) is None


def test_confidence_verdict_levels_and_messages():
    k = 54
    peaked = np.r_[0.9, np.full(k - 1, 0.1 / (k - 1))]
    level, message = view.confidence_verdict(view.assess_confidence(np.full(k, 1 / k), np.eye(4)[0], _reference()))
    assert level == "warning" and message.startswith("**Low confidence**: the distribution is near uniform")
    assert message.endswith(".")
    both = view.assess_confidence(np.full(k, 1 / k), np.eye(4)[2], _reference())
    assert view.confidence_verdict(both)[1].count("; ") == 1  # both reasons, joined

    unknown = view.assess_confidence(peaked, np.eye(4)[2], None, note="data CSV not found: x.csv")
    level, message = view.confidence_verdict(unknown)
    assert level == "info"
    assert message.startswith(f"Peaked (spread as if over {unknown.effective_cells:.0f} of 54 cells)")
    assert message.endswith("Out-of-distribution check unavailable: data CSV not found: x.csv")
    assert view.ood_caption(unknown) is None

    fine = view.assess_confidence(peaked, np.eye(4)[0], _reference())
    level, message = view.confidence_verdict(fine)
    assert level == "success" and message.startswith("Not flagged: peaked enough")
    assert "below the threshold 0.5" in message
    caption = view.ood_caption(fine)
    assert caption.startswith("Out of distribution = mean cosine distance of the image's features to its 5 nearest")
    assert "above the 99% quantile" in caption and caption.endswith("reference: toy reference.")
