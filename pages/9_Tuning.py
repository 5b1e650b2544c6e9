"""Tuning: hyper-parameter studies on Optuna over any line. Start one from a line's preset,
watch its trials live (each one a run on the Runs page) with Optuna's plots, stop / resume
it, launch the best config. The study runs as a background process; the page only reads."""
import streamlit as st

from workbench.ui.widgets import page_setup

page_setup()

from workbench.ui import tuning as ui  # noqa: E402

st.title("Tuning")
root = ui.runs_root()
ui.dashboard_note(root)
ui.follow_started()
studies, new = st.tabs(ui.TABS, key=ui.TAB_KEY, on_change="rerun")
with studies:
    name = ui.study_picker(root)
    if name:
        ui.study_view(root, name)
with new:
    ui.new_study_section(root)
