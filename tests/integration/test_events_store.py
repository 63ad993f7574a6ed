"""Task events in the store: written in the change's transaction, read in an order no late commit breaks."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import Connection, insert, select

from hpcplane.domain.tasks import TaskType
from hpcplane.store import engine as engine_store
from hpcplane.store import events
from hpcplane.store.db import Database, Driver
from hpcplane.store.events import Cursor
from hpcplane.store.tables import accounts, task_events
from hpcplane.store.tasks import NewTask, insert_task
from tests.integration.conftest import START

ORIGIN = Cursor()


class _Rollback(Exception):
    pass


def _rolled_back(db: Database, work: Callable[[Connection], object]) -> None:
    """Do `work` in a write transaction that then rolls back."""
    try:
        with db.write() as conn:
            work(conn)
            raise _Rollback()
    except _Rollback:
        pass


def _account(db: Database) -> None:
    with db.write() as conn:
        conn.execute(insert(accounts).values(id="1000", name="acme", created_at=START))


def _task(task_id: str, cluster_id: str = "c-1") -> NewTask:
    return NewTask(
        task_id=task_id,
        account_id="1000",
        cluster_id=cluster_id,
        task_type=TaskType.STOP_CLUSTER,
        total_steps=3,
        request="{}",
        plan='["sim_wait", "sim_wait", "sim_wait"]',
        run_after=START,
    )


def _read(
    db: Database,
    after: Cursor = ORIGIN,
    *,
    cluster_id: str | None = None,
    account_id: str | None = None,
    count: int = 0,
) -> list[events.TaskEvent]:
    """The events after `after`; waits (up to 10 s) until there are `count`: on PostgreSQL an event is read
    once every transaction older than its own has ended, and other databases' count too."""
    deadline = time.monotonic() + 10
    while True:
        with db.driver() as driver:
            found = events.read_after(driver, after, cluster_id=cluster_id, account_id=account_id)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def test_creation_writes_an_event_in_the_same_transaction(db: Database) -> None:
    """A task insert that rolls back leaves no event; one that commits leaves its creation event."""
    _account(db)
    _rolled_back(db, lambda conn: insert_task(conn, _task("T-rolled-back"), START))
    assert _read(db) == []
    with db.write() as conn:
        insert_task(conn, _task("T-1"), START)
    (event,) = _read(db, count=1)
    assert (event.kind, event.task_id, event.status, event.current_step) == (
        "created",
        "T-1",
        "Processing",
        0,
    )
    assert event.body()["Type"] == "task.created"
    assert Cursor.parse(event.cursor.render()) == event.cursor


def test_each_fenced_step_writes_one_event_and_a_lost_lease_none(db: Database) -> None:
    """The engine's step UPDATE appends the step's event (the last one 'ended'), on its own (autocommit)
    and inside a step's transaction; a step whose lease was taken over writes neither task nor event, and
    a step transaction that rolls back takes its event with it."""
    _account(db)
    with db.write() as conn:
        insert_task(conn, _task("T-2", "c-2"), START)
        (lease,) = engine_store.claim(
            conn, owner="w1", now=START, lease_until=START + timedelta(seconds=30), limit=1,
            postgres=db.is_postgres,
        )  # fmt: skip
    step = {"updated_at": START, "lease_expires_at": START + timedelta(seconds=30)}
    with db.driver(write=True) as driver:
        assert engine_store.advance(driver, lease, "w1", {**step, "current_step": 1})
    _rolled_back(
        db, lambda conn: engine_store.advance(Driver.within(conn), lease, "w1", {**step, "current_step": 2})
    )
    with db.write() as conn:
        assert engine_store.advance(Driver.within(conn), lease, "w1", {**step, "current_step": 2})
    end = {**step, "current_step": 3, "status": "Success", "finished_at": START, "lease_owner": None}
    with db.driver(write=True) as driver:
        assert not engine_store.advance(driver, lease, "w-other", end)  # not the holder: fenced
        assert engine_store.advance(driver, lease, "w1", end)
    seen = _read(db, cluster_id="c-2", count=4)
    assert [(e.kind, e.current_step) for e in seen] == [
        ("created", 0), ("progress", 1), ("progress", 2), ("ended", 3),
    ]  # fmt: skip
    assert seen[-1].status == "Success"
    assert _read(db, seen[1].cursor, cluster_id="c-2") == seen[2:]
    assert _read(db, cluster_id="c-other") == []
    assert _read(db, account_id="1000", count=4) == seen


@pytest.mark.parametrize("db", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_late_commit_is_not_skipped(db: Database) -> None:
    """PostgreSQL: an event of a transaction still open holds back the events committed after it, so a
    reader that moved on never passes it; once it commits, both come, in (tx, id) order."""
    _account(db)
    with db.engine.connect() as slow:
        slow_tx = slow.begin()
        insert_task(slow, _task("T-slow", "c-3"), START)  # takes its event id first
        with db.write() as conn:
            insert_task(conn, _task("T-fast", "c-3"), START)
        assert _read(db, cluster_id="c-3") == []  # T-fast waits behind the open transaction
        slow_tx.commit()
    assert [e.task_id for e in _read(db, cluster_id="c-3", count=2)] == ["T-slow", "T-fast"]
    with db.read() as conn:
        ids = list(conn.execute(select(task_events.c.id).order_by(task_events.c.id)).scalars())
    assert len(ids) == 2
