"""The Embeddings page's sections: pick an embedding set of any run or bundle and a
projection; launch the projection job when it is not cached and watch it; a WebGL scatter of
every point coloured by a metadata column; a box / lasso selection -> those points on the
offline map, their table, their nearest neighbours in the original space and a gallery; a
click on the map -> the points near it highlighted in the scatter.

No projection is computed here: ``workbench.embeddings.jobs`` runs them as background jobs
and this module reads their cached results.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from workbench.embeddings import jobs
from workbench.embeddings.project import knn_indices, prepare
from workbench.embeddings.sets import SetRef, list_sets, read_set
from workbench.errors import WorkbenchError
from workbench.ui import map as wmap

HOVER_TEXT_MAX = 20_000  # above this many points the hover shows the point's category only (a lighter page)
MAX_CATEGORIES = 24  # a categorical column with more values is coloured by its top ones + "other"
MAP_POINTS = 2000  # the selection drawn on the map (a sample beyond that)
NEAR_KM = 600.0  # a map click highlights the points within this distance
GALLERY = 8
PALETTE = ("#ffd400", "#ff4fa3", "#00d1ff", "#7cff4f", "#ff8c1a", "#b38cff", "#ff5252", "#40e0d0", "#c0ca33",
           "#f06292", "#4fc3f7", "#aed581", "#ffb74d", "#9575cd", "#e57373", "#4db6ac", "#dce775", "#ba68c8",
           "#64b5f6", "#81c784", "#ffd54f", "#7986cb", "#a1887f", "#90a4ae")
SKIP_COLUMNS = {"id", "row", "lat", "lon", "path", "group"}  # ids and links, not labels


def pick_set(key: str = "em_set", label: str = "Embedding set", default: SetRef | None = None) -> SetRef | None:
    found = list_sets()  # file names only: cheap on every rerun
    if not found:
        st.info("No embedding set found. Bundles ship them (`checkpoints/*/embeddings/`); a run writes them into "
                "`artifacts/embeddings/` when it finishes.")
        return None
    keys = [r.key for r in found]
    wanted = default.key if default is not None else st.query_params.get("set")  # ?set=checkpoint: clip-demo / paired
    index = keys.index(wanted) if wanted in keys else 0
    chosen = st.selectbox(label, keys, index=index, key=key)
    return found[keys.index(chosen)]


@st.cache_resource(show_spinner="Reading the embedding set ...", max_entries=4)  # shared, never mutated: no copy
def _load(source: str, name: str, folder: str, stamp: int) -> tuple[np.ndarray, pd.DataFrame]:
    emb = read_set(SetRef(source, name, Path(folder)))
    return np.asarray(emb.vectors, dtype=np.float32), emb.meta


@st.cache_data(show_spinner=False, max_entries=64)
def _key(source: str, name: str, folder: str, stamp: int, params: tuple) -> str:
    return jobs.cache_key(SetRef(source, name, Path(folder)), jobs.Params(*params))


def _stamp(ref: SetRef) -> int:
    return max((f.stat().st_mtime_ns for f in ref.files if f.is_file()), default=0)


def load(ref: SetRef) -> tuple[np.ndarray, pd.DataFrame]:
    return _load(ref.source, ref.name, str(ref.folder), _stamp(ref))


def params_form(n: int, key: str = "em") -> jobs.Params:
    c1, c2, c3, c4, c5 = st.columns(5)
    method = c1.selectbox("Method", ("pca", "umap", "tsne"), key=f"{key}_method",
                          format_func={"pca": "PCA", "umap": "UMAP", "tsne": "t-SNE (openTSNE)"}.get)
    dims = c2.selectbox("Dimensions", (2, 3), key=f"{key}_dims")
    metric = c3.selectbox("Metric", ("cosine", "euclidean"), key=f"{key}_metric")
    max_points = c4.number_input("Max points (0 = all)", min_value=0, max_value=jobs.MAX_POINTS, value=0, step=1000,
                                 key=f"{key}_max", help=f"this set has {n:,} points; a seeded sample beyond the limit")
    seed = c5.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, key=f"{key}_seed")
    return jobs.Params(method, int(dims), metric, int(seed), int(max_points))


def projection_key(ref: SetRef, params: jobs.Params) -> str:
    from dataclasses import astuple

    return _key(ref.source, ref.name, str(ref.folder), _stamp(ref), astuple(params))


def job_panel(ref: SetRef, params: jobs.Params, key: str, widget: str = "em") -> dict:
    """The job's state; launch / stop buttons; live progress while it runs."""
    status = jobs.read_status(key)
    state = status.get("state")
    if state == "done":
        return status
    if state == "running":
        _progress(key, widget)
        return jobs.read_status(key)
    if state in ("failed", "crashed"):
        st.error(f"The last {params.method} projection of this set failed: {status.get('error')}")
    elif state == "stopped":
        st.warning("This projection was stopped before it finished.")
    label = "Compute" if state == "missing" else "Compute again"
    if st.button(f"{label} the {params.method.upper()} projection (a background job)", key=f"{widget}_launch"):
        try:
            jobs.launch(ref, params)
        except WorkbenchError as exc:
            st.error(str(exc))
            return status
        st.rerun()
    return status


def _progress(key: str, widget: str) -> None:
    @st.fragment(run_every=1.0)
    def live():
        status = jobs.read_status(key)
        if status.get("state") != "running":
            st.rerun()  # the whole page: the result (or the error) is there now
        done = float(status.get("progress") or 0.0)
        st.progress(min(1.0, done), text=f"{status.get('phase', '')} · {done * 100:.0f} %")
        if st.button("Stop", key=f"{widget}_stop"):
            jobs.stop(key)
            st.rerun()

    live()


@st.cache_resource(show_spinner=False, max_entries=16)  # shared, never mutated: no copy per rerun
def result(key: str) -> dict:
    return jobs.load_result(key)


def quality_caption(res: dict) -> str:
    q = res.get("quality", {})
    extra = ""
    if res.get("explained_variance_ratio"):
        extra = f" · variance explained {sum(res['explained_variance_ratio']) * 100:.1f} %"
    if res.get("pre_pca"):
        extra += f" · after PCA-{res['pre_pca']['dims']} ({res['pre_pca']['explained'] * 100:.0f} % of the variance)"
    return (f"{res['method'].upper()} of {res['n']:,} of {res.get('n_total', res['n']):,} points ({res['d']}-d, "
            f"{res['metric']}) in {res['seconds']:.1f} s · trustworthiness {q.get('trustworthiness', float('nan')):.3f}"
            f" · {q.get('k', 10)}-NN preserved {q.get('knn_preservation', float('nan')) * 100:.1f} % "
            f"(on {q.get('sample', '?')} points){extra}")


PREFERRED = ("continent", "modality", "country", "label", "cell", "split")


def _varies(column: pd.Series) -> bool:
    """More than one value (without counting every distinct value of a long column)."""
    first = column.iloc[0] if len(column) else None
    return bool(len(column)) and not (column == first).all()


def color_columns(meta: pd.DataFrame) -> list[str]:
    """The columns worth colouring by (more than one value), the usual labels first."""
    cols = [c for c in meta.columns if c not in SKIP_COLUMNS and _varies(meta[c])]
    return sorted(cols, key=lambda c: PREFERRED.index(c) if c in PREFERRED else len(PREFERRED)) or ["modality"]


def _hover(meta: pd.DataFrame) -> np.ndarray:
    parts = []
    for col in ("caption", "place", "label", "country", "continent", "cell", "modality"):
        if col in meta and meta[col].astype(str).str.len().gt(0).any():
            parts.append(meta[col].astype(str).str.slice(0, 90))
    if not parts:
        return meta["id"].astype(str).to_numpy()
    text = parts[0]
    for p in parts[1:]:
        text = text + " · " + p
    return text.to_numpy()


def scatter(coords: np.ndarray, meta: pd.DataFrame, color: str, highlight: np.ndarray | None = None,
            join_pairs: bool = False) -> go.Figure:
    """One WebGL trace per category (a legend), or one with a colour scale; ``customdata``
    holds each point's index into ``meta``."""
    three = coords.shape[1] == 3
    kind = go.Scatter3d if three else go.Scattergl
    values = meta[color]
    hover = _hover(meta) if len(meta) <= HOVER_TEXT_MAX else None
    fig = go.Figure()
    index = np.arange(len(meta), dtype=np.int32)

    def add(mask, name, marker):
        xyz = {"x": coords[mask, 0], "y": coords[mask, 1]}
        if three:
            xyz["z"] = coords[mask, 2]
        text = ({"hovertext": hover[mask], "hoverinfo": "text"} if hover is not None else
                {"hovertemplate": f"{color}: %{{fullData.name}}<extra></extra>"})
        fig.add_trace(kind(**xyz, mode="markers", name=name, marker=marker, customdata=index[mask], **text))

    size = 3 if len(meta) > 20000 else 5
    if pd.api.types.is_numeric_dtype(values) and values.nunique() > MAX_CATEGORIES:
        add(np.ones(len(meta), bool), color, dict(size=size, color=values.to_numpy(), colorscale="Viridis",
                                                   showscale=True, colorbar=dict(title=color)))
    else:
        labels = values.astype(str).fillna("")
        top = labels.value_counts().index[:MAX_CATEGORIES]
        labels = labels.where(labels.isin(top), "other")
        for i, name in enumerate(sorted(labels.unique(), key=lambda v: (v == "other", v))):
            add((labels == name).to_numpy(), name or "(none)", dict(size=size, color=PALETTE[i % len(PALETTE)]))
    if join_pairs and "group" in meta and meta["modality"].nunique() > 1 and not three:
        _pair_lines(fig, coords, meta)
    if highlight is not None and len(highlight):
        xyz = {"x": coords[highlight, 0], "y": coords[highlight, 1]}
        if three:
            xyz["z"] = coords[highlight, 2]
        fig.add_trace(kind(**xyz, mode="markers", name="near the map click", customdata=highlight,
                           marker=dict(size=size + 5, color="rgba(0,0,0,0)", line=dict(color="#ff1744", width=2))))
    fig.update_layout(height=620, margin=dict(l=0, r=0, t=10, b=0), legend=dict(itemsizing="constant"),
                      dragmode="lasso" if not three else "orbit")
    return fig


def _pair_lines(fig: go.Figure, coords: np.ndarray, meta: pd.DataFrame, limit: int = 5000) -> None:
    """Segments from each group's first point (e.g. an image) to the others (its captions)."""
    groups = meta["group"].astype(str).to_numpy()
    first = pd.Series(np.arange(len(meta))).groupby(groups).transform("first").to_numpy()
    others = np.flatnonzero(first != np.arange(len(meta)))[:limit]
    xs = np.column_stack([coords[first[others], 0], coords[others, 0], np.full(len(others), np.nan)]).ravel()
    ys = np.column_stack([coords[first[others], 1], coords[others, 1], np.full(len(others), np.nan)]).ravel()
    fig.add_trace(go.Scattergl(x=xs, y=ys, mode="lines", name="pairs", hoverinfo="skip",
                               line=dict(width=0.5, color="rgba(200,200,200,0.35)")))


def selected_points(event) -> np.ndarray:
    """Indices into the meta rows of a box / lasso selection (or a clicked point) of the scatter."""
    try:
        points = event.selection.points
    except AttributeError:
        points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else []
    ids = [p.get("customdata") for p in points if p.get("customdata") is not None]
    ids = [i[0] if isinstance(i, (list, tuple)) else i for i in ids]
    return np.unique(np.asarray(ids, dtype=np.int64))


def near_click(meta: pd.DataFrame, click: dict | None, km: float = NEAR_KM) -> np.ndarray:
    if not click or "lat" not in meta:
        return np.zeros(0, np.int64)
    from workbench.geo import haversine_km

    lat, lon = meta["lat"].to_numpy(np.float64), meta["lon"].to_numpy(np.float64)
    ok = np.isfinite(lat) & np.isfinite(lon)
    d = np.full(len(meta), np.inf)
    d[ok] = haversine_km(click["lat"], click["lon"], lat[ok], lon[ok])
    return np.flatnonzero(d <= km)


def selection_map(meta: pd.DataFrame, chosen: np.ndarray, key: str) -> dict | None:
    """The selected points on the offline map (a sample of MAP_POINTS beyond that); the click."""
    m = wmap.make_map(center=(20.0, 0.0), zoom=1, height=420)
    located = chosen[np.isfinite(meta["lat"].to_numpy(np.float64)[chosen])] if len(chosen) else chosen
    if len(located) > MAP_POINTS:
        located = np.sort(np.random.default_rng(0).choice(located, MAP_POINTS, replace=False))
    if len(located):
        rows = meta.iloc[located]
        wmap.add_points(m, rows["lat"].to_numpy(), rows["lon"].to_numpy(), color="#ffd400", radius=4,
                        tooltip=_hover(rows).tolist(), name="selected points")
    return wmap.map_widget(m, key=key, height=420)


def neighbours(x: np.ndarray, meta: pd.DataFrame, chosen: np.ndarray, metric: str, k: int = 10) -> pd.DataFrame:
    """The k points nearest (in the original space) to the selection's mean, outside it."""
    xs = prepare(x, metric)
    centre = xs[chosen].mean(0, keepdims=True)
    if metric == "cosine":
        centre = prepare(centre, metric)
    order = knn_indices(centre, xs, min(len(xs), k + len(chosen)))[0]
    outside = order[~np.isin(order, chosen)][:k]
    d = np.sqrt(np.maximum(((xs[outside] - centre) ** 2).sum(1), 0))
    cols = [c for c in ("id", "modality", "caption", "place", "country", "continent", "lat", "lon") if c in meta]
    return meta.iloc[outside][cols].assign(distance=d).reset_index(drop=True)


def gallery(meta: pd.DataFrame, chosen: np.ndarray, ref: SetRef) -> None:
    if "path" not in meta or not len(chosen):
        return
    from workbench.paths import repo_path

    shown = 0
    cols = st.columns(GALLERY)
    for i in chosen:
        rel = str(meta["path"].iloc[i] or "")
        if not rel:
            continue
        for root in (repo_path("data/geo-captions"), repo_path("data"), ref.folder.parent):
            file = root / rel
            if file.is_file():
                cols[shown].image(str(file), caption=str(meta.iloc[i].get("place", "") or meta["id"].iloc[i])[:40])
                shown += 1
                break
        if shown == GALLERY:
            break


# -- the page's sections (pages/8_Embeddings.py lays them out) -------------------------------


def pick_and_load():
    """(set, vectors, meta) of the picked set, or st.stop() with an info / error box."""
    ref = pick_set()
    if ref is None:
        st.stop()
    try:
        x, meta = load(ref)
    except WorkbenchError as exc:
        st.error(f"{ref.key}: {exc}")
        st.stop()
    return ref, x, meta


def projections(ref: SetRef, x: np.ndarray, meta: pd.DataFrame) -> list[tuple]:
    """The projection panels (one, or two with the compare toggle): form, job, result.
    Returns the finished ones as (widget, params, result, set, meta); stops when the
    first panel's projection is not ready."""
    compare = st.toggle("Compare with a second projection (of this set or another run's)", value=False,
                        key="em_compare")
    panels = [("em", "Projection", ref, x, meta)]
    if compare:
        ref2 = pick_set(key="em_set2", label="Second embedding set", default=ref)
        try:
            x2, meta2 = (x, meta) if ref2 == ref else load(ref2)
            panels.append(("em2", "Second projection", ref2, x2, meta2))
        except WorkbenchError as exc:
            st.error(f"{ref2.key}: {exc}")
    ready = []
    for widget, title, pref, px, pmeta in panels:
        if compare:
            st.markdown(f"**{title}** · {pref.key}")
        params = params_form(len(px), key=widget)
        try:
            key = projection_key(pref, params.check())
        except WorkbenchError as exc:
            st.error(str(exc))
            continue
        if job_panel(pref, params, key, widget).get("state") == "done":
            ready.append((widget, params, result(key), pref, pmeta))
    if not ready or ready[0][3] != ref:
        st.stop()
    return ready


def scatters(ready: list[tuple], ref: SetRef, shown: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Colour controls and one scatter per finished projection; (selected rows of ``shown``,
    the points ringed by the last map click)."""
    rows = ready[0][2]["rows"]
    c1, c2 = st.columns([3, 1])
    color = c1.selectbox("Colour by", color_columns(shown), key="em_color")
    join = c2.checkbox("Join paired points", value=False, key="em_join",
                       help="a line from each image to its captions (the set's 'group' column)")
    highlight = near_click(shown, st.session_state.get("em_click"))
    chosen = np.zeros(0, np.int64)
    for col, (widget, params, res, pref, pmeta) in zip(st.columns(len(ready)), ready):
        with col:
            st.caption(quality_caption(res))
            linked = pref == ref and np.array_equal(res["rows"], rows)
            own = shown if linked else pmeta.iloc[res["rows"]].reset_index(drop=True)
            own_color = color if color in own else color_columns(own)[0]
            if not linked:
                st.caption("Another set, or other points of this one (another seed or max points): its selection is "
                           "shown here only, not linked to the map.")
            event = st.plotly_chart(scatter(res["coords"], own, own_color, highlight if linked else None, join),
                                    key=f"{widget}_scatter", on_select="rerun", selection_mode=("box", "lasso"),
                                    width="stretch", theme=None)  # no theme pass over 100k points in the browser
            if linked:
                chosen = np.union1d(chosen, selected_points(event))
    return chosen, highlight


def selection_section(x: np.ndarray, shown: pd.DataFrame, chosen: np.ndarray, highlight: np.ndarray,
                      ref: SetRef, metric: str) -> None:
    """The selection on the map, its nearest neighbours in the original space, a gallery and
    a table; a map click is kept for the next rerun's rings."""
    n = len(chosen)
    st.subheader(f"Selection: {n:,} point{'s' if n > 1 else ''}" if n else "Selection")
    if not n:
        st.caption(f"Draw a box or a lasso on the scatter to see those points on the map (and their images in a "
                   f"gallery). A click on the map rings the points within {NEAR_KM:.0f} km of it in the scatter "
                   f"({len(highlight):,} now).")
    left, right = st.columns([3, 2])
    with left:
        click = selection_map(shown, chosen, key="em_map")
        if click and click != st.session_state.get("em_click"):
            st.session_state["em_click"] = click
            st.rerun()
    with right:
        if n:
            st.markdown("**Nearest to the selection (original space)**")
            st.dataframe(neighbours(x, shown, chosen, metric), hide_index=True, key="em_knn")
    if n:
        gallery(shown, chosen, ref)
        st.dataframe(shown.iloc[chosen].head(500), hide_index=True, key="em_selection")
