"""Geolocate: a test tile, a sample photo or an upload -> the model's probability over every
S2 cell on the map, how peaked it is and whether to trust it, the predicted point and place.
The true location comes from the tile's data set position, the photo's EXIF GPS or a click
on the map -> distance and GeoGuessr score."""
import hashlib

import streamlit as st

from workbench.ui.widgets import page_setup

page_setup()

from workbench.errors import WorkbenchError  # noqa: E402
from workbench.geolocator import geolocate_view as view  # noqa: E402
from workbench.geolocator.confidence import (  # noqa: E402
    KNN_K,
    NEAR_UNIFORM_ENTROPY,
    OOD_QUANTILE,
    TOP_MASS_K,
    FeatureReference,
    build_feature_reference,
)
from workbench.geolocator.data import IMAGE_FORMATS, UPLOAD_TYPES, load_image  # noqa: E402
from workbench.geolocator.predict import GeoPredictor, Prediction, load_predictor  # noqa: E402
from workbench.geolocator.samples import PHOTO_NOTE, TILE_NOTE, sample_photos, sample_tiles  # noqa: E402
from workbench.geolocator.sources import DEMO_BUNDLE, list_sources  # noqa: E402
from workbench.ui.fmt import fmt_km, fmt_latlon, fmt_num, fmt_pct  # noqa: E402
from workbench.ui.map import map_widget  # noqa: E402

MAP_HEIGHT = 480
PREVIEW_PX = 320  # keeps the confidence numbers in view; a 64 px tile is shown 5x
CLICK_KEY = "geolocate_truth"  # {"digest", "lat", "lon"}: the clicked true location
CLEARS_KEY = "geolocate_clears"  # bumped by "Clear": the map widget restarts without a click
SOURCES = {"tile": "Test tile", "photo": "Sample photo", "upload": "Upload"}


@st.cache_resource(show_spinner="Loading the model ...", max_entries=4)
def load(path: str, stamp: int) -> GeoPredictor:
    return load_predictor(path).warm_up()


@st.cache_resource(show_spinner=False, max_entries=4)
def feature_reference(path: str, stamp: int, _predictor: GeoPredictor) -> FeatureReference | str:
    """The OOD reference of a model, or why there is none (a one-line message)."""
    try:
        return build_feature_reference(_predictor)
    except WorkbenchError as exc:
        return str(exc).splitlines()[0]


@st.cache_data(show_spinner=False, max_entries=64)
def predict(source_path: str, stamp: int, digest: str, top_k: int, location: str, name: str,
            _predictor: GeoPredictor, _data: bytes) -> Prediction:
    return _predictor.predict(_data, top_k=top_k, location=location, name=name)


@st.cache_data(show_spinner=False, max_entries=16)
def preview(data: bytes):
    """The image as shown: EXIF orientation applied, at most 1024 px (a 50-megapixel upload
    is decoded at reduced scale and never sent to the browser whole)."""
    image = load_image(data, target_size=1024)
    image.thumbnail((1024, 1024))
    return image


def clear_truth() -> None:
    st.session_state.pop(CLICK_KEY, None)
    st.session_state[CLEARS_KEY] = st.session_state.get(CLEARS_KEY, 0) + 1


st.title("Geolocate")
st.caption("Where was this image taken? The classifier spreads its probability over S2 cells; the map "
           "colours every cell by its probability.")

sources = list_sources()
if not sources:
    st.warning(f"No geolocator model found. The demo checkpoint belongs in `{DEMO_BUNDLE}`; train one "
               "with `python -m workbench train configs/geolocator-demo.yaml` and bundle it with "
               "`python -m workbench export checkpoint RUN_ID --out checkpoints/geolocator-demo`.")
    st.stop()

tiles, photos = sample_tiles(), sample_photos()
left, right = st.columns([2, 3])
with left:
    labels = [s.label for s in sources]
    choice = st.selectbox("Model", labels, key="geolocate_model")
    source = sources[labels.index(choice)]
    kind = st.radio("Image", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="geolocate_source",
                    help=f"Test tile: {TILE_NOTE}, with its true position. Sample photo: {PHOTO_NOTE}. "
                         "Upload: your own image (its EXIF GPS, or a click on the map, is the true location).")
    sample = upload = None
    if kind == "tile":
        if tiles:
            by_name = {s.name: s for s in tiles}
            sample = by_name[st.selectbox("Test tile", list(by_name), format_func=lambda n: by_name[n].label,
                                          key="geolocate_tile")]
            st.caption(f"A {TILE_NOTE}.")
        else:
            st.warning("No sample tiles in `assets/tiles`; rebuild them (see `assets/tiles/README.md`) or "
                       "pick a sample photo.")
    elif kind == "photo":
        by_name = {s.name: s for s in photos}
        sample = by_name[st.selectbox("Sample photo", list(by_name), format_func=lambda n: by_name[n].label,
                                      key="geolocate_photo")]
        st.caption(f"Sample photos are {PHOTO_NOTE}: street and close-up photos, and satellite views at a "
                   "larger scale than its tiles.")
    else:
        upload = st.file_uploader(f"Upload an image ({IMAGE_FORMATS})", type=UPLOAD_TYPES,
                                  key="geolocate_upload")
    top_k = st.slider("Top cells listed", 1, 20, 5, key="geolocate_topk")
    location = st.radio("Predicted point", ("top1", "weighted"), horizontal=True, key="geolocate_location",
                        help="top1: the best cell's centroid; weighted: probability-weighted mean of the top cells")
    log_scale = st.toggle("Log colour scale", key="geolocate_log",
                          help="Colour cells by log10 probability: shows how the small probabilities are "
                               "spread, which a linear scale paints uniformly pale.")

try:
    predictor = load(str(source.path), source.stamp())
except WorkbenchError as exc:
    st.error(str(exc))
    st.stop()

if upload is not None:
    data, name, what = upload.getvalue(), upload.name, "your upload"
elif sample is not None:
    data, name = sample.path.read_bytes(), sample.name
    what = "test tile" if sample.kind == "tile" else "sample photo"
else:
    with right:
        st.info("Upload an image to geolocate it." if kind == "upload" else "Pick an image to geolocate.")
    st.stop()

digest = hashlib.sha1(data).hexdigest()
try:
    pred = predict(str(source.path), source.stamp(), digest, top_k, location, name, predictor, data)
except WorkbenchError as exc:
    st.error(str(exc))
    st.stop()

exif, exif_problem = view.exif_position(data, name) if sample is None or sample.kind != "tile" else (None, None)
clicked = st.session_state.get(CLICK_KEY)
if clicked and clicked.get("digest") != digest:
    clicked = None
dataset_position = (sample.lat, sample.lon) if sample is not None and sample.lat is not None else None
truth = view.pick_truth(dataset_position, exif, clicked)

with left:
    st.image(preview(data), caption=f"Geolocating {what}: {name}", width=PREVIEW_PX)
    st.markdown(f"**Predicted place:** {pred.place}")
    st.caption(f"Nearest GeoNames place to the predicted point {fmt_latlon(pred.lat, pred.lon)}, "
               f"{fmt_km(pred.place_km)} away.")
    conf_box = st.container()  # filled after the map: the OOD reference may take seconds once

with right:
    polygons = predictor.polygons()
    m = view.prediction_map(pred, polygons, predictor.tokens, predictor.cell_places(), truth, log_scale, MAP_HEIGHT)
    clears = st.session_state.get(CLEARS_KEY, 0)
    click = map_widget(m, key=f"geolocate_map_{digest[:12]}_{clears}", height=MAP_HEIGHT)
    st.caption(f"Every one of the {predictor.n_cells} cells is coloured by its probability "
               f"({'log' if log_scale else 'linear'} colour bar, bottom right). Red dot: the predicted point"
               + ("; green dot: the true location." if truth is not None else "."))
    new_click = click is not None and (not clicked or (click["lat"], click["lon"]) != (clicked["lat"], clicked["lon"]))
    if new_click and truth is not None and truth.source != view.TRUTH_CLICK:
        st.caption(f"Map clicks are ignored here: the true location comes from {truth.source}.")
    elif new_click:
        st.session_state[CLICK_KEY] = {"digest": digest, **click}
        st.rerun()

    if exif_problem:
        st.warning(exif_problem)  # "EXIF GPS is invalid: <reason>" (workbench.data.exif)
    if truth is not None:
        result = view.score(truth, pred.lat, pred.lon)
        c1, c2 = st.columns(2)
        c1.metric("Distance", fmt_km(result.distance_km))
        c2.metric("GeoGuessr score", fmt_num(result.geoguessr, 0), help="5000 exp(-d / 1492.7 km), 0 .. 5000")
        st.caption(f"True location: {fmt_latlon(truth.lat, truth.lon)}, from {truth.source}.")
        if truth.source == view.TRUTH_CLICK:
            st.button("Clear the clicked location", key="geolocate_clear", on_click=clear_truth)
    else:
        st.info("This image has no known position: click the map where it was taken to score the guess.")

    st.dataframe(view.cells_table(pred), hide_index=True, key="geolocate_cells",
                 column_config={
                     "probability": st.column_config.ProgressColumn(
                         "probability", format="%.1f%%", min_value=0.0, max_value=100.0),
                     "lat": st.column_config.NumberColumn("lat", format="%.4f"),
                     "lon": st.column_config.NumberColumn("lon", format="%.4f")})
    st.caption(f"Model: `{predictor.source}` · {predictor.n_cells} cells · "
               f"{predictor.cfg.model.backbone} at {predictor.cfg.data.image_size} px")

with conf_box:
    with st.spinner("Embedding a sample of the model's training images for the out-of-distribution check "
                    "(once per model) ..."):
        reference = feature_reference(str(source.path), source.stamp(), predictor)
    ref = reference if isinstance(reference, FeatureReference) else None
    conf = view.assess_confidence(pred.all_probs, pred.features, ref,
                                  note="" if ref is not None else reference)
    c1, c2 = st.columns(2)
    c1.metric("Top-1 probability", fmt_pct(conf.top1),
              help=f"uniform over the {conf.n_cells} cells would be {fmt_pct(1 / conf.n_cells)}")
    c2.metric(f"Top-{TOP_MASS_K} mass", fmt_pct(conf.top_mass),
              help=f"probability of the {TOP_MASS_K} most probable cells together")
    c1.metric("Entropy vs uniform", fmt_pct(conf.entropy_norm),
              help="entropy / log(number of cells): 0% = all probability on one cell, 100% = uniform. "
                   f"Above {fmt_pct(NEAR_UNIFORM_ENTROPY, 0)} counts as near uniform.")
    c2.metric("Latency", f"{pred.latency_ms:,.0f} ms", help="image decode to prediction")
    if conf.low:
        st.warning("**Low confidence**: " + "; ".join(conf.reasons()) + ".")
    elif conf.ood is None:
        st.info(f"Peaked (spread as if over {conf.effective_cells:.0f} of {conf.n_cells} cells). "
                f"Out-of-distribution check unavailable: {conf.ood_note}")
    else:
        st.success(f"Not flagged: peaked enough (spread as if over {conf.effective_cells:.0f} of "
                   f"{conf.n_cells} cells) and in distribution (feature distance {fmt_num(conf.ood_distance)}, "
                   f"below the threshold {fmt_num(conf.ood_threshold)}).")
    if conf.ood is not None:
        st.caption(f"Out of distribution = mean cosine distance of the image's features to its "
                   f"{KNN_K} nearest training images above the {fmt_pct(OOD_QUANTILE, 0)} quantile of held-out "
                   f"images ({fmt_num(conf.ood_threshold)}); reference: {conf.ood_note}.")
