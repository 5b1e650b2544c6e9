"""Small Streamlit helpers shared by the pages: page setup and messages that survive a rerun."""
from __future__ import annotations

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
