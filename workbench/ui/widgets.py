"""Small Streamlit helpers shared by the pages: page setup and messages that survive a rerun."""
from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import streamlit as st

PAGE_TITLE = "Geo Workbench"
Level = Literal["success", "info", "warning", "error"]


def page_setup() -> None:
    """The page config every page sets first (wide layout, one title for the browser tab)."""
    st.set_page_config(page_title=PAGE_TITLE, layout="wide")


def flash(area: str, level: Level, message: str) -> None:
    """Queue a message for ``show_flash(area)``: widget callbacks run before the rerun that
    draws the page, so they cannot draw it themselves."""
    st.session_state.setdefault(f"flash::{area}", []).append((level, message))


def show_flash(area: str) -> None:
    """Draw (once) the messages queued for ``area``."""
    for level, message in st.session_state.pop(f"flash::{area}", []):
        getattr(st, level)(message)


def pick_sources(sources: list, label: str, key: str, default: list[str] | None = None) -> list:
    """A multiselect of model sources (``Source.label``), ``default`` (else the first)
    preselected; the chosen sources in the order picked, or [] with a note asking for one."""
    labels = [s.label for s in sources]
    by_label = {s.label: s for s in sources}
    chosen = st.multiselect(label, labels, default=[d for d in (default or labels[:1]) if d in by_label], key=key)
    if not chosen:
        st.info("Pick at least one model.")
    return [by_label[name] for name in chosen]


def load_sources(sources: list, load: Callable, *artifacts: str) -> list:
    """``load(label, kind, path, stamp)`` of each source (a cached loader: the stamp, the
    mtime of its model files and the named artifacts, renews the cache); each one that fails
    to load gets an error box instead."""
    from workbench.errors import WorkbenchError

    models = []
    for s in sources:
        try:
            models.append(load(s.label, s.kind, str(s.path), s.stamp(*artifacts)))
        except WorkbenchError as exc:
            st.error(f"{s.label}: {exc}")
    return models
