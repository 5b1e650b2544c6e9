"""Embeddings: any run's or bundle's embedding space in 2-D / 3-D (PCA, UMAP, t-SNE), every
point drawn (WebGL), coloured by any metadata column; a box / lasso selection -> those points
on the offline map, their nearest neighbours in the original space and a gallery; a click on
the map -> the points near it ringed in the scatter; two projections side by side.
Projections run as background jobs and are cached; the page only reads them."""
import streamlit as st

from workbench.ui.widgets import page_setup

page_setup()

from workbench.ui import embeddings as ui  # noqa: E402

st.title("Embeddings")
st.caption("t-SNE / UMAP / PCA of an embedding set, linked to the map. Projections are computed by jobs "
           "(`python -m workbench embed ...`) and cached by the data and every parameter.")

ref, x, meta = ui.pick_and_load()
ready = ui.projections(ref, x, meta)  # stops until the first projection is computed
rows = ready[0][2]["rows"]
shown = meta.iloc[rows].reset_index(drop=True)
chosen, highlight = ui.scatters(ready, ref, shown)
ui.selection_section(x[rows], shown, chosen, highlight, ref, ready[0][1].metric)
