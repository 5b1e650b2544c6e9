"""The geolocator line's page sections: Geolocate (pick a model and an image; the probability
map, the score against the true location, the top cells, the confidence verdict) and Errors
(metrics next to the baselines, the worst-K gallery, per-cell accuracy, confused pairs).

Only widgets, layout and the cached loaders live here; what to show is decided by
``geolocate_view`` and ``errors_analysis``. The map widget and the file uploader are looked
up when called (``ui_map.map_widget``, ``st.file_uploader``) so that AppTests can stand in
for the Leaflet click and the upload, which they cannot drive.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from workbench.errors import WorkbenchError
from workbench.lines.geolocator import errors_analysis as ea
from workbench.lines.geolocator import geolocate_view as view
from workbench.lines.geolocator.confidence import (
    NEAR_UNIFORM_ENTROPY,
    TOP_MASS_K,
    FeatureReference,
    build_feature_reference,
)
from workbench.lines.geolocator.data import IMAGE_FORMATS, UPLOAD_TYPES, load_image
from workbench.lines.geolocator.figures import class_size_figure, render_prediction_map, thresholds_figure
from workbench.lines.geolocator.predict import DEMO_CHECKPOINT, GeoPredictor, Prediction, load_predictor
from workbench.lines.geolocator.samples import PHOTO_NOTE, TILE_NOTE, Sample, sample_photos, sample_tiles
from workbench.runs.sources import Source, list_sources
from workbench.ui import map as ui_map
from workbench.ui.fmt import fmt_km, fmt_latlon, fmt_num, fmt_pct

# == Geolocate ==============================================================================

MAP_HEIGHT = 480
PREVIEW_PX = 320  # keeps the confidence numbers in view; a 64 px tile is shown 5x
CLICK_KEY = "geolocate_truth"  # {"digest", "lat", "lon"}: the clicked true location
CLEARS_KEY = "geolocate_clears"  # bumped by "Clear": the map widget restarts without a click
SOURCES = {"tile": "Test tile", "photo": "Sample photo", "upload": "Upload"}


@st.cache_resource(show_spinner="Loading the model ...", max_entries=4)
def load_model(path: str, stamp: int) -> GeoPredictor:
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


@st.cache_data(ttl=60, show_spinner=False)
def samples(kind: str) -> list[Sample]:
    """The committed test tiles ("tile") or sample photos ("photo"), read once a minute at
    most rather than on every rerun."""
    return sample_tiles() if kind == "tile" else sample_photos()


def clear_truth() -> None:
    st.session_state.pop(CLICK_KEY, None)
    st.session_state[CLEARS_KEY] = st.session_state.get(CLEARS_KEY, 0) + 1


@dataclass(frozen=True)
class ImagePick:
    kind: str  # a key of SOURCES
    sample: Sample | None  # the chosen tile or photo
    upload: Any  # Streamlit's UploadedFile, or None


@dataclass(frozen=True)
class Options:
    top_k: int  # cells listed
    location: str  # "top1" | "weighted": how the predicted point is placed
    log_scale: bool  # colour the cells by log10 probability


def geolocator_models() -> list[Source]:
    """The geolocator models; without one, a warning that says how to make one ([])."""
    sources = list_sources("geolocator")
    if not sources:
        st.warning(f"No geolocator model found. The demo checkpoint belongs in `{DEMO_CHECKPOINT}`; train one "
                   "with `python -m workbench train geolocator-demo` and bundle it with "
                   "`python -m workbench export checkpoint RUN_ID --out checkpoints/geolocator-demo`.")
    return sources


def model_picker(sources: list[Source]) -> Source:
    labels = [s.label for s in sources]
    choice = st.selectbox("Model", labels, key="geolocate_model")
    return sources[labels.index(choice)]


def image_picker() -> ImagePick:
    """Test tile, sample photo or upload; the upload box exists only once "Upload" is chosen."""
    kind = st.radio("Image", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="geolocate_source",
                    help=f"Test tile: {TILE_NOTE}, with its true position. Sample photo: {PHOTO_NOTE}. "
                         "Upload: your own image (its EXIF GPS, or a click on the map, is the true location).")
    sample = upload = None
    if kind == "tile":
        tiles = samples("tile")
        if tiles:
            by_name = {s.name: s for s in tiles}
            sample = by_name[st.selectbox("Test tile", list(by_name), format_func=lambda n: by_name[n].label,
                                          key="geolocate_tile")]
            st.caption(f"A {TILE_NOTE}.")
        else:
            st.warning("No sample tiles in `assets/tiles`; rebuild them (see `assets/tiles/README.md`) or "
                       "pick a sample photo.")
    elif kind == "photo":
        by_name = {s.name: s for s in samples("photo")}
        sample = by_name[st.selectbox("Sample photo", list(by_name), format_func=lambda n: by_name[n].label,
                                      key="geolocate_photo")]
        st.caption(f"Sample photos are {PHOTO_NOTE}: street and close-up photos, and satellite views at a "
                   "larger scale than its tiles.")
    else:
        upload = st.file_uploader(f"Upload an image ({IMAGE_FORMATS})", type=UPLOAD_TYPES,
                                  key="geolocate_upload")
    return ImagePick(kind, sample, upload)


def prediction_options() -> Options:
    top_k = st.slider("Top cells listed", 1, 20, 5, key="geolocate_topk")
    location = st.radio("Predicted point", ("top1", "weighted"), horizontal=True, key="geolocate_location",
                        help="top1: the best cell's centroid; weighted: probability-weighted mean of the top cells")
    log_scale = st.toggle("Log colour scale", key="geolocate_log",
                          help="Colour cells by log10 probability: shows how the small probabilities are "
                               "spread, which a linear scale paints uniformly pale.")
    return Options(top_k, location, log_scale)


def loaded_model(source: Source) -> GeoPredictor | None:
    """The cached predictor, or None after an error box saying why it did not load."""
    try:
        return load_model(str(source.path), source.stamp())
    except WorkbenchError as exc:
        st.error(str(exc))
        return None


def ask_for_image(kind: str) -> None:
    st.info(view.no_image_message(kind))


def prediction(source: Source, predictor: GeoPredictor, image: view.ChosenImage,
               options: Options) -> Prediction | None:
    """The cached prediction, or None after an error box (e.g. an upload that is no image)."""
    try:
        return predict(str(source.path), source.stamp(), image.digest, options.top_k, options.location,
                       image.name, predictor, image.data)
    except WorkbenchError as exc:
        st.error(str(exc))
        return None


def image_section(image: view.ChosenImage, pred: Prediction) -> None:
    st.image(preview(image.data), caption=f"Geolocating {image.what}: {image.name}", width=PREVIEW_PX)
    st.markdown(f"**Predicted place:** {pred.place}")
    st.caption(f"Nearest GeoNames place to the predicted point {fmt_latlon(pred.lat, pred.lon)}, "
               f"{fmt_km(pred.place_km)} away.")


def map_section(predictor: GeoPredictor, pred: Prediction, image: view.ChosenImage,
                resolved: view.TruthResolution, log_scale: bool) -> None:
    """Every cell coloured by probability; a new click on an image without a known position
    is stored as its true location (and the page reruns), on any other image it is ignored."""
    truth = resolved.truth
    m = view.prediction_map(pred, predictor.polygons(), predictor.tokens, predictor.cell_places(), truth,
                            log_scale, MAP_HEIGHT)
    clears = st.session_state.get(CLEARS_KEY, 0)
    click = ui_map.map_widget(m, key=f"geolocate_map_{image.digest[:12]}_{clears}", height=MAP_HEIGHT)
    st.caption(f"Every one of the {predictor.n_cells} cells is coloured by its probability "
               f"({'log' if log_scale else 'linear'} colour bar, bottom right). Red dot: the predicted point"
               + ("; green dot: the true location." if truth is not None else "."))
    action = view.click_action(click, resolved.click, truth)
    if action == view.CLICK_IGNORE:
        st.caption(view.ignored_click_note(truth))
    elif action == view.CLICK_STORE:
        st.session_state[CLICK_KEY] = view.bound_click(image.digest, click)
        st.rerun()


def score_section(resolved: view.TruthResolution, pred: Prediction) -> None:
    """Distance and GeoGuessr score against the true location, or a request to click the map."""
    if resolved.exif_problem:
        st.warning(resolved.exif_problem)  # "EXIF GPS is invalid: <reason>" (workbench.data.exif)
    truth = resolved.truth
    if truth is None:
        st.info("This image has no known position: click the map where it was taken to score the guess.")
        return
    result = view.score(truth, pred.lat, pred.lon)
    c1, c2 = st.columns(2)
    c1.metric("Distance", fmt_km(result.distance_km))
    c2.metric("GeoGuessr score", fmt_num(result.geoguessr, 0), help="5000 exp(-d / 1492.7 km), 0 .. 5000")
    st.caption(f"True location: {fmt_latlon(truth.lat, truth.lon)}, from {truth.source}.")
    if truth.source == view.TRUTH_CLICK:
        st.button("Clear the clicked location", key="geolocate_clear", on_click=clear_truth)


def cells_section(predictor: GeoPredictor, pred: Prediction) -> None:
    st.dataframe(view.cells_table(pred), hide_index=True, key="geolocate_cells",
                 column_config={
                     "probability": st.column_config.ProgressColumn(
                         "probability", format="%.1f%%", min_value=0.0, max_value=100.0),
                     "lat": st.column_config.NumberColumn("lat", format="%.4f"),
                     "lon": st.column_config.NumberColumn("lon", format="%.4f")})
    st.caption(f"Model: `{predictor.source}` · {predictor.n_cells} cells · "
               f"{predictor.cfg.model.backbone} at {predictor.cfg.data.image_size} px")


def confidence_section(source: Source, predictor: GeoPredictor, pred: Prediction) -> None:
    """How peaked the answer is, whether the image is out of distribution, and the verdict."""
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
    level, message = view.confidence_verdict(conf)
    getattr(st, level)(message)
    caption = view.ood_caption(conf)
    if caption is not None:
        st.caption(caption)


# == Errors =================================================================================

GALLERY_COLUMNS = 4
CELL_MAP_HEIGHT = 420


@st.cache_data(show_spinner="Reading predictions ...", max_entries=8)
def load_predictions(folder: str, stamp: int) -> ea.SavedPredictions:
    return ea.load_saved_predictions(folder)


@st.cache_data(show_spinner=False, max_entries=256)
def small_map(polygons: bytes, probs: tuple, pred: tuple, true: tuple):
    """The static map of one gallery item; polygons: float64 bytes of [len(probs), 4, 2]."""
    poly = np.frombuffer(polygons, dtype=np.float64).reshape(len(probs), -1, 2)
    return render_prediction_map(poly, probs, pred, true, width=320)


def prediction_sources() -> list[Source]:
    """The sources with saved predictions; without one, a note on where they come from ([])."""
    sources = list_sources("geolocator", need="predictions.parquet")
    if not sources:
        st.info("No saved geolocator predictions yet. A geolocator run writes artifacts/predictions.parquet when "
                "it finishes; the demo bundle checkpoints/geolocator-demo holds the demo's.")
    return sources


def predictions_picker(sources: list[Source]) -> ea.SavedPredictions | None:
    """The chosen source's predictions with a one-line summary, or None after an error box."""
    labels = [s.label for s in sources]
    choice = st.selectbox("Predictions of", labels, key="errors_source")
    source = sources[labels.index(choice)]
    try:
        saved = load_predictions(str(source.artifacts), source.stamp("predictions.parquet"))
    except WorkbenchError as exc:
        st.error(str(exc))
        return None
    st.caption(ea.predictions_summary(saved))
    return saved


def metrics_section(saved: ea.SavedPredictions) -> None:
    """Model vs oracle vs most-frequent cell (nothing when metrics.json has none)."""
    table = ea.metrics_table(saved.metrics, ea.predictions_split(saved.metrics))
    if not len(table):
        return
    st.subheader("Model vs oracle vs most-frequent cell")
    st.dataframe(ea.metrics_display(table), key="errors_metrics")
    st.caption("Accuracies (acc@ km, cell top-1 / top-5) and macro F1 in percent; GeoGuessr: mean "
               "points per guess (0 .. 5,000); errors in km.")
    st.plotly_chart(thresholds_figure(ea.threshold_rows(table)), key="errors_thresholds")


def worst_errors_section(saved: ea.SavedPredictions) -> None:
    """The K largest errors, filterable by true and predicted cell, as a gallery."""
    frame = saved.frame
    st.subheader("Worst errors")
    options = ea.cell_filter_options(frame)
    c1, c2, c3 = st.columns(3)
    true_token = c1.selectbox("True cell", options, key="errors_true")
    pred_token = c2.selectbox("Predicted cell", options, key="errors_pred")
    k = c3.slider("K", 4, 48, 12, step=4, key="errors_k")
    worst = ea.worst_errors(frame, k, ea.cell_filter(true_token), ea.cell_filter(pred_token))
    if worst.empty:
        st.info("No image matches these filters.")
    else:
        gallery(ea.gallery_items(worst, saved.partition.polygons()))


def gallery(items: list[ea.GalleryItem]) -> None:
    """Image, static map and caption of each item, filling GALLERY_COLUMNS columns in turn."""
    cols = st.columns(GALLERY_COLUMNS)
    for i, item in enumerate(items):
        with cols[i % GALLERY_COLUMNS]:
            if item.image is not None:
                st.image(item.image, width="stretch")
            else:
                st.caption(ea.IMAGE_MISSING)
            st.image(small_map(item.polygons, item.probs, item.pred, item.true), width="stretch")
            st.markdown(item.caption)


def per_cell_section(saved: ea.SavedPredictions) -> pd.DataFrame:
    """The map of every cell's top-1 accuracy; returns ``per_cell_accuracy``."""
    per_cell = ea.per_cell_accuracy(saved.frame, saved.partition)
    st.subheader("Per-cell accuracy")
    m = ui_map.make_map(zoom=1, height=CELL_MAP_HEIGHT)
    ui_map.add_polygons(m, saved.partition.polygons(), per_cell["accuracy"].to_numpy(), colormap="RdYlGn_11",
                        vmin=0.0, vmax=1.0, tooltips=ea.cell_tooltips(per_cell), name="accuracy",
                        legend="top-1 accuracy of the true cell (grey: no images)")
    ui_map.map_widget(m, key="errors_cell_map", height=CELL_MAP_HEIGHT)
    return per_cell


def confusion_section(frame: pd.DataFrame, per_cell: pd.DataFrame) -> None:
    """The most-confused cell pairs next to class size vs accuracy."""
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**Most-confused pairs** for the least accurate cells")
        st.dataframe(ea.pairs_display(ea.confused_pairs(frame, per_cell)), hide_index=True, key="errors_pairs")
    with c2:
        st.plotly_chart(class_size_figure(per_cell), key="errors_class_size")
