"""Tiny Streamlit page for tests/e2e/test_map_browser.py: one offline map that reports clicks."""

import numpy as np
import streamlit as st

from workbench.ui.map import add_heat, add_points, add_polygons, make_map, map_widget

st.set_page_config(page_title="map e2e", layout="wide")
st.session_state["runs"] = st.session_state.get("runs", 0) + 1  # the test checks panning does not rerun
m = make_map(center=(20.0, 0.0), zoom=2, height=450)
rng = np.random.default_rng(0)
add_heat(m, rng.normal(35.0, 4.0, 2000), rng.normal(105.0, 6.0, 2000))  # a blob over China
square = np.array([[-30, -60], [-30, -40], [-10, -40], [-10, -60]])  # (lat, lon)
cells = np.stack([square, square + [0, 20]])
add_polygons(m, cells, [0.0, 1.0], legend="error (km)")  # two squares over Brazil
cities = {"Paris": (48.8566, 2.3522), "New York": (40.7128, -74.006), "Sydney": (-33.8688, 151.2093)}
lat, lon = np.array(list(cities.values())).T
add_points(m, lat, lon, popup=list(cities))
click = map_widget(m, key="map", height=450)
if click is None:
    st.write("clicked: none")
else:
    st.write(f"clicked: lat={click['lat']:.4f}, lon={click['lon']:.4f}")
st.write(f"runs: {st.session_state['runs']}")
