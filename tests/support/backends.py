"""PostgreSQL and Redis for the tests: found or skipped (failed under CI=true), one database per use."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import redis

PG_ADMIN_URL = os.environ.get("HPCPLANE_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("HPCPLANE_TEST_REDIS", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(what: str, error: Exception) -> None:
    """Skip with a one-line reason on a laptop without the service; fail under CI=true."""
    reason = (
        f"{what} not reachable ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
    )
    if IN_CI:
        pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
    pytest.skip(reason)


class PgDatabases:
    """Creates uniquely named databases for one test run and drops them at its end."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.run = uuid.uuid4().hex[:8]
        self.created: list[str] = []

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.admin_url, autocommit=True, connect_timeout=3)

    def create(self) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        name = f"hpcplane_t_{self.run}_{len(self.created)}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        base = self.admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        return f"{base}/{name}"

    def drop_all(self) -> None:
        with self._admin() as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
    except psycopg.Error as error:
        unavailable("PostgreSQL", error)
    databases = PgDatabases(PG_ADMIN_URL)
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as error:
        unavailable("Redis", error)
    finally:
        client.close()
    return REDIS_URL
