"""Task events: one row per task change, appended in the change's own transaction, read in order.

The engine's step writes its event in the statement that advances the task (PostgreSQL: one statement
with the UPDATE, the INSERT and the NOTIFY; SQLite: the UPDATE and an INSERT ... SELECT in one
transaction). Readers go in (tx, id) order and, on PostgreSQL, take only rows of transactions older than
every running one, so an event committed late is never skipped by a reader that moved past its id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, delete, insert, text

from hpcplane.store import json_rows
from hpcplane.store.db import Driver
from hpcplane.store.tables import task_events, tasks

EVENT_CHANNEL = "hpcplane_events"
KINDS = ("created", "progress", "ended")

# The columns an event copies from its task row, in the order the reads below return them.
_COPIED = (
    "task_id",
    "account_id",
    "cluster_id",
    "task_type",
    "status",
    "current_step",
    "total_steps",
    "result",
    "errors",
    "request",
)
_XMIN = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
_TX = "pg_current_xact_id()::text::bigint"


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in the event order; rendered as 'tx-id' (the SSE id and the webhooks' EventId)."""

    tx: int = 0
    id: int = 0

    def render(self) -> str:
        return f"{self.tx}-{self.id}"

    @classmethod
    def parse(cls, value: str | None) -> Cursor | None:
        """None when the value is absent or not a cursor."""
        if not value:
            return None
        tx, _, seq = value.strip().partition("-")
        if not (tx.isdigit() and seq.isdigit()):
            return None
        return cls(int(tx), int(seq))


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """One change of one task, with the task as ListTasks shows it at that moment."""

    cursor: Cursor
    kind: str
    task_id: str
    account_id: str
    cluster_id: str
    task_type: str
    status: str
    current_step: int
    total_steps: int
    result: str
    errors: str
    request: str
    at: datetime

    def task(self) -> dict[str, object]:
        """The ListTasks schema of the task."""
        return {
            "ClusterId": self.cluster_id,
            "TaskId": self.task_id,
            "TaskType": self.task_type,
            "Status": self.status,
            "CurrentStep": self.current_step,
            "TotalSteps": self.total_steps,
            "Result": self.result,
            "Errors": self.errors,
            "Request": self.request,
        }

    def body(self) -> dict[str, object]:
        """What the SSE stream and the webhooks send."""
        return {
            "EventId": self.cursor.render(),
            "Type": f"task.{self.kind}",
            "Time": self.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "AccountId": self.account_id,
            "Task": self.task(),
        }


def record_created(conn: Connection, values: dict[str, Any], now: datetime) -> None:
    """The creation event of a task being inserted, in the caller's transaction (and a NOTIFY)."""
    postgres = conn.dialect.name == "postgresql"
    conn.execute(
        insert(task_events).values(
            tx=text(_TX) if postgres else 0,
            kind="created",
            at=now,
            **{name: values[name] for name in _COPIED},
        )
    )
    if postgres:
        conn.execute(text(f"NOTIFY {EVENT_CHANNEL}"))


_SQLITE_COPY = (
    f"INSERT INTO task_events (tx, kind, {', '.join(_COPIED)}, at) "  # noqa: S608 (constant names)
    f"SELECT 0, ?, {', '.join(_COPIED)}, updated_at FROM tasks WHERE seq = ?"
)


@lru_cache(maxsize=64)
def _pg_advance_sql(columns: tuple[str, ...]) -> str:
    """The fenced UPDATE, its event and the NOTIFY as one statement (one round trip, one transaction)."""
    unknown = set(columns) - set(tasks.c.keys())
    if unknown:
        raise ValueError(f"not columns of tasks: {sorted(unknown)}")
    assignments = ", ".join(f"{name} = ?" for name in columns)
    copied = ", ".join(_COPIED)
    return (
        f"WITH u AS (UPDATE tasks SET {assignments} "  # noqa: S608 (names checked above, values bound)
        "WHERE seq = ? AND lease_owner = ? AND lease_token = ? "
        f"RETURNING {copied}, updated_at), "
        f"e AS (INSERT INTO task_events (tx, kind, {copied}, at) "
        f"SELECT {_TX}, ?, {copied}, updated_at FROM u RETURNING id) "
        f"SELECT pg_notify('{EVENT_CHANNEL}', '') FROM e"
    )


def advance_with_event(
    driver: Driver, update_sql: str, columns: tuple[str, ...], params: list[Any], fence: list[Any], kind: str
) -> bool:
    """Run the engine's fenced step UPDATE (`update_sql` with `params` then `fence`) and append its event
    in the same transaction; False (and no event) when the fence held nothing."""
    if not driver.is_sqlite:
        return bool(driver.execute(_pg_advance_sql(columns), [*params, *fence, kind]).rowcount == 1)
    with driver.transaction():
        if driver.execute(update_sql, [*params, *fence]).rowcount != 1:
            return False
        driver.execute(_SQLITE_COPY, [kind, fence[0]])
    return True


# The PostgreSQL type of each column a batched step may set (advance_many_with_events).
_PG_TYPES = {
    "current_step": "integer",
    "state": "text",
    "errors": "text",
    "updated_at": "timestamp",
    "lease_expires_at": "timestamp",
    "run_after": "timestamp",
    "lease_owner": "text",
    "lost_streak": "integer",
    # a task's last step (engine/rounds.py: with its effects, in their transaction)
    "status": "text",
    "finished_at": "timestamp",
    "result": "text",
}


@lru_cache(maxsize=16)
def _pg_many_sql(columns: tuple[str, ...]) -> str:
    """Many tasks' fenced step UPDATEs, their events and one NOTIFY as one statement: the rows come as one
    JSON array of arrays (seq, owner, token, then `columns`; store/json_rows.py)."""
    unknown = set(columns) - set(_PG_TYPES)
    if unknown:
        raise ValueError(f"not columns a batched step sets: {sorted(unknown)}")
    kinds = ("bigint", "text", "integer", *(_PG_TYPES[name] for name in columns))
    names = ("seq", "owner", "token", *columns)
    fields = ", ".join(
        json_rows.field(n, name, kind) for n, (name, kind) in enumerate(zip(names, kinds, strict=True))
    )
    assignments = ", ".join(f"{name} = v.{name}" for name in columns)
    returned = ", ".join(f"t.{name}" for name in _COPIED)
    copied = ", ".join(_COPIED)
    return (
        f"WITH v AS (SELECT {fields} FROM json_array_elements(?::json) AS r), "  # noqa: S608 (names checked above, values bound)
        f"u AS (UPDATE tasks t SET {assignments} FROM v "
        "WHERE t.seq = v.seq AND t.lease_owner = v.owner AND t.lease_token = v.token "
        f"RETURNING t.seq, {returned}, t.updated_at), "
        f"e AS (INSERT INTO task_events (tx, kind, {copied}, at) "
        f"SELECT {_TX}, ?, {copied}, updated_at FROM u) "
        f"SELECT u.seq, pg_notify('{EVENT_CHANNEL}', '') FROM u"
    )


def advance_many_with_events(
    driver: Driver,
    update_sql: str,
    columns: tuple[str, ...],
    rows: Sequence[tuple[Sequence[Any], Sequence[Any]]],
    kind: str,
) -> set[int]:
    """Many fenced step UPDATEs (each row: its values in `columns` order, then its fence: seq, owner,
    token) and one event for each that held, all in one transaction; returns the seqs that held.

    PostgreSQL: one statement (the NOTIFY is sent once per transaction). SQLite: one transaction of
    `update_sql` and the event's INSERT ... SELECT per row."""
    if not driver.is_sqlite:
        encoded = json_rows.encode([[*fence, *params] for params, fence in rows])
        return {row[0] for row in driver.rows(_pg_many_sql(columns), [encoded, kind])}
    held = set()
    with driver.transaction():
        for params, fence in rows:
            if driver.execute(update_sql, [*params, *fence]).rowcount == 1:
                driver.execute(_SQLITE_COPY, [kind, fence[0]])
                held.add(fence[0])
    return held


_READ_COLUMNS = f"tx, id, kind, {', '.join(_COPIED)}, at"


def read_after(
    driver: Driver,
    after: Cursor,
    *,
    cluster_id: str | None = None,
    account_id: str | None = None,
    limit: int = 200,
) -> list[TaskEvent]:
    """Events after `after`, oldest first, of one cluster or one account (both may be given)."""
    where = ["(tx, id) > (?, ?)"]
    params: list[Any] = [after.tx, after.id]
    if cluster_id is not None:
        where.append("cluster_id = ?")
        params.append(cluster_id)
    if account_id is not None:
        where.append("account_id = ?")
        params.append(account_id)
    if not driver.is_sqlite:
        where.append(f"tx < {_XMIN}")
    sql = (
        f"SELECT {_READ_COLUMNS} FROM task_events WHERE {' AND '.join(where)} "  # noqa: S608 (constant)
        "ORDER BY tx, id LIMIT ?"
    )
    rows = driver.rows(sql, [*params, limit])
    return [_event(driver, row) for row in rows]


def last_cursor(driver: Driver) -> Cursor:
    """Where a reader that wants only new events starts: after every event committed so far (on
    PostgreSQL, before the oldest running transaction, so an event of one still running is not lost)."""
    if not driver.is_sqlite:
        return Cursor(int(driver.row(f"SELECT {_XMIN}")[0]), 0)
    row = driver.row("SELECT tx, id FROM task_events ORDER BY tx DESC, id DESC LIMIT 1")
    return Cursor(int(row[0]), int(row[1])) if row else Cursor()


def _event(driver: Driver, row: Sequence[Any]) -> TaskEvent:
    return TaskEvent(
        Cursor(int(row[0]), int(row[1])),
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        int(row[8]),
        int(row[9]),
        row[10],
        row[11],
        row[12],
        driver.time(row[13]),  # type: ignore[arg-type]
    )


def purge(conn: Connection, before: datetime) -> int:
    """Delete events older than `before` (kept as long as task history is)."""
    return conn.execute(delete(task_events).where(task_events.c.at < before)).rowcount
