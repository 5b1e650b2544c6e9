"""The launch form, generated from an experiment kind's config dataclass.

Every leaf field of the kind's ``RunConfig`` subclass (``field_docs``) becomes one widget:
a selectbox where the field declares ``choices``, a checkbox for bools, a number input for
ints (limited to the field's declared range), and a text input for everything else (floats
included, so ``1e-4`` stays readable and exact; lists and mappings as YAML flow text). Each
widget's help gives the field's meaning, unit and valid range. Submitted values go back
through the same ``key=value`` override parser the CLI uses, so the app and
``python -m workbench train`` accept and reject exactly the same configs.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Mapping

import streamlit as st

from workbench.config import field_docs, flatten, read_yaml, to_dict
from workbench.errors import WorkbenchError

RUN_SECTION = "run"  # top-level fields (name, seed, kind-specific scalars)
LAST_SECTIONS = ("train",)  # shared trainer settings go after the kind's own sections
NO_PRESET = "(defaults)"


# -- pure helpers (no streamlit calls) -----------------------------------------------------


def form_fields(kind: str) -> list[dict]:
    """``field_docs`` of the kind's config class, without ``kind`` itself (it is fixed)."""
    from workbench.experiments import config_class

    return [doc for doc in field_docs(config_class(kind)) if doc["key"] != "kind"]


def open_sections(kind: str) -> tuple[str, ...]:
    """Sections the form shows expanded: the top-level fields and the kind's main sections
    (``main_sections`` of its config class, e.g. data / model / train) that the config has;
    a plugin line without, say, a ``model`` section keeps the default declaration."""
    from workbench.experiments import config_class

    present = form_sections(form_fields(kind))
    return (RUN_SECTION, *(s for s in config_class(kind).main_sections if s in present))


def form_sections(docs: list[dict]) -> dict[str, list[dict]]:
    """Fields grouped by their first key part ("train.lr" -> "train"; "seed" -> "run"):
    "run" first, the kind's own sections in declaration order, "train" last."""
    sections: dict[str, list[dict]] = {}
    for doc in docs:
        section = doc["key"].split(".", 1)[0] if "." in doc["key"] else RUN_SECTION
        sections.setdefault(section, []).append(doc)
    order = sorted(sections, key=lambda s: (s != RUN_SECTION, s in LAST_SECTIONS))
    return {s: sections[s] for s in order}


def widget_type(doc: Mapping) -> str:
    """'select' (declared choices), 'checkbox' (bool), 'int', or 'text' (everything else)."""
    if doc.get("choices"):
        return "select"
    if doc["type"] is bool:
        return "checkbox"
    if doc["type"] is int:
        return "int"
    return "text"


def int_limits(doc: Mapping) -> tuple[int | None, int | None]:
    """(min, max) of an int field's number input, from its declared bounds."""
    return doc["bounds"].int_limits() if doc.get("bounds") is not None else (None, None)


def help_text(doc: Mapping) -> str:
    """Widget help: what the field means, its valid range (with the unit), key and default."""
    lines = [doc["help"] or doc["key"]]
    if doc.get("range"):
        lines.append(f"Valid: {doc['range']}.")
    elif doc.get("unit"):
        lines.append(f"Unit: {doc['unit']}.")
    if doc.get("choices"):
        lines.append(f"One of: {', '.join(f'`{c}`' for c in doc['choices'])}.")
    for selector, allowed in (doc.get("applies") or {}).items():
        lines.append(f"Only with `{selector}` = {' / '.join(f'`{a}`' for a in allowed)}.")
    lines.append(f"`{doc['key']}` · default `{as_text(doc['default'])}`")
    return "\n\n".join(lines)


def as_text(value: Any) -> str:
    """A value as the text a user edits: floats exact (repr: 0.0001, 1e-05), None as
    'null', lists/mappings as JSON (valid YAML flow), strings as they are."""
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    return str(value)


def as_override(doc: Mapping, value: Any) -> str:
    """A widget value as a ``key=value`` override for ``build_config``."""
    if isinstance(value, bool):
        return f"{doc['key']}={'true' if value else 'false'}"
    if isinstance(value, str):
        return f"{doc['key']}={value}"
    return f"{doc['key']}={as_text(value)}"


def presets(kind: str) -> dict[str, Path]:
    """Every line's YAML presets (``workbench.lines.presets``) whose ``kind`` is ``kind``, by
    name. Unreadable files are skipped (the CLI reports them)."""
    from workbench import lines

    found = {}
    for name, path in lines.presets().items():
        try:
            data = read_yaml(path)
        except WorkbenchError:
            continue
        if data.get("kind") == kind:
            found[name] = path
    return found


def form_defaults(kind: str, preset: Path | None = None) -> dict[str, Any]:
    """Flat key -> value of the kind's resolved defaults, or of a preset (validated; a bad
    preset raises ConfigError)."""
    from workbench.experiments import build_config

    data = read_yaml(preset) if preset is not None else {}
    return flatten(to_dict(build_config({**data, "kind": kind})))


def config_from_form(kind: str, values: Mapping[str, Any], docs: list[dict]):
    """The typed, validated config from widget values (flat key -> value); raises
    ConfigError naming the bad key, exactly like ``python -m workbench train`` would."""
    from workbench.experiments import build_config

    overrides = [as_override(doc, values[doc["key"]]) for doc in docs if doc["key"] in values]
    return build_config({"kind": kind}, overrides)


def widget_key(kind: str, preset: str, key: str) -> str:
    """Session-state key of one form widget; kind and preset are part of it so that
    switching either starts from that preset's values."""
    return f"cfg::{kind}::{preset}::{key}"


# -- streamlit ------------------------------------------------------------------------------


@st.cache_data(ttl=10, show_spinner=False)
def _cached_presets(kind: str) -> dict[str, Path]:
    return presets(kind)


def config_widget(doc: Mapping, default: Any, key: str) -> None:
    """One input for one config field; its value lands in ``st.session_state[key]``."""
    label = doc.get("label") or doc["key"].rsplit(".", 1)[-1]
    help_ = help_text(doc)
    kind = widget_type(doc)
    if kind == "select":
        options = list(doc["choices"])
        index = options.index(default) if default in options else 0
        st.selectbox(label, options, index=index, key=key, help=help_)
    elif kind == "checkbox":
        st.checkbox(label, value=bool(default), key=key, help=help_)
    elif kind == "int":
        low, high = int_limits(doc)
        st.number_input(label, value=int(default), min_value=low, max_value=high, step=1, format="%d",
                        key=key, help=help_)
    else:
        st.text_input(label, value=as_text(default), key=key, help=help_)


def launch_form(kind: str, on_submit: Callable[[Any], None], columns: int = 3) -> None:
    """Preset picker + the generated form for ``kind``. On submit, the config is built and
    validated; a ConfigError (naming the key and its valid range) is shown in an error box
    under the button, a valid config goes to ``on_submit(cfg)`` (which may raise
    WorkbenchError, shown the same way). The main sections start expanded."""
    found = _cached_presets(kind)
    names = [NO_PRESET, *found]
    preset = st.selectbox("Start from", names, key=f"launch_preset::{kind}",
                          help=f"the research lines' YAML presets (workbench/lines/*/configs) whose kind is '{kind}'")
    try:
        path = found.get(preset)
        defaults = form_defaults(kind, path)
    except WorkbenchError as exc:
        st.error(f"preset {preset}: {exc}. Showing the defaults instead.")
        defaults = form_defaults(kind)
    docs = form_fields(kind)
    expanded = open_sections(kind)
    error_key = f"launch_error::{kind}"
    with st.form(f"launch::{kind}", border=True):
        for section, fields in form_sections(docs).items():
            with st.expander(section, expanded=section in expanded):
                cols = st.columns(columns)
                for i, doc in enumerate(fields):
                    with cols[i % columns]:
                        config_widget(doc, defaults.get(doc["key"], doc["default"]),
                                      widget_key(kind, preset, doc["key"]))
        st.form_submit_button("Launch run", type="primary", on_click=_submit,
                              args=(kind, preset, docs, on_submit, error_key))
    if st.session_state.get(error_key):
        st.error(st.session_state.pop(error_key))


def _submit(kind: str, preset: str, docs: list[dict], on_submit: Callable, error_key: str) -> None:
    """Form callback: runs before the rerun, so the page below already sees the new run."""
    values = {doc["key"]: st.session_state[widget_key(kind, preset, doc["key"])] for doc in docs
              if widget_key(kind, preset, doc["key"]) in st.session_state}
    try:
        on_submit(config_from_form(kind, values, docs))
    except WorkbenchError as exc:
        st.session_state[error_key] = f"Not launched: {exc}"
