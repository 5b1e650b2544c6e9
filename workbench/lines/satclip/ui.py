"""The Location embeddings page's sections: pick SatCLIP models; a world map coloured by the
first three principal components of any location encoder; click it -> the held-out tiles
nearest to the point's location embedding and the places the encoder puts next to it; the
probe tables of the selected models side by side with the frozen baselines.

Only widgets, layout and the cached loaders live here; the answers come from
``workbench.lines.satclip.explore``. ``explore.list_sources`` and the map helpers are looked
up when called so that AppTests can stand in for them.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from workbench.errors import WorkbenchError
from workbench.lines.satclip import explore
from workbench.runs.sources import Source
from workbench.ui import map as wmap
from workbench.ui.fmt import fmt_latlon
from workbench.ui.widgets import load_sources, pick_sources

MAP_HEIGHT = 460
TILES_PER_ROW = 4
GRID_STEPS = (1.0, 2.0, 3.0, 5.0)


@st.cache_resource(show_spinner="Loading the SatCLIP model ...", max_entries=6)
def load(label: str, kind: str, path: str, stamp: int) -> explore.LoadedSatClip:
    return explore.load_satclip(Source(label, kind, Path(path)))


@st.cache_data(show_spinner="Encoding the grid and taking its principal components ...", max_entries=16)
def pca_picture(key: str, stamps: tuple, step: float, _models: list) -> dict:
    return explore.pca_grid(explore.encoder_for(key, _models), step)


def model_sources() -> list[Source]:
    """The satclip models; without one, a note on how to make one ([])."""
    sources = explore.list_sources()
    if not sources:
        st.info(f"No SatCLIP model found. The demo bundle belongs in `{explore.DEMO}`; recreate it with "
                "`python -m workbench data build-demo`, `python -m workbench train satclip`, then "
                "`python -m workbench satclip export-demo RUN_ID`, or launch a satclip run on the Runs page.")
    return sources


def model_picker(sources: list[Source]) -> list[Source]:
    return pick_sources(sources, "Models (the first answers clicks; all appear in the probe table)", key="le_models")


def load_models(sources: list[Source]) -> list[explore.LoadedSatClip]:
    """The cached models; each one that fails to load gets an error box."""
    return load_sources(sources, load, "embeddings/paired.parquet", "metrics.json")


def model_caption(ls: explore.LoadedSatClip) -> str:
    return explore.model_caption(ls)


def pca_map(models: list[explore.LoadedSatClip]) -> tuple[dict | None, int]:
    """The world map, optionally coloured by an encoder's first three principal components;
    returns (the last click {"lat", "lon"} or None, how many nearest tiles / places to show)."""
    choices = explore.encoder_choices(models)
    a1, a2, a3, a4 = st.columns([4, 2, 1, 1])
    label = a1.selectbox("Colour the map by the first 3 principal components of", ["(none)", *choices],
                         index=1, key="le_pca_encoder")
    step = a2.select_slider("grid step (degrees)", options=GRID_STEPS, value=2.0, key="le_pca_step")
    opacity = a3.slider("opacity", 0.1, 1.0, 0.7, 0.05, key="le_pca_opacity")
    top = a4.number_input("nearest tiles / places", min_value=1, max_value=24, value=8, key="le_top")
    m = wmap.make_map(center=(20.0, 0.0), zoom=1, height=MAP_HEIGHT)
    if label != "(none)":
        key = choices[label]
        stamps = tuple(ls.source.stamp() for ls in models)
        try:
            picture = pca_picture(key, stamps, float(step), models)
        except WorkbenchError as exc:
            st.error(f"{label}: {exc}")
        else:
            wmap.add_image_grid(m, picture["rgb"], picture["lat"], picture["lon"], opacity=float(opacity),
                                name="principal components")
            shares = ", ".join(f"{e * 100:.0f} %" for e in picture["explained"])
            st.caption(f"{label}: {picture['dims']}-d features on a {step:g}° grid; red, green, blue = "
                       f"principal components 1, 2, 3 (variance {shares}), each stretched between its 1st and "
                       "99th percentile. Similar colours: places the encoder represents alike."
                       + (" Raw lat/lon has two dims: blue is constant." if picture["dims"] < 3 else ""))
    return wmap.map_widget(m, key="le_map", height=MAP_HEIGHT), int(top)


def _tile(ls: explore.LoadedSatClip, row: pd.Series, caption: str) -> None:
    path = ls.tile_path(str(row.get("path", "")))
    if path is None:
        st.caption(f"(no tile image: build the data with `python -m workbench data build-demo`) {caption}")
    else:
        st.image(str(path), caption=caption, width=140)


def click_report(click: dict | None, ls: explore.LoadedSatClip, top: int) -> None:
    if click is None:
        st.info("Click anywhere on the map: the held-out tiles nearest to that point's location embedding, "
                "and the places the encoder puts next to it.")
        return
    lat, lon = click["lat"], click["lon"]
    st.markdown(f"**Clicked:** {fmt_latlon(lat, lon, 3)} · model {ls.source.label}")
    try:
        tiles = explore.nearest_tiles(ls, lat, lon, top)
        places = explore.nearest_locations(ls, lat, lon, top)
    except WorkbenchError as exc:
        st.error(str(exc))
        return
    st.subheader("Tiles this place should look like")
    st.caption(f"The {len(ls.tiles)} held-out tiles (whole S2 cells never seen in training; the closest lies "
               f"{explore.closest_tile_km(ls, lat, lon):,.0f} km from the click) ranked by the cosine of their image "
               "embedding with the clicked point's location embedding (tile ↔ location retrieval, the task "
               "SatCLIP trains).")
    for start in range(0, len(tiles), TILES_PER_ROW):
        for col, (_, row) in zip(st.columns(TILES_PER_ROW), tiles.iloc[start:start + TILES_PER_ROW].iterrows()):
            with col:
                _tile(ls, row, f"#{int(row['rank'])} {row.get('place', '')} · {row['score']:.3f} · "
                               f"{row['distance_km']:,.0f} km")
    cols = [c for c in explore.TILE_COLUMNS if c in tiles]
    st.dataframe(tiles[cols], hide_index=True, key="le_tiles_table",
                 column_config={"distance_km": st.column_config.NumberColumn("distance_km", format="%.0f"),
                                "score": st.column_config.NumberColumn("score", format="%.3f")})
    st.subheader("Places the encoder puts next to it")
    st.caption("Held-out tile locations ranked by the cosine of their location embedding with the clicked "
               "point's; far places high in the list are where the encoder sees alike what is far apart.")
    points = wmap.make_map(center=(20.0, 0.0), zoom=1, height=320)
    wmap.add_points(points, [lat], [lon], color="#ff2d2d", tooltip=["clicked"], radius=8, name="clicked")
    wmap.add_points(points, places["lat"].to_numpy(), places["lon"].to_numpy(), color="#ffd400",
                    tooltip=[f"#{int(r['rank'])} {r.get('place', '')} ({r['score']:.3f})" for _, r in places.iterrows()],
                    radius=6, name="nearest places")
    wmap.map_widget(points, key="le_places_map", height=320)
    st.dataframe(places[cols], hide_index=True, key="le_places_table",
                 column_config={"distance_km": st.column_config.NumberColumn("distance_km", format="%.0f"),
                                "score": st.column_config.NumberColumn("score", format="%.3f")})


def probe_section(models: list[explore.LoadedSatClip]) -> None:
    st.subheader("Location-embedding probes")
    table = explore.probe_comparison(models)
    if table.empty:
        st.caption("No probe table saved with these models (a run writes one when probe.points > 0).")
        return
    st.dataframe(table, hide_index=True, key="le_probes")
    st.caption("Frozen location encoder -> linear (ridge / logistic) or MLP probe, scored on whole S2 cells held "
               "out of the probe's training points; mean ± std over seeds. R² for continuous targets "
               "(coast_km, relief, greenness, log_population), accuracy for classes (land, continent, country). "
               "Each model's own encoder is listed under its name; the baselines are frozen and untrained "
               "(except GeoCLIP, pretrained on photos).")
    for ls in models:
        verdicts = explore.probe_verdicts(ls.probes)
        if verdicts.empty:
            continue
        lost = verdicts[~verdicts["beats"]]
        if lost.empty:
            st.success(f"{ls.source.label} beats raw lat/lon on every continuous target, with both probes.")
        else:
            st.warning(f"{ls.source.label} does not beat raw lat/lon on: "
                       + ", ".join(f"{r.target} ({r.probe}: {r.satclip:.3f} vs {r.raw_latlon:.3f})"
                                   for r in lost.itertuples()))
        wins = verdicts[verdicts["best"] != "satclip"]
        if not wins.empty:
            st.caption(f"{ls.source.label}: a baseline is best on "
                       + ", ".join(f"{r.target} ({r.probe}: {r.best} {r.best_r2:.3f})" for r in wins.itertuples()))
