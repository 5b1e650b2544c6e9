from dataclasses import dataclass, field

import pytest

from workbench.config import (RunConfig, TrainConfig, apply_overrides, field_docs, flatten, from_dict,
                              option, read_yaml, to_dict, unflatten, write_yaml)
from workbench.errors import ConfigError
from workbench.experiments import build_config, load_config


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
