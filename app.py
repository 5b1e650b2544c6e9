"""Geo Workbench (`streamlit run app.py`): the navigation. Home is ``home.home_page``; the
other pages are the scripts in pages/, at the same URL paths as without navigation."""
import streamlit as st

from workbench.ui.widgets import page_setup

page_setup()

from workbench.ui import home  # noqa: E402

st.navigation(home.navigation_pages()).run()
