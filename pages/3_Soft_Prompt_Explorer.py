"""Soft-Prompt Explorer: click the map -> a soft-prompt model's K mixture weights, what its
top entries mean, the nearest cities by predicted sequence, and the latency of the call."""
from pathlib import Path

import streamlit as st

from workbench.ui.widgets import page_setup

page_setup()


from workbench.errors import WorkbenchError  # noqa: E402
from workbench.softprompt import explorer  # noqa: E402
from workbench.ui.fmt import fmt_count, fmt_latlon, fmt_pct  # noqa: E402
from workbench.ui.map import add_polygons, make_map, map_widget  # noqa: E402
from workbench.viz.softprompt_figures import atlas_tooltips, entry_colormap, mixture_bar_figure  # noqa: E402

NONE = "(none)"
MAP_HEIGHT = 460


@st.cache_resource(show_spinner="Loading the model ...", max_entries=6)
def load(label: str, kind: str, path: str, stamp: int) -> explorer.ExplorerModel:
    return explorer.load_source(explorer.Source(label, kind, Path(path)))


@st.cache_resource(show_spinner="Computing the dictionary atlas ...", max_entries=8)
def atlas(path: str, stamp: int, step: float, _em: explorer.ExplorerModel) -> dict:
    grid = explorer.atlas_grid(_em, step)
    grid["tooltips"] = atlas_tooltips(grid["dominant"], grid["weight"], explorer.meaning_labels(_em, 2))
    return grid


def show_report(em: explorer.ExplorerModel, lat: float, lon: float, top: int, slot: int) -> None:
    st.subheader(em.source.label)
    st.caption(f"{em.cfg.model.arch} · sequence [{em.model.seq_len}, {em.model.token_dim}] from "
               f"{em.cfg.targets.encoder} · K = {fmt_count(em.n_entries)}")
    try:
        report = explorer.click_report(em, lat, lon, top=top)
    except WorkbenchError as exc:
        st.error(str(exc))
        return
    st.metric("latency: click -> weights + nearest cities", f"{report['latency_ms']:.1f} ms")
    if report["weights"] is None:
        st.info(f"'{em.cfg.model.arch}' has no dictionary, so there are no mixture weights; "
                "its nearest cities are below.")
    else:
        st.plotly_chart(mixture_bar_figure(report["weights"], top, explorer.meaning_labels(em, 3),
                                           title=f"{report['k']} mixture weights (sum {fmt_pct(sum(report['weights']))})"),
                        key=f"sp_bars_{slot}")
        st.markdown("**Top entries** and the held-out prompts nearest to each")
        st.dataframe(explorer.top_entries_table(report), hide_index=True, key=f"sp_top_{slot}")
    st.markdown("**Nearest cities** by predicted-sequence similarity (held-out cities)")
    if report["nearest_cities"]:
        st.dataframe(explorer.cities_table(report), hide_index=True, key=f"sp_cities_{slot}")
        st.caption("score: similarity of the predicted sequence to the city's target sequence; "
                   "distance: from the clicked point.")
    else:
        st.caption("This source has no city index yet (a run writes artifacts/index.pt when it finishes).")


st.title("Soft-Prompt Explorer")
st.caption("GPS -> frozen GeoCLIP -> mixture over K learnable soft-token sequences. Click anywhere on the map.")

sources = explorer.list_sources()
if not sources:
    st.info(f"No soft-prompt model found. The demo bundle belongs in `{explorer.DEMO_CHECKPOINT}`; "
            "recreate it with `python -m workbench train configs/softprompt-demo.yaml` then "
            "`python -m workbench softprompt export-demo RUN_ID`, or launch a softprompt run on the Runs page.")
    st.stop()

labels = [s.label for s in sources]
by_label = {s.label: s for s in sources}
left, right, opts = st.columns([3, 3, 2])
first = left.selectbox("Model (a checkpoint or a softprompt run)", labels, key="sp_model")
second = right.selectbox("Side by side with", [NONE] + [x for x in labels if x != first], key="sp_compare")
top = opts.number_input("top entries", min_value=1, max_value=20, value=5, key="sp_top")

models = []
for label in [first] + ([second] if second != NONE else []):
    s = by_label[label]
    try:
        models.append(load(s.label, s.kind, str(s.path), explorer.source_stamp(s)))
    except WorkbenchError as exc:
        st.error(f"{label}: {exc}")
if not models:
    st.stop()

a1, a2 = st.columns([3, 2])
show_atlas = a1.toggle("Dictionary atlas: colour the map by the dominant entry of the first model",
                       value=False, key="sp_atlas")
step = a2.select_slider("atlas cell size (degrees)", options=[2.0, 3.0, 5.0, 10.0], value=5.0, key="sp_atlas_step")

m = make_map(center=(20.0, 0.0), zoom=2, height=MAP_HEIGHT)
if show_atlas:
    em = models[0]
    if em.n_entries is None:
        st.caption(f"The atlas needs a dictionary model; {em.source.label} is '{em.cfg.model.arch}'.")
    else:
        grid = atlas(str(em.source.path), explorer.source_stamp(em.source), step, em)
        add_polygons(m, grid["polygons"], grid["dominant"], colormap=entry_colormap(em.n_entries),
                     tooltips=grid["tooltips"], vmin=0, vmax=max(em.n_entries - 1, 1), opacity=0.45,
                     name="dictionary atlas")
        st.caption(f"{len(set(grid['dominant'].tolist()))} of {em.n_entries} entries dominate somewhere on this grid; "
                   "hover a cell for its entry and the prompts nearest to it.")

click = map_widget(m, key="sp_map", height=MAP_HEIGHT)

if click is None:
    st.info("Click anywhere on the map to see the mixture weights.")
else:
    st.markdown(f"**Clicked:** {fmt_latlon(click['lat'], click['lon'])}")
    for slot, (col, em) in enumerate(zip(st.columns(len(models)), models)):
        with col:
            show_report(em, click["lat"], click["lon"], int(top), slot)

with st.expander("Held-out metrics of the selected models (trained vs untrained)"):
    for em in models:
        table = explorer.metrics_display(em.metrics)
        st.markdown(f"**{em.source.label}**")
        if table is None:
            st.caption("no metrics saved with this source yet")
        else:
            st.dataframe(table, key=f"sp_metrics_{em.source.label}")
            st.caption("retrieval R@k and country match in percent (higher is better); "
                       "token cosine higher is better, normalised sequence MSE lower is better.")
        counts = em.metrics.get("param_counts")
        if counts:
            st.caption(explorer.param_counts_caption(counts))
