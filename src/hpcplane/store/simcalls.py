"""The simulated cloud's record of what it was asked: one row per call, once per token."""

from __future__ import annotations

import json
from datetime import datetime

from hpcplane.store.db import Driver

# Check-then-insert in one statement: it sees what was committed before it began, which on PostgreSQL is
# after the advisory lock before it was granted.
_RECORD = (
    "INSERT INTO sim_calls (token, action, instance_ids, at) SELECT ?, ?, ?, ?"
    " WHERE NOT EXISTS (SELECT 1 FROM sim_calls WHERE token = ?)"
)
_LOCK = "SELECT pg_advisory_xact_lock(hashtext(?))"


def record_once(driver: Driver, token: str, action: str, instance_ids: list[str], at: datetime) -> bool:
    """Log the call unless its token is logged already, in a transaction of its own on `driver` (from
    `Database.driver(write=True)`); False when it was (the same call again).

    On PostgreSQL a transaction-scoped advisory lock on the token makes check-then-insert atomic between
    two holders of one task (a late one and its successor): the lock and the INSERT go as one simple
    query (`Driver.script`), one implicit transaction in one round trip, the INSERT's snapshot taken once
    the lock is held. SQLite's writes are serial."""
    values = [token, action, json.dumps(instance_ids), at, token]
    if driver.is_sqlite:
        with driver.atomic():
            cursor = driver.execute(_RECORD, values)
    else:
        cursor = driver.script(f"{_LOCK}; {_RECORD}", [token, *values])
    return cursor.rowcount == 1
