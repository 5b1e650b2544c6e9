"""The Data page's sections: pick a dataset, see its points, build an S2 partition, read the
oracle table, save the partition and write overfit subsets.

Heavy work stays out of the request path: loading a dataset and building a partition are
``st.cache_data`` functions keyed by the CSV's (path, mtime, size) and the partition
parameters, so a rerun with the same choices costs only drawing. The partition section is a
fragment: moving a slider reruns it alone, not the points map above it.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import folium
import numpy as np
import pandas as pd
import streamlit as st

from workbench.data import catalog
from workbench.data.catalog import DatasetInfo
from workbench.data.subsets import make_overfit_subset
from workbench.errors import WorkbenchError
from workbench.geo import Partition, build_partition, oracle_table
from workbench.ui.fmt import MISSING, fmt_count, fmt_pct
from workbench.ui.map import add_heat, add_polygons, make_map, map_widget
from workbench.ui.widgets import flash, show_flash
from workbench.viz.data_figures import class_size_histogram, oracle_frame, split_table

# Choices for t_min / t_max: roughly log-spaced, so one slider spans tiny and 100K datasets.
THRESHOLDS = (1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 300, 500, 1000, 2000, 3000, 5000,
              10_000, 20_000, 50_000)
MIN_LEVEL = 2  # 96 cells of ~2500 km to start from (build_partition's default)
LEVELS = (3, 20)  # range of the max-level slider
DEFAULT_MAX_LEVEL = 20
MAX_DRAWN_CELLS = 3000  # ~0.4 kB of GeoJSON each: keep the map payload near 1 MB
HEAT_BIN_DEG = 0.5  # 100K points -> ~9K weighted heat points (~0.2 MB)
DATASET_KEY = "data_dataset"
SELECT_NEXT = "data_select_next"  # a dataset to select on the next run (after registering)
FLASH = "data_register"
ACTIONS_FLASH = "data_actions"


def widget_key(name: str, info: DatasetInfo) -> str:
    """Per-dataset widget keys: each dataset keeps its own slider positions."""
    return f"data_{name}::{info.name}"


def default_thresholds(n_fit: int) -> tuple[int, int]:
    """(t_min, t_max) from THRESHOLDS giving a few hundred cells: t_max ~ n / 100 and
    t_min ~ t_max / 20 (100K points -> 50, 1000)."""
    options = np.asarray(THRESHOLDS)
    t_max = int(options[max(0, np.searchsorted(options, max(n_fit / 100, 2), "right") - 1)])
    t_min = int(options[max(0, np.searchsorted(options, t_max / 20, "right") - 1)])
    return t_min, t_max


# -- cached work -----------------------------------------------------------------------------

@st.cache_data(show_spinner="Loading the dataset...", max_entries=8)
def cached_points(signature: tuple[str, int, int], name: str, source: str) -> pd.DataFrame:
    """load_points of the dataset whose CSV is in ``signature`` (DatasetInfo.signature():
    path, mtime, size). The name and source travel with it so that load_points applies the
    catalog's checks (only files inside the allowed folders are read)."""
    return catalog.load_points(DatasetInfo(name, Path(signature[0]), source))


def points_of(info: DatasetInfo) -> pd.DataFrame:
    """The dataset's points through the cache (NotFoundError if its file has gone)."""
    return cached_points(info.signature(), info.name, info.source)


@dataclass
class PartitionView:
    """A partition of a dataset's fit rows and its oracle table on the eval rows."""

    partition: Partition
    oracle: dict | None  # None when the partition has no cell
    fit_name: str
    eval_name: str
    held_out: bool
    n_fit: int
    n_eval: int
    seconds: float  # building the partition and the oracle table, when first computed


@st.cache_data(show_spinner="Building the partition...", max_entries=32)
def cached_partition(signature: tuple[str, int, int], name: str, source: str, t_min: int,
                     t_max: int, min_level: int, max_level: int) -> PartitionView:
    """build_partition on the fit rows + oracle_table on the eval rows (see fit_eval_split)."""
    points = cached_points(signature, name, source)
    plan = catalog.fit_eval_split(points)
    lat, lon = points["lat"].to_numpy(), points["lon"].to_numpy()
    start = time.perf_counter()
    partition = build_partition(lat[plan.fit], lon[plan.fit], t_min=t_min, t_max=t_max,
                                min_level=min_level, max_level=max_level)
    oracle = oracle_table(partition, lat[plan.eval], lon[plan.eval]) if len(partition) else None
    return PartitionView(partition, oracle, plan.fit_name, plan.eval_name, plan.held_out,
                         int(plan.fit.sum()), int(plan.eval.sum()),
                         time.perf_counter() - start)


# -- maps ------------------------------------------------------------------------------------

def points_map(points: pd.DataFrame, height: int = 420) -> folium.Map:
    """A heat layer of every point, binned into HEAT_BIN_DEG cells (any N stays light)."""
    m = make_map(height=height)
    layer = add_heat(m, points["lat"].to_numpy(), points["lon"].to_numpy(),
                     bin_deg=HEAT_BIN_DEG, radius=10, blur=10, name="points")
    # Leaflet.heat saturates at a weight of 1 per pixel: bins of hundreds of points would
    # paint every continent red. Log-scaled counts in (0, 1] keep dense and sparse apart.
    data = np.asarray(layer.data, dtype=np.float64).reshape(-1, 3)  # [M, 3] lat, lon, count
    if len(data):
        data[:, 2] = np.log1p(data[:, 2]) / np.log1p(data[:, 2].max())
        layer.data = data.round(4).tolist()
    return m


def cells_map(partition: Partition, height: int = 480,
              max_cells: int = MAX_DRAWN_CELLS) -> tuple[folium.Map, int]:
    """The partition's cells coloured by training points per cell; returns (map, drawn).

    Beyond ``max_cells`` only the most populated cells are drawn. Cells are SVG paths
    (not the shared canvas renderer): a few thousand paths draw fine and stay crisp.
    """
    m = make_map(height=height)
    m.options["prefer_canvas"] = False
    cells = partition.cells
    keep = np.arange(len(cells))
    if len(cells) > max_cells:
        keep = np.sort(np.argsort(-cells["count"].to_numpy(), kind="stable")[:max_cells])
    if keep.size:
        polygons = np.round(partition.polygons()[keep], 5)  # ~1 m: smaller page, same look
        shown = cells.iloc[keep]
        tips = (shown["token"] + " | level " + shown["level"].astype(str) + " | "
                + shown["count"].map(fmt_count) + " points").tolist()
        add_polygons(m, polygons, shown["count"].to_numpy(np.float64), colormap="YlOrRd_09",
                     tooltips=tips, opacity=0.55, name="cells",
                     legend="training points per cell")
    return m, int(keep.size)


# -- sections --------------------------------------------------------------------------------

def dataset_picker(datasets: list[DatasetInfo]) -> DatasetInfo:
    by_name = {d.name: d for d in datasets}
    if st.session_state.get(SELECT_NEXT) in by_name:  # before the widget exists, or it refuses
        st.session_state[DATASET_KEY] = st.session_state.pop(SELECT_NEXT)
    name = st.selectbox("Dataset", list(by_name), key=DATASET_KEY,
                        format_func=lambda n: f"{n}  ({by_name[n].source})")
    info = by_name[name]
    st.caption(f"`{info.csv}`" + (f" · {info.description}" if info.description else ""))
    return info


def load_or_error(info: DatasetInfo) -> pd.DataFrame | None:
    """The dataset's points, or None after an st.error saying what is wrong with it."""
    try:
        return points_of(info)
    except WorkbenchError as exc:
        st.error(str(exc))
        return None


def overview(points: pd.DataFrame) -> None:
    """Sample counts per split and a density map of the points."""
    counts = catalog.split_counts(points)
    left, right = st.columns([1, 3])
    with left:
        st.metric("samples", fmt_count(len(points)))
        st.dataframe(split_table(counts), hide_index=True, key="data_split_counts")
        labels = [c for c in points.columns if c not in ("lat", "lon", "split")]
        if labels:
            st.caption("other columns: " + ", ".join(labels))
    with right:
        map_widget(points_map(points), key="data_points_map", height=420)


@st.fragment
def partition_section(info: DatasetInfo) -> None:
    """Sliders -> cached partition -> cells map, class sizes, oracle table, actions."""
    st.subheader("S2 partition")
    try:
        signature = info.signature()
        plan = catalog.fit_eval_split(cached_points(signature, info.name, info.source))
    except WorkbenchError as exc:
        st.error(str(exc))
        return
    t_min_default, t_max_default = default_thresholds(int(plan.fit.sum()))
    c1, c2, c3 = st.columns(3)
    t_min = c1.select_slider("t_min (drop cells with fewer points)", THRESHOLDS,
                             value=t_min_default, key=widget_key("tmin", info))
    t_max = c2.select_slider("t_max (split cells with more points)", THRESHOLDS,
                             value=t_max_default, key=widget_key("tmax", info))
    max_level = c3.slider("max level (finest S2 level)", *LEVELS, value=DEFAULT_MAX_LEVEL,
                          key=widget_key("maxlevel", info))
    params = dict(t_min=int(t_min), t_max=int(t_max), min_level=MIN_LEVEL,
                  max_level=int(max_level))
    try:
        view = cached_partition(signature, info.name, info.source, **params)
    except WorkbenchError as exc:
        st.error(str(exc))
        return
    partition = view.partition
    in_cell = int(partition.cells["count"].sum())
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("cells", fmt_count(len(partition)))
    levels = partition.levels
    m2.metric("levels", f"{levels[0]}-{levels[-1]}" if levels else MISSING)
    # Short values only: st.metric cuts long ones ("34,006 / 34,0..."); the counts go below.
    m3.metric(f"{view.fit_name} samples in a cell",
              fmt_pct(in_cell / view.n_fit) if view.n_fit else MISSING)
    m4.metric("build + oracle", f"{view.seconds:.2f} s")
    st.caption(f"{fmt_count(in_cell)} of {fmt_count(view.n_fit)} {view.fit_name} samples lie "
               f"in a kept cell (cells with fewer than t_min = {fmt_count(t_min)} points are "
               f"dropped).")
    if not len(partition):
        st.warning(f"No cell holds t_min = {fmt_count(t_min)} points of the {view.fit_name} "
                   f"split ({fmt_count(view.n_fit)} samples): lower t_min.")
        return

    m, drawn = cells_map(partition)
    if drawn < len(partition):
        st.caption(f"Drawing the {drawn:,} most populated of {len(partition):,} cells; raise "
                   f"t_max for fewer, larger cells.")
    map_widget(m, key="data_cells_map", height=480)

    left, right = st.columns(2)
    with left:
        st.plotly_chart(class_size_histogram(partition.cells["count"].to_numpy(), t_min, t_max),
                        key="data_class_sizes")
    with right:
        st.markdown("**Oracle** (every sample predicted as its cell's centroid: the best any "
                    "classifier on this partition can do)")
        st.dataframe(oracle_frame(view.oracle), hide_index=True, key="data_oracle")
        where = (f"on the **{view.eval_name}** split ({fmt_count(view.n_eval)} samples), cells "
                 f"built on **{view.fit_name}** ({fmt_count(view.n_fit)})" if view.held_out else
                 f"on the {fmt_count(view.n_eval)} samples the cells were built from (no val / "
                 f"test split in this dataset)")
        st.caption(f"Measured {where}. Samples outside every cell count with the nearest "
                   f"centroid.")
    actions(info, partition, params)


def actions(info: DatasetInfo, partition: Partition, params: dict) -> None:
    """Save the partition next to the dataset; write overfit-1 / overfit-5 subsets."""
    save, one, five = st.columns(3)
    try:
        if save.button("Save partition", key="data_save_partition"):
            path = partition.save(catalog.partition_path(info, **params))
            st.success(f"Saved {fmt_count(len(partition))} cells to {path}")
        for column, k in ((one, 1), (five, 5)):
            if column.button(f"Create overfit-{k} subset", key=f"data_overfit_{k}",
                             disabled=info.source == "subset",
                             help=f"{k} training sample(s) per cell, written next to the "
                                  f"dataset in the same format"):
                subset = make_overfit_subset(info, partition, k)
                short = f"; {subset.n_short} cells have fewer than {k}" if subset.n_short else ""
                flash(ACTIONS_FLASH, "success", f"Wrote {fmt_count(subset.n_rows)} rows "
                      f"({fmt_count(subset.n_classes)} cells x up to {k}){short} to {subset.path}")
                st.rerun()  # the whole page, so the dataset list shows the new subset
    except WorkbenchError as exc:
        st.error(str(exc))
    show_flash(ACTIONS_FLASH)


def register_form(root: Path) -> None:
    """Add a CSV of points: upload it (saved as <root>/uploads/<name>.csv), or give the path
    of one inside the allowed folders. Either way it is kept in <root>/datasets.json."""
    with st.expander("Add a CSV dataset"):
        st.caption("A CSV with lat, lon columns (degrees), optionally split (train/val/test) "
                   "and path (image file relative to the CSV).")
        upload, by_path = st.tabs(["Upload a CSV", "A CSV already on the server"])
        with upload:
            _upload_form(root)
        with by_path:
            _path_form(root)
    show_flash(FLASH)


def _upload_form(root: Path) -> None:
    file = st.file_uploader("CSV file", type=["csv"], key="data_upload")
    name = st.text_input("Name (optional: the file's name made safe)", key="data_upload_name")
    st.caption(f"Saved as `{root / catalog.UPLOADS}/<name>.csv`.")
    if st.button("Add the upload", key="data_register_upload", disabled=file is None):
        _register(lambda: catalog.register_upload(file.name, file.getvalue(), name or None,
                                                  root=root))


def _path_form(root: Path) -> None:
    try:
        folders = catalog.allowed_folders(root)
    except WorkbenchError as exc:  # a bad $WORKBENCH_DATA_PATHS
        st.error(str(exc))
        return
    st.caption("Only CSVs inside these folders can be added by path: "
               + ", ".join(f"`{f}`" for f in folders)
               + f". To add a folder, start the app with `{catalog.PATHS_ENV}` set to it "
               f"(several separated by `{os.pathsep}`).")
    path = st.text_input("CSV path (absolute, or relative to the data folder)",
                         key="data_register_path")
    name = st.text_input("Name (optional: the file's name)", key="data_register_name")
    if st.button("Register", key="data_register"):
        if not path.strip():
            st.error("enter the path of a CSV file with lat, lon columns")
            return
        _register(lambda: catalog.register_dataset(path.strip(), name or None, root=root))


def _register(add) -> None:
    """Run ``add()`` (a catalog registration); on success select the new dataset."""
    try:
        info = add()
    except WorkbenchError as exc:
        st.error(str(exc))
    else:
        flash(FLASH, "success", f"Registered {info.name} ({info.csv})")
        st.session_state[SELECT_NEXT] = info.name
        st.rerun()
