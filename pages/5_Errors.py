"""Errors: where a geolocator goes wrong. Metrics next to the partition's oracle and a
most-frequent-cell baseline, the worst-K gallery (filterable by true / predicted cell),
per-cell accuracy on the map, the most-confused cell pairs, class size vs accuracy."""
from pathlib import Path

import streamlit as st

from workbench.ui.widgets import page_setup

page_setup()

import numpy as np  # noqa: E402

from workbench.errors import WorkbenchError  # noqa: E402
from workbench.geolocator import errors_analysis as ea  # noqa: E402
from workbench.geolocator.sources import list_sources  # noqa: E402
from workbench.ui.fmt import fmt_count  # noqa: E402
from workbench.ui.map import add_polygons, make_map, map_widget  # noqa: E402
from workbench.viz.geolocator_figures import (  # noqa: E402
    class_size_figure,
    render_prediction_map,
    thresholds_figure,
)

ALL = "(all)"
GALLERY_COLUMNS = 4


@st.cache_data(show_spinner="Reading predictions ...", max_entries=8)
def load(folder: str, stamp: int) -> ea.SavedPredictions:
    return ea.load_saved_predictions(folder)


@st.cache_data(show_spinner=False, max_entries=256)
def small_map(polygons: bytes, probs: tuple, pred: tuple, true: tuple):
    poly = np.frombuffer(polygons, dtype=np.float64).reshape(len(probs), -1, 2)
    return render_prediction_map(poly, probs, pred, true, width=320)


def gallery(rows, polygons: np.ndarray) -> None:
    cols = st.columns(GALLERY_COLUMNS)
    for i, row in enumerate(rows.itertuples(index=False)):
        with cols[i % GALLERY_COLUMNS]:
            path = getattr(row, "path", None)
            if path and Path(path).is_file():
                st.image(path, width="stretch")
            else:
                st.caption("image not available (build the data: python -m workbench data build-demo)")
            cells = np.asarray(row.topk_cells, dtype=np.int64)
            st.image(small_map(polygons[cells].tobytes(), tuple(np.asarray(row.topk_probs, float).tolist()),
                               (row.pred_lat, row.pred_lon), (row.true_lat, row.true_lon)), width="stretch")
            st.markdown(ea.error_caption(row.distance_km, row.true_token, row.pred_token,
                                         getattr(row, "place", ""), row.topk_tokens, row.topk_probs))


st.title("Errors")
sources = list_sources(need="predictions")
if not sources:
    st.info("No saved geolocator predictions yet. A geolocator run writes artifacts/predictions.parquet when it "
            "finishes; the demo bundle checkpoints/geolocator-demo holds the demo's.")
    st.stop()

labels = [s.label for s in sources]
choice = st.selectbox("Predictions of", labels, key="errors_source")
source = sources[labels.index(choice)]
try:
    saved = load(str(source.predictions_folder), source.stamp())
except WorkbenchError as exc:
    st.error(str(exc))
    st.stop()
frame, partition = saved.frame, saved.partition
split = saved.metrics.get("predictions_split") or saved.metrics.get("split") or "val"
st.caption(f"{fmt_count(len(frame))} {split} images · {fmt_count(len(partition))} cells · `{saved.folder}`")

table = ea.metrics_table(saved.metrics, split)
if len(table):
    st.subheader("Model vs oracle vs most-frequent cell")
    st.dataframe(ea.metrics_display(table), key="errors_metrics")
    st.caption("Accuracies (acc@ km, cell top-1 / top-5) and macro F1 in percent; GeoGuessr: mean "
               "points per guess (0 .. 5,000); errors in km.")
    st.plotly_chart(thresholds_figure({name: row.to_dict() for name, row in table.iterrows()}),
                    key="errors_thresholds")

st.subheader("Worst errors")
tokens = sorted(set(frame["true_token"]) | set(frame["pred_token"]))
c1, c2, c3 = st.columns(3)
true_token = c1.selectbox("True cell", [ALL] + tokens, key="errors_true")
pred_token = c2.selectbox("Predicted cell", [ALL] + tokens, key="errors_pred")
k = c3.slider("K", 4, 48, 12, step=4, key="errors_k")
worst = ea.worst_errors(frame, k, None if true_token == ALL else true_token, None if pred_token == ALL else pred_token)
if worst.empty:
    st.info("No image matches these filters.")
else:
    gallery(worst, partition.polygons())

per_cell = ea.per_cell_accuracy(frame, partition)
st.subheader("Per-cell accuracy")
m = make_map(zoom=1, height=420)
tips = ea.cell_tooltips(per_cell)
add_polygons(m, partition.polygons(), per_cell["accuracy"].to_numpy(), colormap="RdYlGn_11", vmin=0.0, vmax=1.0,
             tooltips=tips, name="accuracy", legend="top-1 accuracy of the true cell (grey: no images)")
map_widget(m, key="errors_cell_map", height=420)

c1, c2 = st.columns(2)
with c1:
    st.markdown("**Most-confused pairs** for the least accurate cells")
    st.dataframe(ea.pairs_display(ea.confused_pairs(frame, per_cell)), hide_index=True, key="errors_pairs")
with c2:
    st.plotly_chart(class_size_figure(per_cell), key="errors_class_size")
