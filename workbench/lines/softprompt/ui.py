"""The Soft-Prompt Explorer's page sections: pick one model (or two, side by side), click
the map -> each model's mixture weights, top entries and nearest cities; an optional
dictionary atlas on the map; the held-out metrics of the selected models.

Only widgets, layout and the cached loaders live here; the answers come from
``workbench.lines.softprompt.explorer``. ``explorer.list_sources`` and the map helpers are
looked up when called (``wmap.map_widget``) so that AppTests can stand in for them.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from workbench.errors import WorkbenchError
from workbench.lines.softprompt import explorer
from workbench.lines.softprompt.figures import entry_colormap, mixture_bar_figure
from workbench.runs.sources import Source
from workbench.ui import map as wmap
from workbench.ui.fmt import fmt_latlon

MAP_HEIGHT = 460


@st.cache_resource(show_spinner="Loading the model ...", max_entries=6)
def load(label: str, kind: str, path: str, stamp: int) -> explorer.ExplorerModel:
    return explorer.load_source(explorer.Source(label, kind, Path(path)))


@st.cache_resource(show_spinner="Computing the dictionary atlas ...", max_entries=8)
def atlas(path: str, stamp: int, step: float, _em: explorer.ExplorerModel) -> dict:
    return explorer.atlas_layer(_em, step)


def model_sources() -> list[Source]:
    """The soft-prompt models; without one, a note on how to make one ([])."""
    sources = explorer.list_sources()
    if not sources:
        st.info(f"No soft-prompt model found. The demo bundle belongs in `{explorer.DEMO_CHECKPOINT}`; "
                "recreate it with `python -m workbench train softprompt-demo` then "
                "`python -m workbench softprompt export-demo RUN_ID`, or launch a softprompt run on the Runs page.")
    return sources


def model_picker(sources: list[Source]) -> tuple[list[Source], int]:
    """(the chosen sources, first then the one side by side; the number of top entries)."""
    labels = [s.label for s in sources]
    by_label = {s.label: s for s in sources}
    left, right, opts = st.columns([3, 3, 2])
    first = left.selectbox("Model (a checkpoint or a softprompt run)", labels, key="sp_model")
    second = right.selectbox("Side by side with", explorer.compare_options(labels, first), key="sp_compare")
    top = opts.number_input("top entries", min_value=1, max_value=20, value=5, key="sp_top")
    return [by_label[label] for label in explorer.selected_labels(first, second)], int(top)


def load_models(sources: list[Source]) -> list[explorer.ExplorerModel]:
    """The cached models of ``sources``; each one that fails to load gets an error box."""
    models = []
    for s in sources:
        try:
            models.append(load(s.label, s.kind, str(s.path), explorer.source_stamp(s)))
        except WorkbenchError as exc:
            st.error(f"{s.label}: {exc}")
    return models


def explorer_map(em: explorer.ExplorerModel) -> dict | None:
    """The world map (optionally coloured by ``em``'s dictionary atlas); returns the last
    click {"lat", "lon"} or None."""
    a1, a2 = st.columns([3, 2])
    show_atlas = a1.toggle("Dictionary atlas: colour the map by the dominant entry of the first model",
                           value=False, key="sp_atlas")
    step = a2.select_slider("atlas cell size (degrees)", options=[2.0, 3.0, 5.0, 10.0], value=5.0,
                            key="sp_atlas_step")
    m = wmap.make_map(center=(20.0, 0.0), zoom=2, height=MAP_HEIGHT)
    if show_atlas:
        if em.n_entries is None:
            st.caption(explorer.atlas_unavailable_note(em))
        else:
            grid = atlas(str(em.source.path), explorer.source_stamp(em.source), step, em)
            wmap.add_polygons(m, grid["polygons"], grid["dominant"], colormap=entry_colormap(em.n_entries),
                              tooltips=grid["tooltips"], vmin=0, vmax=max(em.n_entries - 1, 1), opacity=0.45,
                              name="dictionary atlas")
            st.caption(explorer.atlas_note(em, grid))
    return wmap.map_widget(m, key="sp_map", height=MAP_HEIGHT)


def click_reports(click: dict | None, models: list[explorer.ExplorerModel], top: int) -> None:
    """One column per model answering the click, or a request to click."""
    if click is None:
        st.info("Click anywhere on the map to see the mixture weights.")
        return
    st.markdown(f"**Clicked:** {fmt_latlon(click['lat'], click['lon'])}")
    for slot, (col, em) in enumerate(zip(st.columns(len(models)), models)):
        with col:
            show_report(em, click["lat"], click["lon"], top, slot)


def show_report(em: explorer.ExplorerModel, lat: float, lon: float, top: int, slot: int) -> None:
    """One model's answer: latency, weight bars and top entries (dictionary models), nearest cities."""
    st.subheader(em.source.label)
    st.caption(explorer.model_caption(em))
    try:
        report = explorer.click_report(em, lat, lon, top=top)
    except WorkbenchError as exc:
        st.error(str(exc))
        return
    st.metric("latency: click -> weights + nearest cities", f"{report['latency_ms']:.1f} ms")
    if report["weights"] is None:
        st.info(explorer.no_mixture_note(em))
    else:
        st.plotly_chart(mixture_bar_figure(report["weights"], top, explorer.meaning_labels(em, 3),
                                           title=explorer.mixture_title(report)),
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


def metrics_section(models: list[explorer.ExplorerModel]) -> None:
    """Held-out metrics (trained vs untrained vs baselines) and parameter counts per model."""
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
