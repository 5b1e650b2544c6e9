"""Embeddings: any run's or bundle's embedding space in 2-D / 3-D (PCA, UMAP, t-SNE), every
point drawn (WebGL), coloured by any metadata column; a box / lasso selection -> those points
on the offline map, their nearest neighbours in the original space and a gallery; a click on
the map -> the points near it ringed in the scatter; two projections side by side.
Projections run as background jobs and are cached; the page only reads them."""
import numpy as np
import streamlit as st

from workbench.ui.widgets import page_setup

page_setup()

from workbench.errors import WorkbenchError  # noqa: E402
from workbench.ui import embeddings as ui  # noqa: E402

st.title("Embeddings")
st.caption("t-SNE / UMAP / PCA of an embedding set, linked to the map. Projections are computed by jobs "
           "(`python -m workbench embed ...`) and cached by the data and every parameter.")

ref = ui.pick_set()
if ref is None:
    st.stop()
try:
    x, meta = ui.load(ref)
except WorkbenchError as exc:
    st.error(f"{ref.key}: {exc}")
    st.stop()

compare = st.toggle("Compare with a second projection (of this set or another run's)", value=False,
                    key="em_compare")
panels = [("em", "Projection", ref, x, meta)]
if compare:
    ref2 = ui.pick_set(key="em_set2", label="Second embedding set", default=ref)
    try:
        x2, meta2 = (x, meta) if ref2 == ref else ui.load(ref2)
        panels.append(("em2", "Second projection", ref2, x2, meta2))
    except WorkbenchError as exc:
        st.error(f"{ref2.key}: {exc}")
ready = []
for widget, title, pref, px, pmeta in panels:
    if compare:
        st.markdown(f"**{title}** · {pref.key}")
    params = ui.params_form(len(px), key=widget)
    try:
        key = ui.projection_key(pref, params.check())
    except WorkbenchError as exc:
        st.error(str(exc))
        continue
    if ui.job_panel(pref, params, key, widget).get("state") == "done":
        ready.append((widget, params, ui.result(key), pref, pmeta))
if not ready or ready[0][3] != ref:
    st.stop()

rows = ready[0][2]["rows"]
shown = meta.iloc[rows].reset_index(drop=True)
c1, c2 = st.columns([3, 1])
color = c1.selectbox("Colour by", ui.color_columns(shown), key="em_color")
join = c2.checkbox("Join paired points", value=False, key="em_join",
                   help="a line from each image to its captions (the set's 'group' column)")
highlight = ui.near_click(shown, st.session_state.get("em_click"))
chosen = np.zeros(0, np.int64)
for col, (widget, params, res, pref, pmeta) in zip(st.columns(len(ready)), ready):
    with col:
        st.caption(ui.quality_caption(res))
        linked = pref == ref and np.array_equal(res["rows"], rows)
        own = shown if linked else pmeta.iloc[res["rows"]].reset_index(drop=True)
        own_color = color if color in own else ui.color_columns(own)[0]
        if not linked:
            st.caption("Another set, or other points of this one (another seed or max points): its selection is "
                       "shown here only, not linked to the map.")
        event = st.plotly_chart(ui.scatter(res["coords"], own, own_color, highlight if linked else None, join),
                                key=f"{widget}_scatter", on_select="rerun", selection_mode=("box", "lasso"),
                                width="stretch", theme=None)  # no theme pass over 100k points in the browser
        if linked:
            chosen = np.union1d(chosen, ui.selected_points(event))

st.subheader(f"Selection: {len(chosen):,} point{'s' if len(chosen) > 1 else ''}" if len(chosen) else "Selection")
if not len(chosen):
    st.caption(f"Draw a box or a lasso on the scatter to see those points on the map (and their images in a "
               f"gallery). A click on the map rings "
               f"the points within {ui.NEAR_KM:.0f} km of it in the scatter ({len(highlight):,} now).")
left, right = st.columns([3, 2])
with left:
    click = ui.selection_map(shown, chosen, key="em_map")
    if click and click != st.session_state.get("em_click"):
        st.session_state["em_click"] = click
        st.rerun()
with right:
    if len(chosen):
        st.markdown("**Nearest to the selection (original space)**")
        st.dataframe(ui.neighbours(x[rows], shown, chosen, ready[0][1].metric), hide_index=True, key="em_knn")
if len(chosen):
    ui.gallery(shown, chosen, ref)
    st.dataframe(shown.iloc[chosen].head(500), hide_index=True, key="em_selection")
