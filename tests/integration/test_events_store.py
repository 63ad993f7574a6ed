"""Task events in the store: written in the change's transaction, read in an order no late commit breaks."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Connection, insert, select, update

from hpcplane.domain.tasks import TaskType
from hpcplane.store import engine as engine_store
from hpcplane.store import events
from hpcplane.store.db import Database, Driver, SessionLimits
from hpcplane.store.engine import Lease
from hpcplane.store.events import Cursor
from hpcplane.store.tables import accounts, task_events, tasks
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


def _claimed(db: Database, prefix: str, count: int, until: datetime) -> list[Lease]:
    """`count` new tasks (T-<prefix>0..., each on its own cluster c-<prefix>N), claimed by w1 until
    `until`, in task id order."""
    with db.write() as conn:
        for n in range(count):
            insert_task(conn, _task(f"T-{prefix}{n}", f"c-{prefix}{n}"), START)
        leases = engine_store.claim(
            conn, owner="w1", now=START, lease_until=until, limit=count, postgres=db.is_postgres
        )
    return sorted(leases, key=lambda lease: lease.task_id)


def _read(
    db: Database,
    after: Cursor = ORIGIN,
    *,
    cluster_id: str | None = None,
    account_id: str | None = None,
    count: int = 0,
) -> list[events.TaskEvent]:
    """The events after `after`; waits (up to 60 s) until there are `count`: on PostgreSQL an event is read
    once every transaction older than its own has ended, and other databases' count too (the suite's
    other xdist workers hold transactions open on the same server: 10 s was once not enough)."""
    deadline = time.monotonic() + 60
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


def test_a_batch_of_steps_writes_each_task_and_its_event_and_fences_each_lease(db: Database) -> None:
    """advance_many records one step of several tasks, each in its own row with its own event, as advance
    would; a task in the batch whose lease was taken over (another token) or whose holder is another
    owner is refused alone, writing neither its row nor an event, and the others are recorded."""
    _account(db)
    until = START + timedelta(seconds=30)
    leases = _claimed(db, "b", 4, until)
    assert len(leases) == 4
    a, b, c, d = leases
    taken = dataclasses.replace(c, token=c.token + 1)  # as if another holder had claimed it since
    step = {"updated_at": START, "lease_expires_at": until, "state": "{}", "errors": "[]"}
    # A timestamp with microseconds, in another zone, is stored exactly, as UTC (the batched statement
    # carries it as microseconds since the epoch).
    later = (START + timedelta(seconds=5, microseconds=123_457)).astimezone(timezone(timedelta(hours=8)))
    released = {**step, "lease_owner": None, "run_after": later}
    with db.driver(write=True) as driver:
        held = engine_store.advance_many(
            driver,
            "w1",
            [
                (a, {**step, "current_step": 1}),
                (b, {**released, "current_step": 1}),  # another set of columns: its own statement
                (taken, {**step, "current_step": 1}),
            ],
        )
        assert held == {a.seq, b.seq}
        assert engine_store.advance_many(driver, "w-other", [(d, {**step, "current_step": 1})]) == set()
        with pytest.raises(ValueError, match="last step"):
            engine_store.advance_many(driver, "w1", [(d, {**step, "finished_at": START})])
    with db.read() as conn:
        rows = {r.task_id: r for r in conn.execute(select(tasks))}
    assert (rows["T-b0"].current_step, rows["T-b0"].lease_owner) == (1, "w1")
    assert (rows["T-b1"].current_step, rows["T-b1"].lease_owner) == (1, None)
    assert rows["T-b1"].run_after == later
    assert (rows["T-b0"].updated_at, rows["T-b0"].lease_expires_at) == (START, until)
    assert rows["T-b2"].current_step == rows["T-b3"].current_step == 0
    progress = [e for e in _read(db, count=6) if e.kind == "progress"]
    assert sorted((e.task_id, e.current_step) for e in progress) == [("T-b0", 1), ("T-b1", 1)]


def test_steps_sent_in_a_pipeline_are_fenced_each_and_known_after_the_sync(
    db: Database, request: pytest.FixtureRequest
) -> None:
    """advance_many inside Driver.pipeline (the round's transaction, engine/rounds.py): each step's fence is
    checked on its own (the held one recorded with its event, the other owner's refused); on PostgreSQL a
    SQLAlchemy statement inside the pipeline is refused (its answer would read as empty), and the
    transaction rolls back with it."""
    _account(db)
    until = START + timedelta(seconds=30)
    with db.write() as conn:
        insert_task(conn, _task("T-p", "c-p"), START)
        (lease,) = engine_store.claim(
            conn, owner="w1", now=START, lease_until=until, limit=1, postgres=db.is_postgres
        )
    step = {"updated_at": START, "lease_expires_at": until, "current_step": 1}
    with db.write() as conn:
        assert not Driver.within(conn).pipelines  # off unless SessionLimits.pipeline (decision 0052)
    if db.is_postgres:
        db = Database(db.url.render_as_string(hide_password=False), limits=SessionLimits(pipeline=True))
        request.addfinalizer(db.dispose)
    with db.write() as conn:
        driver = Driver.within(conn)
        assert driver.pipelines == db.is_postgres
        with driver.pipeline() as sync:
            assert engine_store.advance_many(driver, "w1", [(lease, step)]) == {lease.seq}
            assert (
                engine_store.advance_many(driver, "w-other", [(lease, {**step, "current_step": 2})]) == set()
            )
            sync()
    assert [(e.kind, e.current_step) for e in _read(db, cluster_id="c-p", count=2)] == [
        ("created", 0), ("progress", 1),
    ]  # fmt: skip
    if db.is_postgres:

        def core_in_pipeline() -> None:
            with db.write() as conn:
                driver = Driver.within(conn)
                with driver.pipeline():
                    engine_store.advance_many(driver, "w1", [(lease, {**step, "current_step": 2})])
                    conn.execute(select(tasks.c.seq))

        with pytest.raises(RuntimeError, match="pipelined"):
            core_in_pipeline()
        with db.read() as conn:
            assert conn.execute(select(tasks.c.current_step)).scalar_one() == 1


def test_last_steps_are_recorded_in_a_batch_with_their_effects_and_an_ended_event(db: Database) -> None:
    """advance_many with `ends` (the round's transaction, engine/rounds.py): a task's last step among
    others' progress, each fenced on its own lease, the ended one with its status, Result and end time
    and an "ended" event, the other a "progress" one; a taken-over lease's last step writes nothing."""
    _account(db)
    until = START + timedelta(seconds=30)
    a, b, c = _claimed(db, "e", 3, until)
    ended = START + timedelta(seconds=2, microseconds=7)
    last = {
        "current_step": 1,
        "updated_at": ended,
        "lease_expires_at": until,
        "status": "Success",
        "finished_at": ended,
        "result": '{"Instances":[]}',
        "lease_owner": None,
        "run_after": None,
    }
    going = {"current_step": 1, "updated_at": START, "lease_expires_at": until, "state": '{"k":1}'}
    taken = dataclasses.replace(c, token=c.token + 1)
    with db.write() as conn:
        driver = Driver.within(conn)
        held = engine_store.advance_many(driver, "w1", [(a, last), (b, going), (taken, last)], ends=True)
    assert held == {a.seq, b.seq}
    with db.read() as conn:
        rows = {r.task_id: r for r in conn.execute(select(tasks))}
    assert (rows["T-e0"].status, rows["T-e0"].finished_at, rows["T-e0"].result) == (
        "Success",
        ended,
        '{"Instances":[]}',
    )
    assert (rows["T-e0"].lease_owner, rows["T-e0"].run_after) == (None, None)
    assert (rows["T-e1"].status, rows["T-e1"].state, rows["T-e1"].finished_at) == (
        "Processing",
        '{"k":1}',
        None,
    )
    assert (rows["T-e2"].status, rows["T-e2"].current_step, rows["T-e2"].finished_at) == (
        "Processing",
        0,
        None,
    )
    recorded = [(e.task_id, e.kind) for e in _read(db, count=5) if e.kind != "created"]
    assert sorted(recorded) == [("T-e0", "ended"), ("T-e1", "progress")]


def test_one_heartbeat_extends_every_lease_still_held_and_only_those(db: Database) -> None:
    """The heartbeat extends, in one statement, the leases of this owner whose token is still theirs, and
    says which; a lease taken over since (another token) or another owner's is left alone."""
    _account(db)
    until = START + timedelta(seconds=30)
    a, b, c = _claimed(db, "h", 3, until)
    later = until + timedelta(seconds=10)
    asked = [(a.seq, a.token), (b.seq, b.token + 1), (c.seq, c.token)]
    with db.write() as conn:
        assert engine_store.heartbeat(conn, asked, "w1", later) == [(a.seq, a.token), (c.seq, c.token)]
        assert engine_store.heartbeat(conn, [(a.seq, a.token)], "w-other", later + timedelta(1)) == []
        assert engine_store.heartbeat(conn, [], "w1", later) == []
    with db.read() as conn:
        expiry = {r.task_id: r.lease_expires_at for r in conn.execute(select(tasks))}
    assert expiry == {"T-h0": later, "T-h1": until, "T-h2": later}


@pytest.mark.parametrize("db", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_the_heartbeat_skips_a_row_a_step_holds_locked(db: Database) -> None:
    """A lease whose row a step's open transaction has locked is not waited for (the wait could deadlock
    with that transaction, which locks its rows over several statements): the heartbeat extends the
    others at once and leaves that one to the step; once the lock is gone, it extends it too."""
    _account(db)
    until = START + timedelta(seconds=30)
    a, b = _claimed(db, "l", 2, until)
    later = until + timedelta(seconds=10)
    asked = [(a.seq, a.token), (b.seq, b.token)]
    with db.engine.connect() as step:
        step.execute(update(tasks).where(tasks.c.seq == b.seq).values(current_step=1))  # held, uncommitted
        began = time.monotonic()
        with db.write() as conn:
            assert engine_store.heartbeat(conn, asked, "w1", later) == [(a.seq, a.token)]
        assert time.monotonic() - began < 1.0, "the heartbeat waited for the step's lock"
        step.rollback()
    with db.write() as conn:
        assert engine_store.heartbeat(conn, asked, "w1", later) == asked
    with db.read() as conn:
        expiry = {r.task_id: r.lease_expires_at for r in conn.execute(select(tasks))}
    assert expiry == {"T-l0": later, "T-l1": later}


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
