"""PostgreSQL and Redis for the tests: found or skipped (failed under CI=true), one database per use."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
import redis

PG_ADMIN_URL = os.environ.get("HPCPLANE_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("HPCPLANE_TEST_REDIS", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() == "true"
# How long a probe keeps trying a service that is there but slow to answer (a loaded machine): a refused
# connection ends the probe at once on a laptop, while under CI=true the whole window is used.
PROBE_SECONDS = 60.0 if IN_CI else 20.0
PROBE_CONNECT_TIMEOUT = 10


def unavailable(what: str, error: Exception) -> None:
    """Skip with a one-line reason on a laptop without the service; fail under CI=true."""
    reason = (
        f"{what} not reachable ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
    )
    if IN_CI:
        pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
    pytest.skip(reason)


def probe(connect: Callable[[], object], errors: tuple[type[Exception], ...]) -> Exception | None:
    """None once `connect` succeeds; otherwise the last error, after retrying for PROBE_SECONDS (or at the
    first refused connection, off CI)."""
    deadline = time.monotonic() + PROBE_SECONDS
    while True:
        try:
            connect()
        except errors as error:
            refused = "refused" in str(error).lower() or "no such file" in str(error).lower()
            if time.monotonic() >= deadline or (refused and not IN_CI):
                return error
            time.sleep(0.5)
        else:
            return None


class PgDatabases:
    """Creates uniquely named databases for one test run and drops them at its end."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.run = uuid.uuid4().hex[:8]
        self.created: list[str] = []

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.admin_url, autocommit=True, connect_timeout=PROBE_CONNECT_TIMEOUT)

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
    error = probe(
        lambda: psycopg.connect(PG_ADMIN_URL, connect_timeout=PROBE_CONNECT_TIMEOUT).close(), (psycopg.Error,)
    )
    if error is not None:
        unavailable("PostgreSQL", error)
    databases = PgDatabases(PG_ADMIN_URL)
    yield databases
    databases.drop_all()


def redis_error() -> Exception | None:
    """None when Redis at REDIS_URL answers a PING (probed as PostgreSQL is); otherwise why not."""

    def ping() -> None:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=PROBE_CONNECT_TIMEOUT)
        try:
            client.ping()
        finally:
            client.close()

    return probe(ping, (redis.RedisError,))


@pytest.fixture(scope="session")
def redis_url() -> str:
    error = redis_error()
    if error is not None:
        unavailable("Redis", error)
    return REDIS_URL
