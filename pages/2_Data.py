"""Data: browse a dataset's points, build an S2 partition, read its oracle table, write
overfit subsets."""
import streamlit as st

from workbench.ui.widgets import page_setup

page_setup()

from workbench.data import catalog  # noqa: E402
from workbench.errors import WorkbenchError  # noqa: E402
from workbench.ui import data_page as ui  # noqa: E402

st.title("Data")
try:
    root = catalog.data_root()  # a bad $WORKBENCH_DATA: nothing below can work
except WorkbenchError as exc:
    st.error(str(exc))
    st.stop()
try:
    datasets = catalog.list_datasets(root)
except WorkbenchError as exc:
    st.error(str(exc))
    datasets = []

if not datasets:
    st.info(f"No dataset in `{root}` yet. Build the demo datasets with "
            f"`{catalog.BUILD_HINT}`, or add a CSV of your own below.")
else:
    info = ui.dataset_picker(datasets)
    points = ui.load_or_error(info)
    if points is not None:
        ui.overview(points)
        ui.partition_section(info)
ui.register_form(root)
