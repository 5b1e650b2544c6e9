"""Location embeddings: what a SatCLIP location encoder has learned about the Earth. A world
map coloured by the first three principal components of any location encoder; click it ->
the held-out tiles nearest to the point's location embedding and the places the encoder puts
next to it; the probe tables of the selected models beside the frozen baselines."""
import streamlit as st

from workbench.ui.widgets import page_setup

page_setup()

from workbench.lines.satclip import ui  # noqa: E402

st.title("Location embeddings")
st.caption("SatCLIP: multi-band tiles and their locations aligned in one space; the location encoder is the product.")

sources = ui.model_sources()  # none: a note on how to make one
chosen = ui.model_picker(sources) if sources else []
models = ui.load_models(chosen)  # an error box for each that does not load
if not models:
    st.stop()

st.caption(ui.model_caption(models[0]))
click, top = ui.pca_map(models)
ui.click_report(click, models[0], top)
ui.probe_section(models)
