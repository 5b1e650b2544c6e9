"""Tuning fixtures: a throwaway PostgreSQL server for the session, a fresh database per test."""
import itertools
import re

import yaml

import pytest

from tests.pg import throwaway_server

_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres_server():
    with throwaway_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server, request) -> str:
    """``postgresql://postgres@127.0.0.1:PORT/DB``: an empty database named after the test."""
    name = f"t{next(_databases)}_" + re.sub(r"\W", "_", request.node.name).lower()
    return postgres_server.create_database(name[:63])  # 63: PostgreSQL's identifier limit


def write_toy_spec(folder, name: str, n_trials: int, space: dict, sampler: dict | None = None):
    """A study spec over the toy kind (3 epochs in its base, 1 a trial) in ``folder``; its path."""
    base = folder / "toy.yaml"
    base.write_text(yaml.safe_dump({"kind": "toy", "train": {"device": "cpu", "max_epochs": 3}}))
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": name, "base": str(base), "overrides": ["train.max_epochs=1"],
        "objective": {"metric": "val/loss", "direction": "minimize"}, "n_trials": n_trials,
        "sampler": sampler or {"type": "random"}, "pruner": {"type": "none"}, "space": space}))
    return spec
