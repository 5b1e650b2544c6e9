"""The launch form is generated from the config dataclass and validates like the CLI."""
from __future__ import annotations

import pytest

from workbench.config import to_dict
from workbench.errors import ConfigError
from workbench.experiments import build_config, load_kinds
from workbench.ui.forms import (
    as_override,
    as_text,
    config_from_form,
    form_defaults,
    form_fields,
    form_sections,
    presets,
    widget_type,
)


def test_sections_cover_every_field_in_order():
    docs = form_fields("toy")
    sections = form_sections(docs)
    assert list(sections) == ["run", "data", "model", "train"]
    assert [d["key"] for d in sections["run"]] == ["name", "seed", "sleep_s", "nan_at_step"]
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


def test_presets_filter_by_kind_and_fill_defaults(tmp_path):
    (tmp_path / "toy_fast.yaml").write_text("kind: toy\nsleep_s: 0.01\ntrain:\n  lr: 3.0e-4\n  max_epochs: 2\n")
    (tmp_path / "other.yaml").write_text("kind: geolocator\n")
    (tmp_path / "broken.yaml").write_text("kind: toy\n  bad: [\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "toy_bad.yaml").write_text("kind: toy\ntrain:\n  optimizer: nadam\n")
    found = presets("toy", tmp_path)
    assert sorted(found) == ["sub/toy_bad.yaml", "toy_fast.yaml"]
    defaults = form_defaults("toy", found["toy_fast.yaml"])
    assert defaults["train.lr"] == 3e-4 and defaults["train.max_epochs"] == 2 and defaults["sleep_s"] == 0.01
    assert defaults["train.batch_size"] == 32  # untouched keys keep the dataclass default
    with pytest.raises(ConfigError, match="nadam"):
        form_defaults("toy", found["sub/toy_bad.yaml"])
    assert presets("toy", tmp_path / "missing") == {}
