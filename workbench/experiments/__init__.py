"""Experiment kinds: each research line's ``experiment`` module registers one; plugins add more.

``load_kinds()`` imports every line's ``experiment`` (``workbench/lines/*`` and the line
packages named in ``WORKBENCH_PLUGINS``) and every other plugin module, so the core never
needs an edit to add a kind.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench import lines
from workbench.config import RunConfig, apply_overrides, from_dict, read_yaml
from workbench.errors import ConfigError
from workbench.experiments.base import EXPERIMENTS, Experiment

__all__ = ["EXPERIMENTS", "Experiment", "load_kinds", "build_config", "load_config", "create_experiment"]

_loaded = False


def load_kinds() -> list[str]:
    global _loaded
    if not _loaded:
        lines.load_parts("experiment")
        lines.plain_plugins()
        _loaded = True
    return EXPERIMENTS.list()


plugin_modules = lines.plugin_modules
import_plugin = lines.import_plugin


def build_config(data: dict, overrides: list[str] = ()) -> RunConfig:
    """A typed config from a dict with a ``kind`` key, after ``key=value`` overrides."""
    load_kinds()
    kind = data.get("kind")
    for text in overrides:
        if text.startswith("kind="):
            kind = text.split("=", 1)[1]
    if not kind:
        raise ConfigError(f"config has no 'kind'. Available: {EXPERIMENTS.list()}")
    cls = EXPERIMENTS.get(kind).config_cls
    data = apply_overrides({**data, "kind": kind}, list(overrides), cls)
    return from_dict(cls, data)


def load_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    """The config of a YAML file, or of a line's preset by name (``geolocator-demo``)."""
    return build_config(read_yaml(lines.resolve_config(path)), overrides)


def create_experiment(cfg: RunConfig) -> Experiment:
    load_kinds()
    return EXPERIMENTS.get(cfg.kind)(cfg)


def config_class(kind: str) -> type[RunConfig]:
    load_kinds()
    return EXPERIMENTS.get(kind).config_cls


def describe(cfg: Any) -> str:
    return f"{cfg.kind} run '{cfg.name}'"
