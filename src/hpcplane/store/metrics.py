"""What /metrics reads from the store at scrape time: the engine's queue."""

from __future__ import annotations

from datetime import datetime

from hpcplane.store.db import Driver

_QUEUE = (
    "SELECT COUNT(*), COALESCE(SUM(CASE WHEN run_after <= ? AND (lease_owner IS NULL OR lease_expires_at < ?)"
    " THEN 1 ELSE 0 END), 0) FROM tasks WHERE finished_at IS NULL"
)


def queue(driver: Driver, now: datetime) -> tuple[int, int]:
    """(unfinished tasks, of which due now and not held), off the partial index of unfinished tasks."""
    row = driver.row(_QUEUE, (now, now))
    return int(row[0]), int(row[1])
