"""store.simcalls.record_once: one row per token however many holders of a task race for it, and on
PostgreSQL the lock and the INSERT as one implicit transaction in one round trip (Driver.script)."""

from __future__ import annotations

import threading

import psycopg
import pytest
from sqlalchemy import func, select

from hpcplane.store import simcalls
from hpcplane.store.db import Database, Driver
from hpcplane.store.tables import sim_calls
from tests.integration.conftest import START


def rows(db: Database, token: str) -> int:
    with db.read() as conn:
        count = conn.execute(select(func.count()).select_from(sim_calls).where(sim_calls.c.token == token))
        return int(count.scalar_one())


def test_a_token_is_recorded_once(db: Database) -> None:
    with db.driver(write=True) as driver:
        assert simcalls.record_once(driver, "T-1:3", "StopInstances", ["i-1", "i-2"], START) is True
        assert simcalls.record_once(driver, "T-1:3", "StopInstances", ["i-1", "i-2"], START) is False
        assert simcalls.record_once(driver, "T-1:4", "StopInstances", [], START) is True
    assert rows(db, "T-1:3") == 1
    with db.read() as conn:
        kept = conn.execute(select(sim_calls.c.action, sim_calls.c.instance_ids, sim_calls.c.at)).all()
    assert sorted(kept) == [("StopInstances", '["i-1", "i-2"]', START), ("StopInstances", "[]", START)]


def test_holders_racing_for_one_token_leave_one_row_and_one_true(db: Database) -> None:
    """Eight threads, each on its own connection, ask for the same 20 tokens at once: each token is
    recorded by exactly one of them (on PostgreSQL the advisory lock orders them; SQLite's writes are
    serial)."""
    tokens = [f"T-{n}:2" for n in range(20)]
    answers: list[bool] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def holder() -> None:
        try:
            start.wait()
            for token in tokens:
                with db.driver(write=True) as driver:
                    answers.append(simcalls.record_once(driver, token, "StopInstances", ["i-1"], START))
        except BaseException as error:  # reported below, in the test's own thread
            errors.append(error)

    threads = [threading.Thread(target=holder) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert answers.count(True) == len(tokens)
    assert len(answers) == 8 * len(tokens)
    assert all(rows(db, token) == 1 for token in tokens)


def test_a_script_is_one_transaction_rolled_back_as_a_whole_and_refused_on_sqlite(db: Database) -> None:
    insert = "INSERT INTO sim_calls (token, action, instance_ids, at) VALUES (?, ?, ?, ?)"
    with db.driver(write=True) as driver:
        if db.is_sqlite:
            with pytest.raises(RuntimeError, match="PostgreSQL"):
                driver.script("SELECT 1; SELECT 2")
            return
        with pytest.raises(psycopg.errors.NotNullViolation):
            driver.script(
                f"{insert}; {insert}", ["T-9:1", "StopInstances", "[]", START, "T-9:1", None, "[]", START]
            )
        # Nothing of the first statement stays, and the connection is usable again, outside a transaction.
        assert driver.execute("SELECT count(*) FROM sim_calls").fetchone()[0] == 0
        cursor = driver.script("SELECT 1; SELECT ?", ["it's"])
        assert cursor.fetchone() == ("it's",)
        with db.write() as conn, pytest.raises(RuntimeError, match="outside a transaction"):
            Driver.within(conn).script("SELECT 1; SELECT 2")
