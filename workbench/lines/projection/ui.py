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
    """The image-text models of every line (projection heads, CLIP, ...) with test embeddings;
    without one, a note on how to make one."""
    found = serving.list_sources()
    _LINES.update({s.label: line for line, s in found})
    sources = [s for _, s in found]
    if not sources:
        st.info(f"No image-text model found. The projection demo bundle belongs in `{bundle.DEMO}`; recreate it with "
                "`python -m workbench data build-demo`, `python -m workbench train projection-demo`, then "
                "`python -m workbench projection export-demo RUN_ID`, or launch a projection run on the Runs page.")
    return sources


def model_picker(sources: list[Source]) -> list[Source]:
    return pick_sources(sources, "Models (the first answers the queries; all are compared below)", key="rt_models")


def load_models(sources: list[Source]) -> list:
    """The cached models; each one that fails to load gets an error box."""
    return load_sources(sources, load, "embeddings/meta.parquet", "metrics.json")


def model_caption(lp) -> str:
    return lp.caption()


def _tile(lp, row: pd.Series, caption: str) -> None:
    path = lp.tile_path(str(row.get("path", "")))
    if path is None:
        st.caption(f"(no tile image: build the data with `python -m workbench data build-demo`) {caption}")
    else:
        st.image(str(path), caption=caption, width=140)


def _places_map(table: pd.DataFrame, key: str, color: str = "#ffd400") -> None:
    located = table.dropna(subset=["lat", "lon"])
    if located.empty:
        return
    m = wmap.make_map(center=(20.0, 0.0), zoom=1, height=MAP_HEIGHT)
    tips = [f"#{int(r['rank'])} {r.get('place', '')} ({fmt_latlon(r['lat'], r['lon'], 2)})"
            for _, r in located.iterrows()]
    wmap.add_points(m, located["lat"].to_numpy(), located["lon"].to_numpy(), color=color, tooltip=tips,
                    radius=7, name="retrieved images")
    wmap.map_widget(m, key=key, height=MAP_HEIGHT)


def text_search(lp) -> None:
    """A caption -> the top test images: tiles, a table and their places on the map."""
    st.subheader("Caption → images")
    name = lp.text_encoder_name
    if not lp.embeds_queries:
        st.info("This model's data names no offline text encoder, so a typed caption cannot be embedded "
                "here; use the image → captions search below.")
        return
    left, right = st.columns([5, 1])
    how = f"the frozen `{name}` encoder, then the text head" if name else "the model's own tokenizer and text tower"
    query = left.text_input(f"A caption (embedded by {how})",
                            value=DEFAULT_QUERY, max_chars=500, key="rt_query")
    top = right.number_input("top images", min_value=1, max_value=24, value=8, key="rt_top_images")
    try:
        vector = lp.encode_query(query, text_encoder(name) if name else None)
    except WorkbenchError as exc:
        st.error(str(exc))
        return
    table = serving.images_for_query(lp, vector, int(top))
    for start in range(0, len(table), TILES_PER_ROW):
        for col, (_, row) in zip(st.columns(TILES_PER_ROW), table.iloc[start:start + TILES_PER_ROW].iterrows()):
            with col:
                _tile(lp, row, f"#{int(row['rank'])} {row.get('place', '')} · {row['score']:.3f}")
    _places_map(table, key="rt_query_map")
    cols = [c for c in ("rank", "score", "place", "country_name", "continent", "lat", "lon", "image_id") if c in table]
    st.dataframe(table[cols], hide_index=True, key="rt_query_table")


def image_label(row: pd.Series) -> str:
    return f"#{int(row['row'])} {row.get('place', '') or row['id']} ({fmt_latlon(row['lat'], row['lon'], 1)})"


def image_search(lp) -> None:
    """A test image -> its top captions, those written for it marked."""
    st.subheader("Image → captions")
    images = lp.images
    left, right = st.columns([5, 1])
    row = left.selectbox("A test image", range(len(images)), format_func=lambda i: image_label(images.iloc[i]),
                         key="rt_image")
    top = right.number_input("top captions", min_value=1, max_value=50, value=5, key="rt_top_captions")
    picked = images.iloc[int(row)]
    c1, c2 = st.columns([1, 3])
    with c1:
        _tile(lp, picked, f"{picked.get('place', '')}, {picked.get('country_name', '')}")
    with c2:
        table = serving.captions_for_image(lp, int(row), int(top))
        st.dataframe(table, hide_index=True, key="rt_caption_table",
                     column_config={"correct": st.column_config.CheckboxColumn("written for this image")})
        own = lp.texts[lp.texts["image_id"] == picked["image_id"]]["caption"].tolist()
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
               "whose towers have no frozen encoder to compare with).")
