"""Soft-Prompt Explorer: click the map -> a soft-prompt model's K mixture weights, what its
top entries mean, the nearest cities by predicted sequence, and the latency of the call."""
import streamlit as st

from workbench.ui.widgets import page_setup

page_setup()

from workbench.lines.softprompt import ui  # noqa: E402

st.title("Soft-Prompt Explorer")
st.caption("GPS -> frozen GeoCLIP -> mixture over K learnable soft-token sequences. Click anywhere on the map.")

sources = ui.model_sources()  # none: a note on how to make one
if not sources:
    st.stop()

chosen, top = ui.model_picker(sources)
models = ui.load_models(chosen)  # an error box for each that does not load
if not models:
    st.stop()

click = ui.explorer_map(models[0])
ui.click_reports(click, models, top)
ui.metrics_section(models)
