"""The launch form is generated from the config dataclass and validates like the CLI."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from workbench import lines
from workbench.config import to_dict
from workbench.errors import ConfigError
from workbench.experiments import build_config, load_kinds
from workbench.ui.forms import (
    NO_PRESET,
    as_override,
    as_text,
    config_from_form,
    form_defaults,
    form_fields,
    form_sections,
    help_text,
    int_limits,
    open_sections,
    presets,
    widget_key,
    widget_type,
)


def test_sections_cover_every_field_in_order():
    docs = form_fields("toy")
    sections = form_sections(docs)
    assert list(sections) == ["run", "data", "model", "train"]
    assert [d["key"] for d in sections["run"]] == ["name", "seed", "sleep_s", "nan_at_step", "setup_sleep_s",
                                                    "raise_at_step", "cache_file", "nested_fit", "raise_rank"]
    assert "kind" not in [d["key"] for d in docs]
    assert sum(len(v) for v in sections.values()) == len(docs)


def test_widget_types():
    by_key = {d["key"]: d for d in form_fields("toy")}
    assert widget_type(by_key["train.optimizer"]) == "select"
    assert widget_type(by_key["train.amp"]) == "checkbox"
    assert widget_type(by_key["train.batch_size"]) == "int"
    assert widget_type(by_key["train.lr"]) == "text"  # floats as text: 1e-4 stays readable
    assert widget_type(by_key["name"]) == "text"


@pytest.mark.parametrize("value,text", [(1e-4, "0.0001"), (1e-05, "1e-05"), (3e-4, "0.0003"),
                                        (0.123456789, "0.123456789"), (None, "null"), ([1, 2], "[1, 2]"),
                                        ((0.5, 1.0), "[0.5, 1.0]"), ("adamw", "adamw")])
def test_as_text(value, text):
    assert as_text(value) == text


@pytest.mark.parametrize("kind", load_kinds())
def test_defaults_round_trip_to_the_same_config(kind):
    """Every registered kind: the untouched form builds exactly the kind's default config."""
    docs = form_fields(kind)
    defaults = form_defaults(kind)
    cfg = config_from_form(kind, {d["key"]: _widget_value(d, defaults[d["key"]]) for d in docs}, docs)
    assert to_dict(cfg) == to_dict(build_config({"kind": kind}))


def _widget_value(doc, value):
    """What the widget would hold for ``value``."""
    return as_text(value) if widget_type(doc) == "text" else value


def test_edited_values_are_typed():
    docs = form_fields("toy")
    values = {d["key"]: _widget_value(d, v) for d, v in zip(docs, [form_defaults("toy")[d["key"]] for d in docs])}
    values.update({"train.lr": "1e-05", "train.amp": False, "train.batch_size": 8, "name": "007",
                   "train.optimizer": "sgd", "data.noise": "0.25"})
    cfg = config_from_form("toy", values, docs)
    assert cfg.train.lr == 1e-05 and isinstance(cfg.train.lr, float)
    assert cfg.train.amp is False and cfg.train.batch_size == 8 and cfg.train.optimizer == "sgd"
    assert cfg.name == "007" and cfg.data.noise == 0.25
    assert as_override({"key": "train.amp"}, True) == "train.amp=true"


@pytest.mark.parametrize("key,value,message", [
    ("train.lr", "fast", "train.lr: expected float"),
    ("train.optimizer", "nadam", "Choose one of ['adamw', 'adam', 'sgd']"),
    ("data.noise", "", "data.noise: expected float"),
])
def test_bad_values_raise_config_error(key, value, message):
    docs = form_fields("toy")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config_from_form("toy", {key: value}, docs)


def test_presets_filter_by_kind_and_fill_defaults(tmp_path, monkeypatch):
    (tmp_path / "toy_fast.yaml").write_text("kind: toy\nsleep_s: 0.01\ntrain:\n  lr: 3.0e-4\n  max_epochs: 2\n")
    (tmp_path / "other.yaml").write_text("kind: geolocator\n")
    (tmp_path / "broken.yaml").write_text("kind: toy\n  bad: [\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "toy_bad.yaml").write_text("kind: toy\ntrain:\n  optimizer: nadam\n")
    files = {"toy_fast": tmp_path / "toy_fast.yaml", "other": tmp_path / "other.yaml",
             "broken": tmp_path / "broken.yaml", "sub/toy_bad": tmp_path / "sub" / "toy_bad.yaml"}
    monkeypatch.setattr(lines, "presets", lambda: files)
    found = presets("toy")
    assert sorted(found) == ["sub/toy_bad", "toy_fast"]
    defaults = form_defaults("toy", found["toy_fast"])
    assert defaults["train.lr"] == 3e-4 and defaults["train.max_epochs"] == 2 and defaults["sleep_s"] == 0.01
    assert defaults["train.batch_size"] == 32  # untouched keys keep the dataclass default
    with pytest.raises(ConfigError, match="nadam"):
        form_defaults("toy", found["sub/toy_bad"])
    monkeypatch.setattr(lines, "presets", lambda: {})
    assert presets("toy") == {}


# -- ranges, units and open sections ----------------------------------------------------------


def test_help_gives_meaning_range_unit_key_and_default():
    by_key = {d["key"]: d for d in form_fields("geolocator")}
    text = help_text(by_key["data.image_size"])
    assert text.startswith("side of the square network input")
    assert "Valid: an integer in [8, 4096] (px)." in text and "`data.image_size` · default `64`" in text
    assert "Valid: a finite number >= 0 (km)." in help_text(by_key["labels.smoothing_km"])
    assert "Valid: a number in [0, 1)." in help_text(by_key["model.dropout"])
    assert "One of: `flat`, `multilabel`, `per_level`." in help_text(by_key["labels.mode"])
    assert "Valid:" not in help_text(by_key["data.csv"])


def test_number_inputs_take_their_limits_from_the_declared_bounds():
    by_key = {d["key"]: d for d in form_fields("geolocator")}
    assert int_limits(by_key["train.batch_size"]) == (1, None)
    assert int_limits(by_key["labels.max_level"]) == (0, 30)
    assert int_limits(by_key["model.freeze_epochs"]) == (-1, None)
    assert int_limits(by_key["data.image_size"]) == (8, 4096)


def test_main_sections_are_declared_per_kind():
    assert open_sections("toy") == ("run", "data", "model", "train")
    assert open_sections("geolocator") == ("run", "data", "labels", "model", "train")
    assert open_sections("softprompt") == ("run", "data", "targets", "model", "train")
    for kind in load_kinds():  # every declared main section exists in the form
        assert set(open_sections(kind)) <= set(form_sections(form_fields(kind)))


def _form_app(kind: str):
    """A page with only the launch form for ``kind``; a launched config lands in the session."""
    import streamlit as st

    from workbench.config import to_dict
    from workbench.ui.forms import launch_form

    def on_submit(cfg):
        st.session_state["launched"] = to_dict(cfg)

    launch_form(st.session_state.get("kind", "toy"), on_submit=on_submit)


def form_app(kind: str) -> AppTest:
    at = AppTest.from_function(_form_app, args=(kind,), default_timeout=60)
    at.session_state["kind"] = kind
    return at.run()


def field(at: AppTest, widget: str, kind: str, key: str):
    return getattr(at, widget)(key=widget_key(kind, NO_PRESET, key))


@pytest.mark.parametrize("kind", ["toy", "geolocator", "softprompt"])
def test_form_number_inputs_carry_bounds_and_help(kind):
    at = form_app(kind)
    assert not at.exception
    docs = [d for d in form_fields(kind) if widget_type(d) == "int"]
    assert docs
    for doc in docs:
        box = field(at, "number_input", kind, doc["key"])
        low, high = int_limits(doc)
        assert (box.min, box.max) == (low, high), doc["key"]
        assert f"Valid: {doc['range']}." in box.help, doc["key"]
    batch = field(at, "number_input", kind, "train.batch_size")
    assert batch.min == 1 and "(samples)" in batch.help
    lr = field(at, "text_input", kind, "train.lr")
    assert "Valid: a finite number >= 0." in lr.help


@pytest.mark.parametrize("kind, collapsed", [("toy", set()), ("geolocator", {"eval"}),
                                             ("softprompt", {"features", "loss"})])
def test_form_main_sections_start_expanded(kind, collapsed):
    at = form_app(kind)
    states = {e.label: e.proto.expanded for e in at.expander}
    assert set(states) == set(form_sections(form_fields(kind)))
    assert {s for s, open_ in states.items() if not open_} == collapsed
    assert states["train"] and states["run"] and states["data"] and states["model"]


@pytest.mark.parametrize("widget, key, value, message", [
    ("text_input", "train.lr", "nan", "train.lr: nan is out of range; must be a finite number >= 0"),
    ("text_input", "model.dropout", "1", "model.dropout: 1.0 is out of range; must be a number in [0, 1)"),
])
def test_form_out_of_range_shows_an_error_box_and_launches_nothing(widget, key, value, message):
    at = form_app("toy")
    field(at, widget, "toy", key).set_value(value)
    [b for b in at.button if b.label == "Launch run"][0].click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [f"Not launched: {message}"]
    assert "launched" not in at.session_state


def test_number_input_refuses_values_outside_its_bounds():
    """The widget itself holds ints in range; the same value through the form's config path
    (what any client could submit) is rejected by validation with the key and range."""
    at = form_app("toy")
    field(at, "number_input", "toy", "train.batch_size").set_value(0).run()
    assert field(at, "number_input", "toy", "train.batch_size").value == 32
    with pytest.raises(ConfigError, match=r"train.batch_size: 0 is out of range; must be an integer >= 1 \(samples\)"):
        config_from_form("toy", {"train.batch_size": 0}, form_fields("toy"))


def test_form_launches_a_valid_edit():
    at = form_app("toy")
    field(at, "number_input", "toy", "train.batch_size").set_value(1)
    field(at, "text_input", "toy", "model.dropout").set_value("0.5")
    [b for b in at.button if b.label == "Launch run"][0].click().run()
    assert not at.exception and not at.error
    cfg = at.session_state["launched"]
    assert cfg["train"]["batch_size"] == 1 and cfg["model"]["dropout"] == 0.5
