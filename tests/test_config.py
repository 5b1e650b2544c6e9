import json
import re
import typing
from dataclasses import dataclass, field

import pytest

from tests.conftest import REPO_ROOT
from workbench.config import (Bounds, RunConfig, TrainConfig, apply_overrides, field_docs, flatten, from_dict,
                              option, read_yaml, to_dict, unflatten, write_yaml)
from workbench.errors import ConfigError
from workbench.experiments import build_config, config_class, load_config, load_kinds


@dataclass
class Head:
    hidden: int = option(64, "hidden units")
    dims: list[int] = option([1, 2], "dims")
    act: str = option("relu", "activation", choices=("relu", "gelu"))


@dataclass
class DemoConfig(RunConfig):
    kind: str = "demo"
    head: Head = field(default_factory=Head)
    ratio: float = option(0.5, "a float")
    flag: bool = option(False, "a bool")


def test_round_trip_yaml(tmp_path):
    cfg = from_dict(DemoConfig, {"head": {"hidden": 8, "dims": [3]}, "train": {"lr": 1e-4}})
    write_yaml(cfg, tmp_path / "c.yaml")
    again = from_dict(DemoConfig, read_yaml(tmp_path / "c.yaml"))
    assert again == cfg and again.head.dims == [3] and again.train.lr == 1e-4
    # every default is written out
    assert flatten(read_yaml(tmp_path / "c.yaml"))["train.scheduler"] == "cosine"


def test_overrides_nested_and_typed():
    data = apply_overrides({}, ["head.hidden=16", "train.lr=1e-4", "ratio=1", "flag=true",
                                "head.dims=[4, 5]", "name=007"], DemoConfig)
    cfg = from_dict(DemoConfig, data)
    assert cfg.head.hidden == 16 and cfg.train.lr == pytest.approx(1e-4)
    assert isinstance(cfg.ratio, float) and cfg.ratio == 1.0
    assert cfg.flag is True and cfg.head.dims == [4, 5]
    assert cfg.name == "007"  # str fields keep the raw text


@pytest.mark.parametrize("override, message", [
    ("head.hiden=3", r"unknown key 'head.hiden' in head. Valid keys: \['act', 'dims', 'hidden'\]"),
    ("nope=3", r"unknown key 'nope' in config. Valid keys: \["),
    ("head.hidden=abc", r"head.hidden: expected int, got str 'abc'"),
    ("flag=3", r"flag: expected bool"),
    ("head.act=tanh", r"head.act: 'tanh' is not valid. Choose one of \['relu', 'gelu'\]"),
    ("train.optimizer=lamb", r"train.optimizer: 'lamb' is not valid"),
    ("head=3", r"'head' is a section"),
    ("ratio", r"must look like key=value"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(DemoConfig, apply_overrides({}, [override], DemoConfig))


def test_unknown_key_in_yaml(tmp_path):
    (tmp_path / "c.yaml").write_text("kind: toy\ntrain:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'train.lrr' in train. Valid keys: \[.*'lr'"):
        load_config(tmp_path / "c.yaml")


def test_malformed_yaml_gives_line(tmp_path):
    (tmp_path / "c.yaml").write_text("kind: toy\ntrain: [1, 2\n")
    with pytest.raises(ConfigError, match=r"malformed YAML in .*c.yaml line \d+"):
        read_yaml(tmp_path / "c.yaml")


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        read_yaml(tmp_path / "none.yaml")
    (tmp_path / "l.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        read_yaml(tmp_path / "l.yaml")


def test_kind_dispatch_and_unknown_kind():
    cfg = build_config({"kind": "toy"}, ["model.hidden=5"])
    assert type(cfg).__name__ == "ToyConfig" and cfg.model.hidden == 5
    with pytest.raises(ConfigError, match="has no 'kind'"):
        build_config({})
    with pytest.raises(Exception, match=r"experiment kind 'nope' not found. Available: \[.*'toy'"):
        build_config({"kind": "nope"})


def test_field_docs_and_flatten():
    docs = {d["key"]: d for d in field_docs(DemoConfig)}
    assert docs["head.act"]["choices"] == ("relu", "gelu")
    assert docs["train.lr"]["default"] == TrainConfig().lr and docs["train.lr"]["type"] is float
    flat = flatten(to_dict(DemoConfig()))
    assert unflatten(flat) == to_dict(DemoConfig())


# -- declared ranges ------------------------------------------------------------------------


@dataclass
class Ranged(RunConfig):
    kind: str = "ranged"
    count: int = option(1, "at least one", unit="items", ge=1)
    share: float = option(0.5, "a fraction", ge=0, le=1)
    rate: float = option(0.1, "positive", gt=0)
    drop: float = option(0.0, "dropout", ge=0, lt=1)
    level: int = option(2, "S2 level", ge=0, le=30)
    jitter: list[float] = option([0.0, 0.0], "per item", ge=0)
    loose: float = option(1.0, "no range, still finite")


@pytest.mark.parametrize("key, value, message", [
    ("count", 0, "count: 0 is out of range; must be an integer >= 1 (items)"),
    ("count", -5, "count: -5 is out of range; must be an integer >= 1 (items)"),
    ("share", 1.5, "share: 1.5 is out of range; must be a number in [0, 1]"),
    ("share", -0.1, "share: -0.1 is out of range; must be a number in [0, 1]"),
    ("rate", 0.0, "rate: 0.0 is out of range; must be a finite number > 0"),
    ("drop", 1.0, "drop: 1.0 is out of range; must be a number in [0, 1)"),
    ("level", 31, "level: 31 is out of range; must be an integer in [0, 30]"),
    ("jitter", [0.1, -0.5], "jitter[1]: -0.5 is out of range; must be a finite number >= 0"),
    ("rate", float("nan"), "rate: nan is out of range; must be a finite number > 0"),
    ("rate", float("inf"), "rate: inf is out of range; must be a finite number > 0"),
    ("share", float("nan"), "share: nan is out of range; must be a number in [0, 1]"),
    ("loose", float("-inf"), "loose: -inf is out of range; must be a finite number"),
    ("seed", -1, "seed: -1 is out of range; must be an integer in [0, 4294967295]"),
])
def test_out_of_range_names_key_value_and_range(key, value, message):
    with pytest.raises(ConfigError) as exc:
        from_dict(Ranged, {key: value})
    assert str(exc.value) == message
    with pytest.raises(ConfigError, match=re.escape(message)):  # built directly too
        Ranged(**{key: value})


@pytest.mark.parametrize("key, value", [("count", 1), ("share", 0.0), ("share", 1.0), ("rate", 1e-12),
                                        ("drop", 0.0), ("drop", 0.999), ("level", 30), ("jitter", [0, 2.5])])
def test_values_on_and_inside_the_bounds_are_accepted(key, value):
    assert getattr(from_dict(Ranged, {key: value}), key) == value


@pytest.mark.parametrize("override, message", [
    ("train.batch_size=0", "train.batch_size: 0 is out of range; must be an integer >= 1 (samples)"),
    ("train.max_epochs=-1", "train.max_epochs: -1 is out of range; must be an integer >= 1 (epochs)"),
    ("train.lr=nan", "train.lr: nan is out of range; must be a finite number >= 0"),
    ("train.lr=.nan", "train.lr: nan is out of range"),
    ("train.lr=inf", "train.lr: inf is out of range"),
    ("train.lr=-inf", "train.lr: -inf is out of range"),
    ("train.lr=1e999", "train.lr: inf is out of range"),
    ("train.lr=-1e-3", "train.lr: -0.001 is out of range"),
    ("train.momentum=1.5", "train.momentum: 1.5 is out of range; must be a number in [0, 1]"),
    ("train.plateau_factor=1", "train.plateau_factor: 1.0 is out of range; must be a number in (0, 1)"),
    ("train.log_every=0", "train.log_every: 0 is out of range; must be an integer >= 1 (steps)"),
    ("train.patience=0", "train.patience: 0 is out of range"),
    ("train.max_steps=-1", "train.max_steps: -1 is out of range; must be an integer >= 0 (steps)"),
    ("model.dropout=1", "model.dropout: 1.0 is out of range; must be a number in [0, 1)"),
    ("data.n_train=0", "data.n_train: 0 is out of range; must be an integer >= 1 (samples)"),
])
def test_out_of_range_overrides_and_yaml_fail_at_build(override, message, tmp_path):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config({"kind": "toy"}, [override])
    key, value = override.split("=", 1)
    *parents, leaf = key.split(".")
    text = "kind: toy\n" + "".join(f"{'  ' * i}{p}:\n" for i, p in enumerate(parents))
    (tmp_path / "c.yaml").write_text(text + f"{'  ' * len(parents)}{leaf}: {value}\n")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(tmp_path / "c.yaml")


def test_huge_integer_for_a_float_is_a_config_error():
    with pytest.raises(ConfigError, match="train.lr: 1000+ is out of range; must be a finite number"):
        build_config({"kind": "toy"}, ["train.lr=1" + "0" * 400])


def test_bounds_describe_and_limit_widgets():
    assert Bounds(ge=1).describe(integer=True, unit="px") == "an integer >= 1 (px)"
    assert Bounds(gt=0).describe(integer=False) == "a finite number > 0"
    assert Bounds(ge=0, lt=1).describe(integer=False) == "a number in [0, 1)"
    assert Bounds(gt=0, le=0.5).describe(integer=False) == "a number in (0, 0.5]"
    assert Bounds(le=10).describe(integer=True) == "an integer <= 10"
    assert Bounds(ge=1e-8).describe(integer=False) == "a finite number >= 1e-08"
    assert Bounds(ge=-1, le=30).int_limits() == (-1, 30)
    assert Bounds(gt=0, lt=5).int_limits() == (1, 4)
    assert Bounds(gt=0).int_limits() == (1, None)
    assert not Bounds(ge=0).contains(float("nan")) and not Bounds(ge=0).contains(float("inf"))
    assert Bounds(ge=0, finite=False).contains(float("inf"))


def _numeric_item_type(tp):
    """int / float for numeric fields and lists of numbers; None otherwise."""
    item = (typing.get_args(tp) or (None,))[0] if typing.get_origin(tp) in (list, tuple) else tp
    return item if item in (int, float) else None


def _registered_numeric_fields():
    kinds = load_kinds()
    assert {"geolocator", "softprompt", "toy"} <= set(kinds)
    for kind in kinds:
        for doc in field_docs(config_class(kind)):
            if _numeric_item_type(doc["type"]) is not None:
                yield kind, doc


def test_every_numeric_option_of_every_kind_declares_a_range():
    """So that no future option can forget: a numeric field without bounds fails here."""
    missing = [f"{kind}: {doc['key']}" for kind, doc in _registered_numeric_fields() if doc["bounds"] is None]
    assert not missing, f"declare ge= / gt= / le= / lt= on these options: {missing}"
    for kind, doc in _registered_numeric_fields():
        assert doc["range"], (kind, doc["key"])
        values = doc["default"] if isinstance(doc["default"], list) else [doc["default"]]
        assert all(doc["bounds"].contains(v) for v in values), (kind, doc["key"], doc["default"])


def _just_outside(bounds: Bounds, integer: bool) -> list:
    step = 1 if integer else 0.5
    out = []
    if bounds.ge is not None:
        out.append(bounds.ge - step)
    if bounds.gt is not None:
        out.append(bounds.gt if integer else float(bounds.gt))
    if bounds.le is not None:
        out.append(bounds.le + step)
    if bounds.lt is not None:
        out.append(bounds.lt if integer else float(bounds.lt))
    return [int(v) for v in out] if integer else out


@pytest.mark.parametrize("kind, doc", list(_registered_numeric_fields()),
                         ids=lambda v: v if isinstance(v, str) else v["key"])
def test_every_declared_range_is_enforced(kind, doc):
    """Every numeric option of every kind: a value just outside each bound (and NaN for
    floats) fails at build time with the key and the valid range."""
    item_type = _numeric_item_type(doc["type"])
    bad = _just_outside(doc["bounds"], item_type is int) + ([float("nan")] if item_type is float else [])
    assert bad
    for value in bad:
        text = json.dumps([value] if typing.get_origin(doc["type"]) in (list, tuple) else value)
        text = text.replace("NaN", ".nan")
        with pytest.raises(ConfigError) as exc:
            build_config({"kind": kind}, [f"{doc['key']}={text}"])
        assert str(exc.value).startswith(doc["key"]) and "out of range" in str(exc.value), str(exc.value)
        assert doc["range"].removeprefix("each item ") in str(exc.value)


@pytest.mark.parametrize("kind, overrides, message", [
    ("geolocator", ["labels.t_min=50", "labels.t_max=10"], "labels.t_min (50) must be <= labels.t_max (10)"),
    ("geolocator", ["labels.min_level=8", "labels.max_level=4"], "labels.min_level (8) must be <= labels.max_level"),
    ("geolocator", ["data.image_size=64", "data.resize=32"], "data.resize (32 px) must be 0 or >= data.image_size"),
    ("geolocator", ["data.color_jitter=[0, 0, 0, 0.8]"], "hue <= 0.5"),
    ("geolocator", ["data.color_jitter=[0.1]"], "data.color_jitter must be 4 numbers"),
    ("geolocator", ["eval.location=weighted", "eval.weighted_k=9", "eval.top_k=5"],
     "eval.weighted_k (9) must be <= eval.top_k (5)"),
    ("geolocator", ["data.cache_features=true"], "model.freeze_epochs=-1"),
    ("softprompt", ["targets.max_tokens=300"],
     "targets.max_tokens: 300 is out of range; must be an integer in [2, 256]"),
    ("softprompt", ["targets.template=a photo of {town}"], "unknown placeholder {town}"),
    ("softprompt", ["model.arch=lightweight_transformer", "model.d_model=10", "model.heads=4"],
     "divisible by model.heads"),
    ("softprompt", ["model.heads=0"], "model.heads: 0 is out of range; must be an integer >= 1 (heads)"),
    ("softprompt", ["seed=4294967295", "seeds=2"], "seed (4294967295) + seeds (2) - 1 must be <= 4294967295"),
])
def test_cross_field_constraints_fail_at_build(kind, overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config({"kind": kind}, overrides)


def test_shipped_presets_and_checkpoints_are_in_range():
    paths = sorted(REPO_ROOT.glob("workbench/lines/*/configs/*.yaml")) + sorted(REPO_ROOT.glob("checkpoints/*/config.yaml"))
    assert len(paths) >= 4
    for path in paths:
        load_config(path)


# -- plugins ----------------------------------------------------------------------------------


@pytest.mark.parametrize("source, reason", [
    (None, "ModuleNotFoundError: No module named 'no_such_plugin_mod'"),
    ("raise RuntimeError('boom\\nsecond line')", "RuntimeError: boom"),
    ("def broken(:\n", "SyntaxError"),
])
def test_a_plugin_that_cannot_be_imported_is_one_config_error(source, reason, tmp_path, monkeypatch):
    import workbench.experiments as experiments

    name = "no_such_plugin_mod" if source is None else f"broken_plugin_{abs(hash(source)) % 10**6}"
    if source is not None:
        (tmp_path / f"{name}.py").write_text(source)
        monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("WORKBENCH_PLUGINS", f"tests.toy_experiment, {name}")
    monkeypatch.setattr(experiments, "_loaded", False)
    with pytest.raises(ConfigError) as exc:
        experiments.load_kinds()
    text = str(exc.value)
    assert "\n" not in text and f"WORKBENCH_PLUGINS names the module '{name}'" in text and reason in text


# -- registry-driven choices and options of one architecture ------------------------------------


def test_config_choices_are_the_registries_names():
    from workbench.encoders.location import LOCATION_ENCODERS
    from workbench.encoders.text import TEXT_ENCODERS
    from workbench.lines.geolocator.models import HEADS
    from workbench.lines.softprompt.models import SEQUENCE_MODELS
    from workbench.train.schedulers import OPTIMIZERS, SCHEDULERS

    docs = {kind: {d["key"]: d for d in field_docs(config_class(kind))} for kind in ("geolocator", "softprompt")}
    assert docs["geolocator"]["model.head"]["choices"] == tuple(HEADS.names())
    assert docs["softprompt"]["model.arch"]["choices"] == tuple(SEQUENCE_MODELS.names())
    assert docs["softprompt"]["targets.encoder"]["choices"] == tuple(TEXT_ENCODERS.names())
    assert docs["softprompt"]["features.location_encoder"]["choices"] == tuple(LOCATION_ENCODERS.names())
    assert docs["softprompt"]["train.optimizer"]["choices"] == tuple(OPTIMIZERS.names())
    assert docs["softprompt"]["train.scheduler"]["choices"] == tuple(SCHEDULERS.names())


def test_a_newly_registered_entry_is_a_valid_choice_at_once(monkeypatch):
    from workbench.lines.geolocator.models import HEADS, linear_head

    monkeypatch.setitem(HEADS._entries, "linear2", linear_head)
    assert build_config({"kind": "geolocator"}, ["model.head=linear2"]).model.head == "linear2"
    with pytest.raises(ConfigError, match=r"model.head: 'nope' is not valid. Choose one of \['linear', 'mlp', 'linear2'\]"):
        build_config({"kind": "geolocator"}, ["model.head=nope"])


@pytest.mark.parametrize("kind, overrides, message", [
    ("softprompt", ["model.arch=direct", "model.n_entries=8"],
     "model.n_entries=8 applies only to model.arch=softprompt, but model.arch is 'direct'"),
    ("softprompt", ["model.d_model=64"],
     "model.d_model=64 applies only to model.arch=lightweight_transformer, but model.arch is 'softprompt'"),
    ("geolocator", ["model.head=linear", "model.hidden=64"],
     "model.hidden=64 applies only to model.head=mlp, but model.head is 'linear'"),
    ("geolocator", ["eval.weighted_k=3"], "eval.weighted_k=3 applies only to eval.location=weighted"),
    ("geolocator", ["train.momentum=0.5"], "train.momentum=0.5 applies only to train.optimizer=sgd"),
    ("softprompt", ["train.plateau_patience=5"], "train.plateau_patience=5 applies only to train.scheduler=plateau"),
])
def test_an_option_of_another_architecture_fails_naming_it(kind, overrides, message):
    with pytest.raises(ConfigError) as err:
        build_config({"kind": kind}, overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_options_of_the_chosen_architecture_and_defaults_pass():
    cfg = build_config({"kind": "softprompt"}, ["model.arch=lightweight_transformer", "model.d_model=64",
                                                "model.heads=4", "model.hidden=256"])  # hidden at its default
    assert (cfg.model.arch, cfg.model.d_model) == ("lightweight_transformer", 64)
    cfg = build_config({"kind": "geolocator"}, ["train.optimizer=sgd", "train.momentum=0.5"])
    assert cfg.train.momentum == 0.5


def test_applicable_drops_the_options_of_other_architectures():
    from workbench.config import applicable
    from workbench.lines.softprompt.config import SoftPromptModelConfig

    section = {"arch": "direct", "n_entries": 8, "hidden": 32, "d_model": 64, "dropout": 0.2}
    assert applicable(SoftPromptModelConfig, section) == {"arch": "direct", "hidden": 32, "dropout": 0.2}


def test_a_partial_section_keeps_the_kinds_own_defaults():
    """geolocator trains with weight_decay 0.05 and batch 64 by default; overriding one train
    key must not reset the others to the generic TrainConfig defaults."""
    cfg = build_config({"kind": "geolocator", "train": {"lr": 0.01}}, ["train.max_epochs=2"])
    assert (cfg.train.lr, cfg.train.max_epochs, cfg.train.weight_decay, cfg.train.batch_size) == (0.01, 2, 0.05, 64)


def test_presets_load_by_name_and_unknown_names_list_them():
    from workbench.errors import NotFoundError
    from workbench.experiments import load_config

    assert load_config("geolocator-demo").name == "geolocator-demo"
    assert load_config("softprompt-demo", ["seeds=1"]).seeds == 1
    with pytest.raises(NotFoundError, match=r"config 'nope' is neither a YAML file nor a preset. Presets: \[.*'geolocator-demo'"):
        load_config("nope")
