"""Geolocate: upload a photo (or pick a sample) -> the model's top-k S2 cells on the map,
coloured by probability, the predicted point and place, and the latency. The true location
comes from the photo's EXIF GPS or a click on the map -> distance and GeoGuessr score."""
import hashlib
from pathlib import Path

import streamlit as st

from workbench.ui.widgets import page_setup

page_setup()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from workbench.data.exif import read_exif_gps  # noqa: E402
from workbench.errors import WorkbenchError  # noqa: E402
from workbench.geo import geoguessr_score, haversine_km  # noqa: E402
from workbench.geolocator.data import IMAGE_FORMATS, load_image  # noqa: E402
from workbench.geolocator.predict import GeoPredictor, Prediction, load_predictor  # noqa: E402
from workbench.geolocator.sources import DEMO_BUNDLE, list_sources  # noqa: E402
from workbench.paths import ASSETS  # noqa: E402
from workbench.ui.map import add_points, add_polygons, make_map, map_widget  # noqa: E402

SAMPLES_DIR = ASSETS / "photos"
UPLOAD = "(upload a photo)"
MAP_HEIGHT = 480
CLICK_KEY = "geolocate_truth"


@st.cache_resource(show_spinner="Loading the model ...", max_entries=4)
def load(path: str, stamp: int) -> GeoPredictor:
    return load_predictor(path).warm_up()


@st.cache_data(show_spinner=False, max_entries=64)
def predict(source_path: str, stamp: int, digest: str, top_k: int, location: str, name: str,
            _predictor: GeoPredictor, _data: bytes) -> Prediction:
    return _predictor.predict(_data, top_k=top_k, location=location, name=name)


@st.cache_data(show_spinner=False, max_entries=16)
def preview(data: bytes):
    """The photo as shown: EXIF orientation applied, at most 1024 px (a 50-megapixel upload
    is decoded at reduced scale and never sent to the browser whole)."""
    image = load_image(data, target_size=1024)
    image.thumbnail((1024, 1024))
    return image


def sample_photos() -> list[Path]:
    return sorted(p for p in SAMPLES_DIR.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))


st.title("Geolocate")
st.caption("Where was this photo taken? The classifier spreads its probability over S2 cells; "
           "the map shows the top cells coloured by probability.")

sources = list_sources()
if not sources:
    st.warning(f"No geolocator model found. The demo checkpoint belongs in `{DEMO_BUNDLE}`; train one "
               "with `python -m workbench train configs/geolocator-demo.yaml` and bundle it with "
               "`python -m workbench export checkpoint RUN_ID --out checkpoints/geolocator-demo`.")
    st.stop()

left, right = st.columns([2, 3])
with left:
    labels = [s.label for s in sources]
    choice = st.selectbox("Model", labels, key="geolocate_model")
    source = sources[labels.index(choice)]
    top_k = st.slider("Top-k cells", 1, 20, 5, key="geolocate_topk")
    location = st.radio("Predicted point", ("top1", "weighted"), horizontal=True, key="geolocate_location",
                        help="top1: the best cell's centroid; weighted: probability-weighted mean of the top cells")
    samples = sample_photos()
    picked = st.selectbox("Photo", [UPLOAD] + [p.name for p in samples], index=1 if samples else 0,
                          key="geolocate_sample")
    upload = st.file_uploader(f"Upload a photo ({IMAGE_FORMATS})", type=["jpg", "jpeg", "png", "webp"],
                              key="geolocate_upload")

try:
    predictor = load(str(source.path), source.stamp())
except WorkbenchError as exc:
    st.error(str(exc))
    st.stop()

if upload is not None:
    data, name = upload.getvalue(), upload.name
elif picked != UPLOAD:
    path = SAMPLES_DIR / picked
    data, name = path.read_bytes(), path.name
else:
    st.info("Upload a photo or pick a sample to geolocate it.")
    st.stop()

digest = hashlib.sha1(data).hexdigest()
try:
    pred = predict(str(source.path), source.stamp(), digest, top_k, location, name, predictor, data)
except WorkbenchError as exc:
    st.error(str(exc))
    st.stop()

try:
    exif = read_exif_gps(data)
except WorkbenchError:
    exif = None
clicked = st.session_state.get(CLICK_KEY)
if clicked and clicked.get("digest") != digest:
    clicked = None
truth, truth_from = (exif, "EXIF GPS") if exif else ((clicked["lat"], clicked["lon"]), "map click") if clicked \
    else (None, None)

with left:
    st.image(preview(data), caption=name, width="stretch")
    st.metric("Predicted place", pred.place, help=f"nearest GeoNames place to ({pred.lat:.3f}, {pred.lon:.3f}), "
                                                  f"{pred.place_km:.0f} km away")
    c1, c2 = st.columns(2)
    c1.metric("Latency", f"{pred.latency_ms:.0f} ms")
    c2.metric(f"Top-{len(pred.probs)} probability", f"{sum(pred.probs):.1%}")

with right:
    m = make_map(center=(pred.lat, pred.lon), zoom=2, height=MAP_HEIGHT)
    polygons = predictor.polygons()[pred.cells]
    add_polygons(m, polygons, pred.probs, colormap="YlOrRd_09", vmin=0.0, vmax=max(pred.probs),
                 tooltips=[f"{t}: {p:.1%} ({n})" for t, p, n in zip(pred.tokens, pred.probs, pred.cell_places)],
                 name="top cells", legend="probability of the cell")
    add_points(m, [pred.lat], [pred.lon], color="#e31a1c", tooltip=[f"prediction: {pred.place}"],
               radius=7, name="prediction")
    if truth is not None:
        add_points(m, [truth[0]], [truth[1]], color="#2ca02c", tooltip=[f"true location ({truth_from})"],
                   radius=7, name="truth")
    # show the prediction, the top cells and the truth together
    lats = np.r_[polygons[..., 0].ravel(), pred.lat, truth[0] if truth else pred.lat]
    lons = np.r_[polygons[..., 1].ravel(), pred.lon, truth[1] if truth else pred.lon]
    m.fit_bounds([[lats.min(), lons.min()], [lats.max(), lons.max()]], padding=(20, 20), max_zoom=6)
    click = map_widget(m, key="geolocate_map", height=MAP_HEIGHT)
    new_click = click is not None and (not clicked or (click["lat"], click["lon"]) != (clicked["lat"], clicked["lon"]))
    if new_click and not exif:  # EXIF GPS wins; a click stands in for a photo without one
        st.session_state[CLICK_KEY] = {"digest": digest, **click}
        st.rerun()

    if truth is not None:
        d = float(haversine_km(truth[0], truth[1], pred.lat, pred.lon))
        c1, c2, c3 = st.columns(3)
        c1.metric("Distance", f"{d:,.0f} km")
        c2.metric("GeoGuessr score", f"{float(geoguessr_score(d)):,.0f}", help="5000 exp(-d / 1492.7 km)")
        c3.metric("True location", f"{truth[0]:.2f}, {truth[1]:.2f}", help=f"from {truth_from}")
    else:
        st.info("This photo has no GPS position in its EXIF: click the map where it was taken to score the guess.")

    st.dataframe(pd.DataFrame({"cell": pred.tokens, "probability": pred.probs, "nearest place": pred.cell_places,
                               "lat": pred.cell_lat, "lon": pred.cell_lon}),
                 hide_index=True, key="geolocate_cells",
                 column_config={"probability": st.column_config.ProgressColumn(
                     "probability", format="%.3f", min_value=0.0, max_value=1.0)})
    st.caption(f"Model: `{predictor.source}` · {predictor.n_cells} cells · "
               f"{predictor.cfg.model.backbone} at {predictor.cfg.data.image_size} px")
