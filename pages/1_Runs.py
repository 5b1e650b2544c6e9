"""Runs: launch training jobs, watch them live, stop / resume / delete, compare."""
import streamlit as st

from workbench.ui.widgets import page_setup

page_setup()

from workbench.ui import runs as ui  # noqa: E402

st.title("Runs")
jobs = ui.open_jobs()  # a bad setting (e.g. WORKBENCH_MAX_JOBS=abc): error box, page stops
statuses = ui.load_statuses(jobs)
ui.tensorboard_note(jobs.store.root)
ui.runs_table(jobs, statuses)

monitor, launch, compare = st.tabs(ui.TABS, key=ui.TAB_KEY, on_change="rerun")
with monitor:
    show = ui.run_picker(statuses)
    if show[0] is None:
        st.caption("Launch a run to watch it here.")
    else:
        run, status = show
        ui.run_actions(jobs, run, status)
        ui.live_run(jobs, run, status)
with launch:
    ui.launch_section(jobs)
with compare:
    ui.compare_section(statuses)
