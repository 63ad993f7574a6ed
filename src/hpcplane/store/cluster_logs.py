"""ListClusterLogs' lines in the store: appended by the engine's steps, read newest first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from hpcplane.store import json_rows
from hpcplane.store.db import Driver
from hpcplane.store.paging import counted_page
from hpcplane.store.tables import cluster_logs

MESSAGE_WIDTH = 512  # cluster_logs.message is String(512)


@dataclass(frozen=True, slots=True)
class LogLine:
    """One log line as ListClusterLogs renders it."""

    operation: str
    level: str
    message: str
    created_at: datetime


_APPEND = (
    "INSERT INTO cluster_logs (cluster_id, operation, level, message, created_at) VALUES (?, ?, ?, ?, ?)"
)


# (cluster_id, operation, level, message, created_at): one line as append_many takes it.
Line = tuple[str, str, str, str, datetime]

_COLUMNS = (
    ("cluster_id", "text"),
    ("operation", "text"),
    ("level", "text"),
    ("message", "text"),
    ("created_at", "timestamp"),
)
_PG_APPEND_MANY = (
    f"INSERT INTO cluster_logs ({', '.join(name for name, _ in _COLUMNS)}) "  # noqa: S608 (constant names)
    f"SELECT {', '.join(json_rows.field(n, name, kind) for n, (name, kind) in enumerate(_COLUMNS))} "
    "FROM json_array_elements(?::json) WITH ORDINALITY AS e(r, ord) ORDER BY ord"
)


def append_many(driver: Driver, lines: Sequence[Line]) -> None:
    """Lines in the order given (their ids follow it), in the driver's transaction: the engine writes a
    round's lines this way, one statement on PostgreSQL (store/json_rows.py)."""
    if not lines:
        return
    rows = [(c, o, level, message[:MESSAGE_WIDTH], at) for c, o, level, message, at in lines]
    if driver.is_sqlite:
        driver.executemany(_APPEND, rows)
    else:
        driver.execute(_PG_APPEND_MANY, [json_rows.encode(rows)])


def page(conn: Connection, cluster_id: str, *, offset: int, limit: int) -> tuple[list[LogLine], int]:
    """One page of a cluster's log lines, newest first, and how many there are."""
    query = select(
        cluster_logs.c.operation,
        cluster_logs.c.level,
        cluster_logs.c.message,
        cluster_logs.c.created_at,
    ).order_by(cluster_logs.c.id.desc())
    where = [cluster_logs.c.cluster_id == cluster_id]
    rows, total = counted_page(conn, cluster_logs, where, query, offset=offset, limit=limit)
    return [LogLine(**row) for row in rows], total
