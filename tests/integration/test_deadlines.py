"""Every path to PostgreSQL and Redis is time-bounded, and each process's connections are budgeted."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.engine import make_url

from hpcplane.domain.errors import DbError, RedisError
from hpcplane.store import migrate
from hpcplane.store.db import Database, SessionLimits
from hpcplane.store.nonces import RedisNonces
from hpcplane.store.tables import tasks
from tests.support.backends import PgDatabases
from tests.support.pathproxy import PathProxy

pytestmark = pytest.mark.postgres

TIMEOUT = 1.0


@pytest.fixture
def pg_url(pg_databases: PgDatabases) -> str:
    url = pg_databases.create()
    db = Database(url)
    migrate.upgrade(db)
    db.dispose()
    return url


@pytest.fixture
def proxied(pg_url: str) -> Iterator[tuple[PathProxy, str]]:
    """A proxy process in front of PostgreSQL, and the database's URL through it."""
    url = make_url(pg_url)
    with PathProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        yield proxy, url.set(port=proxy.port).render_as_string(hide_password=False)


def outcomes(db: Database, count: int) -> list[str]:
    """Run `count` reads at once; each one's outcome ("ok" or the exception's name)."""
    results: list[str] = []

    def one() -> None:
        try:
            with db.read() as conn:
                conn.execute(text("SELECT 1")).scalar_one()
            results.append("ok")
        except Exception as error:
            results.append(type(error).__name__)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_frozen_path_gives_db_error_while_still_frozen_then_recovers(proxied: tuple[PathProxy, str]) -> None:
    """With the path to PostgreSQL frozen, pooled and new connections alike answer DbError before the
    path comes back (the client's deadline, not the server's statement_timeout); after it, calls work."""
    proxy, url = proxied
    db = Database(url, timeout=TIMEOUT, pool_size=4, max_overflow=0)
    try:
        assert outcomes(db, 4) == ["ok"] * 4  # four pooled connections, now idle
        proxy.freeze()
        assert outcomes(db, 4) == ["DbError"] * 4  # the pooled ones, cut by the watchdog
        assert outcomes(db, 2) == ["DbError"] * 2  # new connections: connect_timeout
        assert proxy.frozen  # every call above ended while the path was still frozen
        proxy.thaw()
        deadline = time.monotonic() + 30
        while outcomes(db, 1) != ["ok"]:
            assert time.monotonic() < deadline, "calls did not recover after the path came back"
            time.sleep(0.1)
    finally:
        proxy.thaw()
        db.dispose()


def test_commit_on_frozen_path_gives_db_error(proxied: tuple[PathProxy, str]) -> None:
    """A transaction whose path freezes before its COMMIT answers DbError instead of waiting."""
    proxy, url = proxied
    db = Database(url, timeout=TIMEOUT, pool_size=1, max_overflow=0)
    try:

        def freeze_before_commit() -> None:
            with db.write() as conn:
                conn.execute(text("SELECT 1"))
                proxy.freeze()

        with pytest.raises(DbError):
            freeze_before_commit()
        assert proxy.frozen
    finally:
        proxy.thaw()
        db.dispose()


def test_a_call_with_under_two_seconds_left_still_connects(proxied: tuple[PathProxy, str]) -> None:
    """A write with 1 s left on an empty pool (a step near the end of a short lease) opens its connection
    and commits; on a frozen path it answers DbError within libpq's 2 s connect minimum; and when the
    connection arrives after the deadline (the path thawed in between), it is cut before any statement."""
    proxy, url = proxied
    db = Database(url, timeout=5.0, pool_size=1, max_overflow=0)

    def create(table: str, seconds: float) -> None:
        with db.write(deadline=time.monotonic() + seconds) as conn:
            conn.execute(text(f"CREATE TABLE {table} (x int)"))

    def tables() -> set[str]:
        with db.read() as conn:
            return set(
                conn.execute(text("SELECT tablename FROM pg_tables WHERE tablename LIKE 'late_%'")).scalars()
            )

    try:
        create("late_ok", 1.0)
        db.engine.dispose()  # the pool empty again: the next call must connect
        proxy.freeze()
        began = time.monotonic()
        with pytest.raises(DbError):
            create("late_frozen", 1.0)
        assert 1.0 <= time.monotonic() - began < 3.0, "the connect did not wait libpq's 2 s minimum"
        assert proxy.frozen
        db.engine.dispose()
        thaw = threading.Timer(1.3, proxy.thaw)  # after the call's deadline, before the connect gives up
        thaw.start()
        try:
            with pytest.raises(DbError):
                create("late_thawed", 1.0)
        finally:
            thaw.join()
        assert not proxy.frozen
        assert tables() == {"late_ok"}
    finally:
        proxy.thaw()
        db.dispose()


def test_exhausted_budget_gives_db_error(pg_url: str) -> None:
    """A process that holds all its budgeted connections answers the next call DbError, not a hang."""
    db = Database(pg_url, timeout=TIMEOUT, pool_size=1, max_overflow=0)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with contextlib.suppress(DbError), db.read() as conn:  # held past its deadline: cut, DbError
            conn.execute(text("SELECT 1"))
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        with pytest.raises(DbError) as raised, db.driver() as driver:
            driver.execute("SELECT 1")
        assert "in use" in str(raised.value.__cause__)
        assert not release.is_set()  # refused while the other call still held the connection
    finally:
        release.set()
        holder.join(10)
        db.dispose()
    assert db.budget == 1


def test_sessions_carry_their_bounds(pg_url: str) -> None:
    """Every connection sets idle_in_transaction_session_timeout, keepalives and tcp_user_timeout, and
    names its process in application_name (pg_stat_activity shows which process holds what)."""
    limits = SessionLimits(idle_in_transaction=3.0, tcp_user_timeout=4.0, application_name="hpcplane t 1")
    db = Database(pg_url, timeout=TIMEOUT, pool_size=1, limits=limits)
    try:
        with db.read() as conn:
            shown = {
                name: conn.execute(text(f"SHOW {name}")).scalar_one()
                for name in (
                    "idle_in_transaction_session_timeout",
                    "tcp_user_timeout",
                    "tcp_keepalives_idle",
                    "statement_timeout",
                    "application_name",
                )
            }
    finally:
        db.dispose()
    assert shown == {
        "idle_in_transaction_session_timeout": "3s",
        "tcp_user_timeout": "4000",  # milliseconds
        "tcp_keepalives_idle": "5",
        "statement_timeout": "1s",
        "application_name": "hpcplane t 1",
    }


def test_transaction_pooling_sends_no_session_options(pg_url: str) -> None:
    """In PgBouncer's transaction mode no startup options are sent and nothing is prepared."""
    db = Database(pg_url, timeout=TIMEOUT, pool_size=1, limits=SessionLimits(transaction_pooling=True))
    try:
        with db.driver() as driver:
            for _ in range(8):  # past psycopg's prepare threshold (5)
                driver.execute("SELECT 1").fetchone()
            timeout = driver.execute("SHOW idle_in_transaction_session_timeout").fetchone()
            prepared = driver.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()
    finally:
        db.dispose()
    assert timeout == ("0",)
    assert prepared == (0,)


def test_stalled_holder_loses_its_row_locks_before_its_lease_ends(
    proxied: tuple[PathProxy, str], pg_url: str
) -> None:
    """A holder frozen inside a transaction that locked a task row: the server ends its session after
    idle_in_transaction_session_timeout, so another process's UPDATE of that row succeeds while the
    holder's path is still frozen (instead of hitting lock_timeout for as long as the partition lasts)."""
    proxy, url = proxied
    limits = SessionLimits(idle_in_transaction=1.0)
    stalled = Database(url, timeout=5.0, pool_size=1, max_overflow=0, limits=limits)
    other = Database(pg_url, timeout=TIMEOUT, pool_size=1)
    now = datetime.now(UTC)
    try:
        with other.write() as conn:
            conn.execute(
                tasks.insert().values(
                    task_id="T1",
                    account_id="a",
                    cluster_id="c",
                    task_type="AddNodes",
                    status="Processing",
                    plan="[]",
                    state="{}",
                    request="{}",
                    current_step=0,
                    total_steps=1,
                    created_at=now,
                    updated_at=now,
                    run_after=now,
                    lease_token=0,
                    lost_attempts=0,
                    errors="[]",
                )
            )
        locked = threading.Event()
        outcome: list[str] = []

        def hold() -> None:
            try:
                with stalled.write() as conn:
                    conn.execute(select(tasks.c.seq).where(tasks.c.task_id == "T1").with_for_update())
                    locked.set()
                    while not proxy.frozen:
                        time.sleep(0.01)
                    conn.execute(text("SELECT 1"))
                outcome.append("committed")
            except DbError:
                outcome.append("DbError")

        holder = threading.Thread(target=hold)
        holder.start()
        assert locked.wait(10)
        proxy.freeze()
        deadline = time.monotonic() + 20
        while True:
            try:
                with other.write() as conn:
                    conn.execute(update(tasks).where(tasks.c.task_id == "T1").values(updated_at=now))
                break
            except DbError:
                assert time.monotonic() < deadline, "the stalled session kept its row lock"
        assert proxy.frozen  # the row was free while the holder's path was still frozen
        holder.join(20)
        assert outcome == ["DbError"]
    finally:
        proxy.thaw()
        stalled.dispose()
        other.dispose()


@pytest.mark.redis
def test_frozen_redis_gives_redis_error(redis_url: str) -> None:
    """With the path to Redis frozen, the nonce check answers RedisError (no retries multiply the
    timeout) before the path comes back."""
    target = make_url(redis_url.replace("redis://", "redis+x://", 1))
    with PathProxy(target.host or "127.0.0.1", target.port or 6379) as proxy:
        nonces = RedisNonces(f"redis://{proxy.endpoint}/0", TIMEOUT)
        now, run = datetime.now(UTC), uuid.uuid4().hex
        try:
            assert nonces.remember("LTAIdeadline", f"{run}-1", now, 60)
            proxy.freeze()
            with pytest.raises(RedisError):
                nonces.remember("LTAIdeadline", f"{run}-2", now, 60)
            assert proxy.frozen
            proxy.thaw()
            assert nonces.remember("LTAIdeadline", f"{run}-3", now + timedelta(seconds=1), 60)
        finally:
            proxy.thaw()
            nonces.close()


def test_refused_database_gives_db_error(pg_url: str) -> None:
    """A database that refuses connections answers DbError (psycopg's error is kept as the cause)."""
    db = Database(make_url(pg_url).set(port=1).render_as_string(hide_password=False), timeout=TIMEOUT)
    try:
        with pytest.raises(DbError) as raised, db.read():
            pass
        assert isinstance(raised.value.__cause__.__cause__, psycopg.OperationalError)  # type: ignore[union-attr]
    finally:
        db.dispose()
