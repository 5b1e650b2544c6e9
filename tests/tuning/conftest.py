"""Tuning fixtures: a throwaway PostgreSQL server for the session, a fresh database per test."""
import itertools
import re

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
