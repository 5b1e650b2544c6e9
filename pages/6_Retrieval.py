"""Retrieval: a projection model's shared image-text space. Type a caption -> the nearest
test images (tiles and places on the map); pick a test image -> its nearest captions; the
test R@K of the selected models next to their untrained heads and baselines."""
import streamlit as st

from workbench.ui.widgets import page_setup

page_setup()

from workbench.lines.projection import ui  # noqa: E402

st.title("Retrieval")
st.caption("Frozen image and text embeddings -> trained projection heads -> one shared space.")

sources = ui.model_sources()  # none: a note on how to make one
chosen = ui.model_picker(sources) if sources else []
models = ui.load_models(chosen)  # an error box for each that does not load
if not models:
    st.stop()

st.caption(ui.model_caption(models[0]))
ui.text_search(models[0])
ui.image_search(models[0])
ui.metrics_section(models)
