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
from workbench.errors import ConfigError
from workbench.experiments.base import EXPERIMENTS, Experiment

__all__ = ["EXPERIMENTS", "Experiment", "load_kinds", "build_config", "load_config", "create_experiment"]

_loaded = False


def load_kinds() -> list[str]:
    global _loaded
    if not _loaded:
        for mod in pkgutil.iter_modules(__path__):
            if mod.name != "base" and not mod.name.startswith("_"):
                importlib.import_module(f"{__name__}.{mod.name}")
        for name in plugin_modules():
            import_plugin(name)
        _loaded = True
    return EXPERIMENTS.list()


def plugin_modules() -> list[str]:
    """Module names in ``WORKBENCH_PLUGINS`` (comma-separated; blanks ignored)."""
    return [n.strip() for n in os.environ.get("WORKBENCH_PLUGINS", "").split(",") if n.strip()]


def import_plugin(name: str) -> None:
    """Import one plugin module; any failure (missing module, an error in its code) is one
    ConfigError line naming the variable and the module, never a traceback."""
    try:
        importlib.import_module(name)
    except Exception as exc:  # a plugin is user code: whatever it raises, say which one
        lines = str(exc).strip().splitlines()
        reason = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
        raise ConfigError(f"WORKBENCH_PLUGINS names the module '{name}', which could not be imported "
                          f"({reason}); fix it or remove it from WORKBENCH_PLUGINS "
                          "(comma-separated Python module names, e.g. mypkg.my_experiment)") from None


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
