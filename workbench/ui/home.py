"""What the Home page shows: which demo assets exist, the pages, jobs at a glance.

The asset checks only look at the file system (no torch, no datasets loaded), so the Home
page opens instantly even on a fresh clone.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import streamlit as st

from workbench.paths import ASSETS, CHECKPOINTS, REPO_ROOT, STATIC
from workbench.ui.fmt import fmt_count

DATA_ROOT = REPO_ROOT / "data"
PAGES_DIR = REPO_ROOT / "pages"
CORE_SECTION = "Workbench"
BUILD_DEMO = "python -m workbench data build-demo"
MAKE_APP = "make app"
# What each demo dataset is for (datasets themselves come from workbench.data.demo's registry)
DATASET_USES = {
    "cities": "GeoNames cities with names and population (softprompt, location encoders)",
    "gallery": "GPS gallery of 100K real photo locations (retrieval, probes)",
    "geo-captions": "Blue Marble tiles with 5 generated captions each, pre-encoded (projection heads, retrieval)",
    "geo-patches": "Blue Marble image patches with lat/lon (geolocator, satclip)",
    "photos": "sample photos to geolocate",
}


def manifest_status(folder: Path, name: str) -> tuple[bool, str]:
    """(present, detail) of a demo dataset folder: present when its manifest.json names the
    dataset and every file it lists exists (an interrupted build has no manifest)."""
    try:
        manifest = json.loads((Path(folder) / "manifest.json").read_text())
    except FileNotFoundError:
        return False, "no manifest.json (not built)" if Path(folder).is_dir() else "not built"
    except (OSError, ValueError):
        return False, "unreadable manifest.json"
    if manifest.get("dataset") != name:
        return False, f"manifest.json is for {manifest.get('dataset')!r}"
    files = manifest.get("files", [])
    missing = [f for f in files if not (Path(folder) / f).exists()]
    if missing:
        return False, f"{len(missing)} of {len(files)} files missing (e.g. {missing[0]})"
    counts = manifest.get("counts") or {}
    if not isinstance(counts, dict):
        return True, ""
    return True, ", ".join(f"{fmt_count(v) if isinstance(v, (int, float)) else v} {k}" for k, v in counts.items())


def demo_assets(data_root: Path, static_root: Path, assets_root: Path,
                checkpoints_root: Path) -> pd.DataFrame:
    """One row per demo asset: asset, present (bool), detail, build (command), what, path.

    Datasets are the entries of ``workbench.data.demo.DEMO_DATASETS`` (``photos`` lives in
    ``assets_root/photos``, the others in ``data_root/<name>``), then the static web assets
    and every checkpoint under ``checkpoints_root``.
    """
    from workbench.data.demo import DEMO_DATASETS
    from workbench.data.static_assets import ALL_FILES

    rows = []
    for name in DEMO_DATASETS.list():
        folder = Path(assets_root) / "photos" if name == "photos" else Path(data_root) / name
        present, detail = manifest_status(folder, name)
        label = "assets/photos" if name == "photos" else f"data/{name}"
        rows.append({"asset": label, "present": present, "detail": detail, "path": str(folder),
                     "build": f"{BUILD_DEMO} --only {name}", "what": DATASET_USES.get(name, "")})
    have = [rel for rel in ALL_FILES if (Path(static_root) / rel).is_file()]
    rows.append({"asset": "static/", "present": len(have) == len(ALL_FILES), "path": str(static_root),
                 "detail": f"{len(have)}/{len(ALL_FILES)} files", "build": f"{BUILD_DEMO} --only static",
                 "what": "Leaflet, jQuery and the Blue Marble basemap (offline maps)"})
    root = Path(checkpoints_root)
    ckpts = sorted(p for p in root.iterdir() if p.is_dir() or p.suffix == ".pt") if root.is_dir() else []
    for ckpt in ckpts:
        n_pt = len(list(ckpt.glob("*.pt"))) if ckpt.is_dir() else 1
        rows.append({"asset": f"checkpoints/{ckpt.name}", "present": n_pt > 0, "path": str(ckpt),
                     "detail": f"{n_pt} .pt files", "build": MAKE_APP, "what": "demo checkpoint"})
    if not ckpts:
        rows.append({"asset": "checkpoints/*", "present": False, "path": str(root), "detail": "none yet",
                     "build": MAKE_APP, "what": "small demo checkpoints"})
    return pd.DataFrame(rows, columns=["asset", "present", "detail", "build", "what", "path"])


_PREFIX = re.compile(r"^(\d+)_?")


def page_label(path: Path) -> str:
    """pages/2_Map_probe.py -> 'Map probe' (Streamlit's own naming of file-based pages)."""
    return _PREFIX.sub("", Path(path).stem).replace("_", " ").strip() or Path(path).stem


def page_files(pages_dir: Path) -> list[Path]:
    """Page scripts in Streamlit's order: by numeric prefix, then name; '_'-prefixed skipped."""
    if not Path(pages_dir).is_dir():
        return []
    files = [p for p in Path(pages_dir).glob("*.py") if not p.name.startswith("_")]

    def order(p: Path) -> tuple:
        m = _PREFIX.match(p.stem)
        return (int(m.group(1)) if m else float("inf"), p.stem)

    return sorted(files, key=order)


# -- streamlit ------------------------------------------------------------------------------


@st.cache_data(ttl=30, show_spinner=False)
def cached_demo_assets(data_root: str, static_root: str, assets_root: str,
                       checkpoints_root: str) -> pd.DataFrame:
    return demo_assets(Path(data_root), Path(static_root), Path(assets_root), Path(checkpoints_root))


def assets_section() -> None:
    table = cached_demo_assets(str(DATA_ROOT), str(STATIC), str(ASSETS), str(CHECKPOINTS))
    missing = table[~table["present"]]
    if missing.empty:
        st.success("All demo assets are present.")
    else:
        st.warning(f"{len(missing)} of {len(table)} demo assets are missing: "
                   f"{', '.join(missing['asset'])}. Build everything with `{BUILD_DEMO}` (or `{MAKE_APP}`).")
    # plain words, not emoji: machines without an emoji font draw those as empty boxes
    shown = table.assign(present=table["present"].map({True: "present", False: "missing"}))
    st.dataframe(
        shown.drop(columns=["path"]), hide_index=True, key="demo_assets",
        column_config={"build": st.column_config.TextColumn("how to build", width="large")},
    )


def jobs_section(refresh_s: float = 5.0) -> None:
    """Active jobs (queued / running) and a count of runs per state; refreshes itself every
    ``refresh_s`` seconds while a job is active."""
    from workbench.errors import WorkbenchError
    from workbench.runs import JobManager
    from workbench.ui.run_tables import ACTIVE_STATES, runs_overview

    try:
        jobs = JobManager()
        statuses = jobs.statuses()
    except WorkbenchError as exc:
        st.error(str(exc))
        return
    first = [statuses]

    @st.fragment(run_every=refresh_s if any(s.get("state") in ACTIVE_STATES for _, s in statuses) else None)
    def glance() -> None:
        current = first.pop() if first else jobs.statuses()
        if not current:
            st.caption(f"No runs yet in `{jobs.store.root}`.")
            return
        counts = pd.Series([s.get("state", "queued") for _, s in current]).value_counts()
        st.caption(" · ".join(f"{n} {state}" for state, n in counts.items()) + f" in `{jobs.store.root}`")
        active = [(r, s) for r, s in current if s.get("state") in ACTIVE_STATES]
        if not active:
            st.caption("No job is running.")
            return
        # one bar per job, its text the phase or step (``describe``): readable in a narrow column
        for row in runs_overview(active).itertuples(index=False):
            st.progress(row.progress, text=f"**{row.run}** · {row.state} · {row.now} · {row.duration}")

    glance()


HOME_INTRO = (
    "A research workbench for **geographic contrastive learning** and **image geolocation**. "
    "Launch training runs from the browser and watch them live, probe location models on a "
    "map, geolocate photos, and inspect embeddings and worst errors. Everything here is also "
    "available from `python -m workbench ...` and from Python; jobs run as background "
    "processes, so closing the app stops nothing."
)


def home_page() -> None:
    """The Home page: demo assets, links to the pages, jobs at a glance."""
    st.title("Geo Workbench")
    st.markdown(HOME_INTRO)
    left, right = st.columns([2, 1])
    with left:
        st.subheader("Demo assets")
        assets_section()
    with right:
        st.subheader("Pages")
        page_links()
        st.subheader("Jobs")
        jobs_section()


def page_sections(pages_dir: Path = PAGES_DIR) -> tuple[dict[str, list[Path]], str | None]:
    """({section title: page files}, error): the core's pages (every file in pages/ that no
    line claims), then one section per research line with the pages it declares
    (``workbench.lines``), in the lines' order. A plugin that cannot be imported drops out
    with its one-line error instead of taking the app down."""
    from workbench import lines
    from workbench.errors import WorkbenchError

    try:
        found, error = lines.lines(), None
    except WorkbenchError as exc:
        found, error = [line for line in lines.lines_builtin()], str(exc)
    claimed = {p.resolve() for line in found for p in line.pages}
    sections = {CORE_SECTION: [p for p in page_files(pages_dir) if p.resolve() not in claimed]}
    for line in found:
        pages = [p for p in line.pages if p.is_file()]
        if pages:
            sections.setdefault(line.title, []).extend(pages)
    return sections, error


def page_ref(path: Path) -> str:
    """What st.Page / st.page_link take: "pages/<name>" for a file in pages/ (so it keeps
    the URL path Streamlit gives it without navigation: "pages/1_Runs.py" -> /Runs), the
    absolute path for a page a plugin line ships in its own folder."""
    path = Path(path)
    return f"pages/{path.name}" if path.resolve().parent == PAGES_DIR.resolve() else str(path.resolve())


def navigation_pages() -> dict[str, list]:
    """``st.navigation``'s sections: the core (Home, at the app's root URL and titled
    "Home", then the core pages) and one section per research line."""
    sections, error = page_sections()
    if error:
        st.error(error)
    home = st.Page(home_page, title="Home", default=True)
    out = {CORE_SECTION: [home, *(st.Page(page_ref(p)) for p in sections.pop(CORE_SECTION))]}
    out.update({title: [st.Page(page_ref(p)) for p in files] for title, files in sections.items()})
    return out


def page_links() -> None:
    """A link to every page, grouped like the sidebar (new pages appear without editing Home)."""
    sections, _ = page_sections()
    if not any(sections.values()):
        st.caption("No pages yet.")
    for title, files in sections.items():
        if files:
            st.caption(title)
        for path in files:
            st.page_link(page_ref(path), label=page_label(path))
