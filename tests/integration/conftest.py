"""A migrated store per test on SQLite (a file) and PostgreSQL (a fresh database), and a settable clock."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from hpcplane.config import Settings
from hpcplane.store import migrate
from hpcplane.store.db import Database
from hpcplane.store.secrets import SecretBox
from hpcplane.wiring import Services, build_services
from tests.support.backends import PgDatabases

START = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    """A Clock that stands still until moved."""

    def __init__(self, now: datetime = START) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


def database_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    """A URL to an empty database on `backend`."""
    if backend == "postgres":
        databases: PgDatabases = request.getfixturevalue("pg_databases")
        return databases.create()
    return f"sqlite:///{tmp_path / 'store.db'}"


@contextmanager
def services_on(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path, **values: Any
) -> Iterator[Services]:
    """Everything wired in process on an empty database of `backend`: a FakeClock, no Redis, simulated
    steps without delay, and any other settings in `values`; closed after the block."""
    url = database_url(request, backend, tmp_path)
    settings = Settings(
        home=tmp_path / "home", database_url=url, redis_url=None, sim_step_seconds=0.0, **values
    )
    built = build_services(settings, clock=FakeClock())
    try:
        yield built
    finally:
        built.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A Database at the newest schema, on each backend."""
    database = Database(database_url(request, request.param, tmp_path), timeout=5.0, pool_size=2)
    migrate.upgrade(database)
    yield database
    database.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(Fernet.generate_key())
