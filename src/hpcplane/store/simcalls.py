"""The simulated cloud's record of what it was asked: one row per call, once per token."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Connection, func, insert, select, text

from hpcplane.store.tables import sim_calls


def record_once(
    conn: Connection, token: str, action: str, instance_ids: list[str], at: datetime, *, postgres: bool
) -> bool:
    """Log the call unless its token is logged already; False when it was (the same call again).

    On PostgreSQL a transaction-scoped advisory lock on the token makes check-then-insert atomic
    between two holders of one task (a late one and its successor); SQLite's writes are serial."""
    if postgres:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:token))"), {"token": token})
    found = conn.execute(select(func.count()).select_from(sim_calls).where(sim_calls.c.token == token))
    if found.scalar_one():
        return False
    conn.execute(
        insert(sim_calls).values(token=token, action=action, instance_ids=json.dumps(instance_ids), at=at)
    )
    return True
