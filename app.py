"""Geo Workbench: the Home page (`streamlit run app.py`); the other pages live in pages/."""
import streamlit as st

from workbench.ui.widgets import page_setup

page_setup()

from workbench.ui import home  # noqa: E402

st.title("Geo Workbench")
st.markdown(
    "A research workbench for **geographic contrastive learning** and **image geolocation**. "
    "Launch training runs from the browser and watch them live, probe location models on a "
    "map, geolocate photos, and inspect embeddings and worst errors. Everything here is also "
    "available from `python -m workbench ...` and from Python; jobs run as background "
    "processes, so closing the app stops nothing."
)

left, right = st.columns([2, 1])
with left:
    st.subheader("Demo assets")
    home.assets_section()
with right:
    st.subheader("Pages")
    home.page_links()
    st.subheader("Jobs")
    home.jobs_section()
