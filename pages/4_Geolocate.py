"""Geolocate: a test tile, a sample photo or an upload -> the model's probability over every
S2 cell on the map, how peaked it is and whether to trust it, the predicted point and place.
The true location comes from the tile's data set position, the photo's EXIF GPS or a click
on the map -> distance and GeoGuessr score."""
import streamlit as st

from workbench.ui.widgets import page_setup

page_setup()

from workbench.lines.geolocator import geolocate_view as view  # noqa: E402
from workbench.lines.geolocator import ui  # noqa: E402

st.title("Geolocate")
st.caption("Where was this image taken? The classifier spreads its probability over S2 cells; the map "
           "colours every cell by its probability.")

sources = ui.geolocator_models()  # none: a warning that says how to make one
if not sources:
    st.stop()

left, right = st.columns([2, 3])
with left:
    source = ui.model_picker(sources)
    pick = ui.image_picker()
    options = ui.prediction_options()

predictor = ui.loaded_model(source)  # None: an error box says why
if predictor is None:
    st.stop()

image = view.choose_image(pick.sample, pick.upload)
if image is None:
    with right:
        ui.ask_for_image(pick.kind)
    st.stop()

pred = ui.prediction(source, predictor, image, options)  # None: an error box (e.g. not an image)
if pred is None:
    st.stop()
resolved = view.resolve_truth(image, st.session_state.get(ui.CLICK_KEY))

with left:
    ui.image_section(image, pred)
    conf_box = st.container()  # filled after the map: the OOD reference may take seconds once

with right:
    ui.map_section(predictor, pred, image, resolved, options.log_scale)  # a new click reruns the page
    ui.score_section(resolved, pred)
    ui.cells_section(predictor, pred)

with conf_box:
    ui.confidence_section(source, predictor, pred)
