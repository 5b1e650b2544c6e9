"""The Retrieval page's sections: pick projection models; type a caption -> the top test
images (tiles, places on the offline map); pick a test image -> its top captions; the test
R@K of the selected models side by side with their untrained heads and baselines.

Only widgets, layout and the cached loaders live here; the answers come from
``workbench.contrastive.serving`` (any line's image-text model: projection heads, CLIP).
``serving.list_sources`` and the map helpers are looked
up when called so that AppTests can stand in for them.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from workbench.contrastive import serving
from workbench.errors import WorkbenchError
from workbench.lines.projection import bundle
from workbench.runs.sources import Source
from workbench.ui import map as wmap
from workbench.ui.fmt import fmt_latlon
from workbench.ui.widgets import load_sources, pick_sources

MAP_HEIGHT = 380
TILES_PER_ROW = 4
DEFAULT_QUERY = "snow and ice in the mountains of Asia"
MODEL_COLORS = ("#ffd400", "#ff4fa3", "#00d1ff", "#7cff4f", "#ff8c1a", "#b38cff")


@st.cache_resource(show_spinner="Loading the model ...", max_entries=6)
def load(label: str, kind: str, path: str, stamp: int):
    """Any line's image-text model (workbench.contrastive.serving), by the line that listed it."""
    return serving.providers()[_LINES[label]].load(Source(label, kind, Path(path)))


_LINES: dict[str, str] = {}  # source label -> the line that serves it (filled by model_sources)


@st.cache_resource(show_spinner="Loading the frozen text encoder ...", max_entries=2)
def text_encoder(name: str):
    from workbench.encoders.text import create_text_encoder

    return create_text_encoder(name)


def model_sources() -> list[Source]:
    """The image-text models of every line (projection heads first, then CLIP, ...) with test
    embeddings; without one, a note on how to make one."""
    found = sorted(serving.list_sources(), key=lambda ls: ls[0] != "projection")  # stable: this line first
    _LINES.update({s.label: line for line, s in found})
    sources = [s for _, s in found]
    if not sources:
        st.info(f"No image-text model found. The projection demo bundle belongs in `{bundle.DEMO}`; recreate it with "
                "`python -m workbench data build-demo`, `python -m workbench train projection-demo`, then "
                "`python -m workbench projection export-demo RUN_ID`, or launch a projection run on the Runs page.")
    return sources


def model_picker(sources: list[Source]) -> list[Source]:
    """A multiselect; preselected: the first model of every line (the demo bundles), so the
    lines answer the same queries side by side."""
    first: dict[str, str] = {}
    for s in sources:
        first.setdefault(_LINES.get(s.label, s.kind), s.label)
    return pick_sources(sources, "Models (each answers the same queries, side by side)", key="rt_models",
                        default=list(first.values()))


def load_models(sources: list[Source]) -> list:
    """The cached models; each one that fails to load gets an error box."""
    return load_sources(sources, load, "embeddings/paired.parquet", "metrics.json")


def model_caption(lp) -> str:
    return lp.caption()


def _tile(lp, row: pd.Series, caption: str, width: int = 140) -> None:
    path = lp.tile_path(str(row.get("path", "")))
    if path is None:
        st.caption(f"(no tile image: build the data with `python -m workbench data build-demo`) {caption}")
    else:
        st.image(str(path), caption=caption, width=width)


def _key(base: str, i: int) -> str:
    return base if i == 0 else f"{base}_{i}"


def _places_map(tables: list[tuple[str, pd.DataFrame]], key: str) -> None:
    """One map with each model's retrieved places in its own colour."""
    m = wmap.make_map(center=(20.0, 0.0), zoom=1, height=MAP_HEIGHT)
    drawn = False
    for (label, table), color in zip(tables, MODEL_COLORS):
        located = table.dropna(subset=["lat", "lon"])
        if located.empty:
            continue
        who = f"{label}: " if len(tables) > 1 else ""
        tips = [f"{who}#{int(r['rank'])} {r.get('place', '')} ({fmt_latlon(r['lat'], r['lon'], 2)})"
                for _, r in located.iterrows()]
        wmap.add_points(m, located["lat"].to_numpy(), located["lon"].to_numpy(), color=color, tooltip=tips,
                        radius=7, name=f"{label}: retrieved images")
        drawn = True
    if drawn:
        wmap.map_widget(m, key=key, height=MAP_HEIGHT)


def _query_vector(lp, query: str):
    name = lp.text_encoder_name
    if not lp.embeds_queries:
        st.info(f"{lp.source.label}: this model's data names no offline text encoder, so a typed caption cannot be "
                "embedded here; use the image → captions search below.")
        return None
    try:
        return lp.encode_query(query, text_encoder(name) if name else None)
    except WorkbenchError as exc:
        st.error(f"{lp.source.label}: {exc}")
        return None


def _how(lp) -> str:
    name = lp.text_encoder_name
    return f"the frozen `{name}` encoder, then the text head" if name else "its own tokenizer and text tower"


def text_search(models: list) -> None:
    """A caption -> each model's top test images: tiles and a table per model, side by side,
    and all their places on one map (a colour per model)."""
    st.subheader("Caption → images")
    left, right = st.columns([5, 1])
    how = "; ".join(f"{lp.source.label}: {_how(lp)}" for lp in models) if len(models) > 1 else _how(models[0])
    query = left.text_input(f"A caption (embedded by {how})", value=DEFAULT_QUERY, max_chars=500, key="rt_query")
    top = right.number_input("top images", min_value=1, max_value=24, value=8, key="rt_top_images")
    answered = [(i, lp, v) for i, lp in enumerate(models) if (v := _query_vector(lp, query)) is not None]
    if not answered:
        return
    per_row = TILES_PER_ROW if len(answered) == 1 else 2
    tables = []
    for col, (i, lp, vector) in zip(st.columns(len(answered)), answered):
        table = serving.images_for_query(lp, vector, int(top))
        tables.append((lp.source.label, table))
        with col:
            if len(answered) > 1:
                st.markdown(f"**{lp.source.label}**")
            for start in range(0, len(table), per_row):
                for c, (_, row) in zip(st.columns(per_row), table.iloc[start:start + per_row].iterrows()):
                    with c:
                        _tile(lp, row, f"#{int(row['rank'])} {row.get('place', '')} · {row['score']:.3f}")
            cols = [c for c in ("rank", "score", "place", "country_name", "continent", "lat", "lon", "image_id")
                    if c in table]
            st.dataframe(table[cols], hide_index=True, key=_key("rt_query_table", i))
    _places_map(tables, key="rt_query_map")


def image_label(row: pd.Series) -> str:
    return f"#{int(row['row'])} {row.get('place', '') or row['id']} ({fmt_latlon(row['lat'], row['lon'], 1)})"


def same_image(lp, picked: pd.Series) -> int | None:
    """The row of ``picked`` (an image of another model's test split) among ``lp``'s test
    images, matched by its file, else by its place; None when ``lp`` has not got it."""
    images = lp.images
    for column in ("path", "place"):
        value = picked.get(column)
        if value and column in images:
            hits = images.index[images[column].astype(str) == str(value)]
            if len(hits):
                return int(hits[0])
    return None


def image_search(models: list) -> None:
    """A test image of the first model -> each model's top captions, those written for it marked."""
    st.subheader("Image → captions")
    first = models[0]
    images = first.images
    left, right = st.columns([5, 1])
    row = left.selectbox("A test image", range(len(images)), format_func=lambda i: image_label(images.iloc[i]),
                         key="rt_image")
    top = right.number_input("top captions", min_value=1, max_value=50, value=5, key="rt_top_captions")
    picked = images.iloc[int(row)]
    c1, c2 = st.columns([1, 3])
    with c1:
        _tile(first, picked, f"{picked.get('place', '')}, {picked.get('country_name', '')}")
    with c2:
        for i, lp in enumerate(models):
            at = int(row) if i == 0 else same_image(lp, picked)
            if len(models) > 1:
                st.markdown(f"**{lp.source.label}**")
            if at is None:
                st.caption("this image is not in this model's test split")
                continue
            table = serving.captions_for_image(lp, at, int(top))
            st.dataframe(table, hide_index=True, key=_key("rt_caption_table", i),
                         column_config={"correct": st.column_config.CheckboxColumn("written for this image")})
        own = first.texts[first.texts["image_id"] == picked["image_id"]]["caption"].tolist()
        st.caption("Its own captions: " + " · ".join(own))


def metrics_section(models: list) -> None:
    st.subheader("Test R@K of the selected models")
    table = serving.metrics_table(models)
    if table.empty:
        st.caption("no metrics saved with these sources yet")
        return
    st.dataframe(table, hide_index=True, key="rt_metrics", column_config={
        k: st.column_config.NumberColumn(k, format="%.1f") for k in serving.TABLE_KEYS})
    st.caption("R@K in percent, median ranks 1-based, on each model's test split. I2T: an image's best-ranked "
               "caption among all test captions; T2I: a caption's own image. 'untrained': the same heads at "
               "their initialisation; 'random_projection': the frozen embeddings through random maps; "
               "'ridge': a closed-form linear map fitted on the training pairs; 'chance': a random ranking (CLIP models, "
               "whose towers are trained from scratch and have no frozen encoder to compare with). The projection "
               "and CLIP demos share the geo-captions test split (the same 425 held-out tiles).")
