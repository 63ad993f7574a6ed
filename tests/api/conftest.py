"""Live servers for the API tests: one per module and backend (SQLite file, PostgreSQL database)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.backends import PgDatabases
from tests.support.live import LiveServer


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A running server with an empty store on the given backend."""
    database_url = None
    if request.param == "postgres":
        databases: PgDatabases = request.getfixturevalue("pg_databases")
        database_url = databases.create()
    home: Path = tmp_path_factory.mktemp(f"home-{request.param}")
    live = LiveServer(home, database_url).start()
    yield live
    live.stop()
