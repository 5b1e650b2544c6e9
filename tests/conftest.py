"""Shared fixtures: the test-only ``toy`` experiment kind and an isolated runs directory."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "tests.toy_experiment"

# Subprocess jobs (python -m workbench train --run-dir ...) import the toy kind too.
os.environ["WORKBENCH_PLUGINS"] = PLUGIN
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import tests.toy_experiment  # noqa: E402,F401  (registers "toy")


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "runs"
    monkeypatch.setenv("WORKBENCH_RUNS", str(root))
    return root


@pytest.fixture
def toy_cfg():
    from workbench.experiments import build_config

    def make(**flat):
        # CPU unless a test asks otherwise: exact-resume guarantees are CPU guarantees.
        flat = {"train.device": "cpu", **flat}
        return build_config({"kind": "toy"}, [f"{k}={v}" for k, v in flat.items()])

    return make
