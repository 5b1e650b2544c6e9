"""Experiment kinds: every module in this package registers one; plugins add more.

``load_kinds()`` imports them all (and the modules named in ``WORKBENCH_PLUGINS``,
comma-separated), so the core never needs an edit to add a kind.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
from pathlib import Path
from typing import Any

from workbench.config import RunConfig, apply_overrides, from_dict, read_yaml
from workbench.errors import ConfigError, NotFoundError
from workbench.experiments.base import EXPERIMENTS, Experiment

__all__ = ["EXPERIMENTS", "Experiment", "load_kinds", "build_config", "load_config", "create_experiment"]

_loaded = False


def load_kinds() -> list[str]:
    global _loaded
    if not _loaded:
        for mod in pkgutil.iter_modules(__path__):
            if mod.name != "base" and not mod.name.startswith("_"):
                importlib.import_module(f"{__name__}.{mod.name}")
        for name in filter(None, os.environ.get("WORKBENCH_PLUGINS", "").split(",")):
            try:
                importlib.import_module(name.strip())
            except ImportError as exc:
                raise NotFoundError(f"plugin module '{name}' (WORKBENCH_PLUGINS) could not be imported: {exc}") from None
        _loaded = True
    return EXPERIMENTS.list()


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
    return build_config(read_yaml(path), overrides)


def create_experiment(cfg: RunConfig) -> Experiment:
    load_kinds()
    return EXPERIMENTS.get(cfg.kind)(cfg)


def config_class(kind: str) -> type[RunConfig]:
    load_kinds()
    return EXPERIMENTS.get(kind).config_cls


def describe(cfg: Any) -> str:
    return f"{cfg.kind} run '{cfg.name}'"
