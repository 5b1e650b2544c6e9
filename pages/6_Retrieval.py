"""Retrieval: the shared image-text space of any line's models (projection heads on frozen
encoders, CLIP from scratch), side by side. Type a caption -> each model's nearest test
images (tiles and places on the map); pick a test image -> each model's nearest captions;
the test R@K of the selected models next to their untrained versions and baselines."""
import streamlit as st

from workbench.ui.widgets import page_setup

page_setup()

from workbench.lines.projection import ui  # noqa: E402

st.title("Retrieval")
st.caption("Image-text models in one shared space: projection heads over frozen encoders, CLIP trained from "
           "scratch. Pick several to compare them on the same queries.")

sources = ui.model_sources()  # none: a note on how to make one
chosen = ui.model_picker(sources) if sources else []
models = ui.load_models(chosen)  # an error box for each that does not load
if not models:
    st.stop()

for lp in models:
    st.caption(ui.model_caption(lp))
ui.text_search(models)
ui.image_search(models)
ui.metrics_section(models)
