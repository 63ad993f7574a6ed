"""Kept PostgreSQL readers (store/readers.py) against the real server: reuse, the budget, faults."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url

from hpcplane.config import Settings
from hpcplane.domain.errors import DbError
from hpcplane.store.db import Database
from hpcplane.wiring import build_services
from tests.support.backends import PgDatabases
from tests.support.pathproxy import PathProxy

pytestmark = pytest.mark.postgres


class Clock:
    """The monotonic clock the pool and the readers read idle times from, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def url(pg_databases: PgDatabases) -> str:
    return pg_databases.create()


@contextmanager
def make(url: str, clock: Clock, **options: int | float) -> Iterator[Database]:
    values: dict[str, float] = {"timeout": 5.0, "pool_size": 2, "readers": 2, **options}
    db = Database(
        url,
        timeout=values["timeout"],
        pool_size=int(values["pool_size"]),
        readers=int(values["readers"]),
        max_overflow=int(values["max_overflow"]) if "max_overflow" in values else None,
        monotonic=clock,
    )
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture
def db(url: str, clock: Clock) -> Iterator[Database]:
    with make(url, clock) as opened:
        yield opened


def backend_pid(db: Database) -> int:
    with db.driver() as driver:
        pid: int = driver.execute("SELECT pg_backend_pid()").fetchone()[0]
    return pid


def terminate(db: Database, pid: int) -> None:
    admin = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_reads_reuse_one_kept_connection_in_autocommit(db: Database) -> None:
    """One thread's reads all run on the same server session, each statement its own transaction."""
    pids = {backend_pid(db) for _ in range(20)}
    assert len(pids) == 1
    with db.driver() as driver:
        assert driver.execute("SELECT 1").fetchone()[0] == 1
        # Autocommit: each statement is its own transaction (now() is the transaction's start).
        first = driver.execute("SELECT now()").fetchone()[0]
        second = driver.execute("SELECT now()").fetchone()[0]
    assert second > first
    assert db._readers is not None
    assert db._readers.count == 1


def insert_twice(db: Database) -> None:
    """Row 2, then row 1 again (a unique violation), in one atomic block."""
    with db.driver(write=True) as driver, driver.atomic():
        driver.execute("INSERT INTO kept_writes VALUES (2)")
        driver.execute("INSERT INTO kept_writes VALUES (1)")


def test_standalone_writes_run_on_the_kept_connections_and_commit_each(db: Database) -> None:
    """driver(write=True) on PostgreSQL is a kept connection too: the same session as the reads, each
    statement committed on its own (seen at once by another session), an atomic block as one
    transaction, rolled back as a whole when it fails, the connection left usable."""
    pid = backend_pid(db)
    with db.driver(write=True) as driver:
        assert driver.execute("SELECT pg_backend_pid()").fetchone()[0] == pid
        driver.execute("CREATE TABLE kept_writes (n integer PRIMARY KEY)")
        driver.execute("INSERT INTO kept_writes VALUES (1)")
    admin = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as other:
        assert other.execute("SELECT n FROM kept_writes").fetchall() == [(1,)]
        with pytest.raises(psycopg.errors.UniqueViolation):
            insert_twice(db)
        assert other.execute("SELECT n FROM kept_writes").fetchall() == [(1,)]
    with db.driver(write=True) as driver:
        assert driver.execute("SELECT pg_backend_pid()").fetchone()[0] == pid
        assert driver.execute("SELECT count(*) FROM kept_writes").fetchone()[0] == 1
    assert db._readers is not None
    assert db._readers.count == 1


def test_the_engine_pool_keeps_connections_within_its_budget(
    pg_databases: PgDatabases, tmp_path: Path
) -> None:
    """The task engine's Database (wiring) keeps connections for its standalone statements, no more
    than its pool of worker threads + 2."""
    settings = Settings(home=tmp_path, database_url=pg_databases.create(), redis_url=None)
    services = build_services(settings)
    try:
        engine_db = services.engine.db
        assert engine_db is not services.db
        assert engine_db._readers is not None
        assert engine_db._readers.limit == engine_db.budget == settings.worker_concurrency + 2
        with engine_db.driver(write=True) as a, engine_db.driver() as b:
            assert (
                a.execute("SELECT pg_backend_pid()").fetchone()
                != b.execute("SELECT pg_backend_pid()").fetchone()
            )
        assert engine_db._readers.count == 2
    finally:
        services.close()


def test_concurrent_reads_open_at_most_the_limit(url: str, clock: Clock) -> None:
    """Nested (concurrent) reads open a reader each up to the limit, then go through the pool."""
    with make(url, clock, readers=2, pool_size=2, max_overflow=2) as db:
        assert db._readers is not None
        with db.driver() as a, db.driver() as b, db.driver() as c:
            pids = {d.execute("SELECT pg_backend_pid()").fetchone()[0] for d in (a, b, c)}
            assert len(pids) == 3
            assert db._readers.count == 2
        assert db._readers.count == 2


def test_idle_readers_give_their_slots_to_other_calls(url: str, clock: Clock) -> None:
    """With the whole budget held by idle readers, a write and a read transaction still get connections
    at once: the least recently used reader is closed for each."""
    with make(url, clock, readers=2, pool_size=2, max_overflow=0) as db:
        assert db.budget == 2
        assert db._readers is not None
        with db.driver(), db.driver():
            pass
        assert db._readers.count == 2
        with db.write() as conn:
            conn.exec_driver_sql("SELECT 1")
        assert db._readers.count == 1
        with db.read() as one, db.read() as two:
            one.exec_driver_sql("SELECT 1")
            two.exec_driver_sql("SELECT 1")
        assert db._readers.count == 0
        assert backend_pid(db) > 0


def test_a_reader_idle_too_long_goes_back_to_the_pool(db: Database, clock: Clock) -> None:
    assert db._readers is not None
    with db.driver(), db.driver():
        pass
    assert db._readers.count == 2
    clock.now += 11
    backend_pid(db)
    assert db._readers.count == 1


def test_a_reader_the_server_ended_costs_no_failed_call_after_an_idle_second(
    db: Database, clock: Clock
) -> None:
    """As the pool's own connections: one idle for over a second is pinged, and replaced if dead."""
    pid = backend_pid(db)
    terminate(db, pid)
    clock.now += 2
    assert backend_pid(db) != pid


def test_the_ping_of_an_idle_reader_is_cut_at_the_deadline_on_a_frozen_path(url: str, clock: Clock) -> None:
    """A reader idle for over a second is pinged before its next call: on a path that stopped answering
    that ping is cut at the call's deadline like any statement, the call answers DbError while the path
    is still frozen, and the next call after the path came back works."""
    target = make_url(url)
    with PathProxy(target.host or "127.0.0.1", target.port or 5432) as proxy:
        proxied = target.set(port=proxy.port).render_as_string(hide_password=False)
        with make(proxied, clock, timeout=1.0) as db:
            backend_pid(db)  # one reader, kept
            proxy.freeze()
            clock.now += 2  # idle for over a second: the next call pings it first
            errors: list[BaseException] = []

            def read(db: Database = db, errors: list[BaseException] = errors) -> None:
                try:
                    backend_pid(db)
                except BaseException as error:
                    errors.append(error)

            thread = threading.Thread(target=read)
            began = time.monotonic()
            thread.start()
            thread.join(timeout=5)
            took = time.monotonic() - began
            proxy.thaw()  # (a ping left waiting ends now, so the thread does too)
            thread.join(timeout=5)
            assert took < 1.9, "the ping waited past the call's deadline"
            assert len(errors) == 1
            assert isinstance(errors[0], DbError)
            assert backend_pid(db) > 0


def test_a_reader_that_fails_is_thrown_away(db: Database) -> None:
    """Ended under a call (no idle second to ping it): that call answers DbError; the next one works on a
    new session."""
    pid = backend_pid(db)
    terminate(db, pid)
    with pytest.raises(DbError):
        backend_pid(db)
    assert backend_pid(db) != pid
    assert db._readers is not None
    assert db._readers.count == 1


def test_a_statement_error_leaves_the_reader_usable(db: Database) -> None:
    pid = backend_pid(db)
    with pytest.raises(psycopg.errors.UndefinedTable), db.driver() as driver:
        driver.execute("SELECT * FROM no_such_table")
    assert backend_pid(db) == pid


def test_a_read_past_its_deadline_answers_dberror_and_the_next_works(url: str, clock: Clock) -> None:
    """The server's statement_timeout (HPCPLANE_DB_TIMEOUT) ends a stuck read on a reader."""
    with make(url, clock, timeout=1.0) as db:
        pid = backend_pid(db)
        with pytest.raises(DbError), db.driver() as driver:
            driver.execute("SELECT pg_sleep(5)")
        assert backend_pid(db) != pid


def test_a_frozen_path_is_cut_at_the_deadline(url: str, clock: Clock) -> None:
    """The client-side watchdog cuts a reader whose server stopped answering (here: a session locked
    out by another's lock with no lock_timeout of its own): the read answers DbError within the
    deadline, and the reader is replaced."""
    with make(url, clock, timeout=1.0) as db:
        pid = backend_pid(db)
        admin = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(admin) as holder:
            holder.execute("CREATE TABLE frozen (x int)")
            holder.commit()
            holder.execute("LOCK TABLE frozen IN ACCESS EXCLUSIVE MODE")
            errors: list[BaseException] = []

            def read(db: Database = db, errors: list[BaseException] = errors) -> None:
                try:
                    with db.driver() as driver:
                        # No server-side timeouts for this statement: only the watchdog can end it.
                        driver.execute("SET statement_timeout = 0")
                        driver.execute("SET lock_timeout = 0")
                        driver.execute("SELECT * FROM frozen")
                except BaseException as error:
                    errors.append(error)

            thread = threading.Thread(target=read)
            thread.start()
            thread.join(timeout=5)
            assert not thread.is_alive()
            holder.rollback()
        assert len(errors) == 1
        assert isinstance(errors[0], DbError)
        assert backend_pid(db) != pid


def test_an_api_process_may_keep_as_many_readers_as_its_budget(url: str) -> None:
    """readers=None (what wiring gives the API's Database): the limit is pool + overflow."""
    db = Database(url, pool_size=2, max_overflow=1, readers=None)
    try:
        assert db._readers is not None
        assert db._readers.limit == db.budget == 3
        with db.driver() as a, db.driver() as b, db.driver() as c:
            pids = {d.execute("SELECT pg_backend_pid()").fetchone()[0] for d in (a, b, c)}
        assert len(pids) == 3
        assert db._readers.count == 3
        with db.write() as conn:  # the budget is all idle readers: one is closed for the write
            conn.exec_driver_sql("SELECT 1")
        assert db._readers.count == 2
    finally:
        db.dispose()


def test_a_call_waiting_for_the_budget_gets_the_slot_of_a_reader_given_back(url: str, clock: Clock) -> None:
    """Every slot held by readers in use, a write waits; when a read ends, its reader lets go of its
    slot instead of keeping it idle, and the write goes on at once (not at its deadline)."""
    with make(url, clock, readers=2, pool_size=2, max_overflow=0, timeout=5.0) as db:
        assert db._readers is not None
        wrote: list[float] = []
        with db.driver() as a, db.driver():
            a.execute("SELECT 1")

            def write() -> None:
                with db.write() as conn:
                    conn.exec_driver_sql("SELECT 1")
                wrote.append(time.monotonic())

            writer = threading.Thread(target=write)
            writer.start()
            deadline = time.monotonic() + 5
            while db.deadlines is not None and not db.deadlines.waiting and time.monotonic() < deadline:
                time.sleep(0.01)
            assert db.deadlines is not None
            assert db.deadlines.waiting == 1
            ended = time.monotonic()
        writer.join(timeout=10)
        assert wrote
        assert wrote[0] - ended < 1.0
        assert db._readers.count <= 1  # the other may have gone too, before the write took its slot


def test_a_read_finding_every_reader_in_use_takes_the_next_given_back(url: str, clock: Clock) -> None:
    """The budget is all readers, all in use: a third read waits for one of them (not for a slot it
    would get by closing a reader, which would only open another connection)."""
    with make(url, clock, readers=2, pool_size=2, max_overflow=0) as db:
        assert db._readers is not None
        seen: list[int] = []
        with db.driver() as a, db.driver() as b:
            held = {d.execute("SELECT pg_backend_pid()").fetchone()[0] for d in (a, b)}
            reader = threading.Thread(target=lambda: seen.append(backend_pid(db)))
            reader.start()
            time.sleep(0.2)
            assert not seen  # waiting
        reader.join(timeout=5)
        assert len(seen) == 1
        assert seen[0] in held
        assert db._readers.count == 2
