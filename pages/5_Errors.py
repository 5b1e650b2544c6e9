"""Errors: where a geolocator goes wrong. Metrics next to the partition's oracle and a
most-frequent-cell baseline, the worst-K gallery (filterable by true / predicted cell),
per-cell accuracy on the map, the most-confused cell pairs, class size vs accuracy."""
import streamlit as st

from workbench.ui.widgets import page_setup

page_setup()

from workbench.lines.geolocator import ui  # noqa: E402

st.title("Errors")
sources = ui.prediction_sources()  # none: a note on where predictions come from
if not sources:
    st.stop()

saved = ui.predictions_picker(sources)  # None: an error box says why they did not load
if saved is None:
    st.stop()

ui.metrics_section(saved)
ui.worst_errors_section(saved)
per_cell = ui.per_cell_section(saved)
ui.confusion_section(saved.frame, per_cell)
