"""ListClusterLogs' lines in the store: appended by the engine's steps, read newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

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


def append(conn: Connection, cluster_id: str, operation: str, level: str, message: str, at: datetime) -> None:
    """One line, in the caller's transaction (straight to the driver: the engine's steps write these)."""
    Driver.within(conn).execute(_APPEND, [cluster_id, operation, level, message[:MESSAGE_WIDTH], at])


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
