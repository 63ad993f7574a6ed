"""The emulator control API's SQL: reset state, move tasks' due times, release a lease, the tuning row."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, Table, delete, select, update

from hpcplane.store import accounts as account_store
from hpcplane.store import engine as engine_store
from hpcplane.store.db import Driver
from hpcplane.store.tables import meta, metadata, tasks

CONTROL_KEY = "control_tuning"  # the runtime tuning (faults, step timing), JSON, read by every process
# What identifies callers; kept by a reset of resources, deleted by a reset of everything.
IDENTITY_TABLES = frozenset(
    {
        "accounts",
        "ram_users",
        "access_keys",
        "ram_groups",
        "ram_group_members",
        "ram_policies",
        "ram_attachments",
        "ram_roles",
        "sts_credentials",
    }
)
# Never reset: the store's own bookkeeping and the audit trail.
KEPT_TABLES = frozenset({"meta", "alembic_version", "audit_log"})
KEPT_META = frozenset({"secret_key_check", "control_token"})


def _resettable(everything: bool) -> list[Table]:
    """Tables a reset empties, children before parents; tables added later are reset too."""
    chosen = []
    for table in reversed(metadata.sorted_tables):
        if table.name in KEPT_TABLES or (table.name in IDENTITY_TABLES and not everything):
            continue
        chosen.append(table)
    return chosen


def reset(conn: Connection, *, account_id: str | None = None, everything: bool = False) -> dict[str, int]:
    """Delete every resource (of one account, when given); with `everything`, accounts and keys too."""
    deleted: dict[str, int] = {}
    for table in _resettable(everything and account_id is None):
        if account_id is not None:
            if "account_id" not in table.c:
                continue
            statement = delete(table).where(table.c.account_id == account_id)
        else:
            statement = delete(table)
        count = conn.execute(statement).rowcount
        if count:
            deleted[table.name] = count
    if account_id is None:
        gone = meta.c.key.not_in(KEPT_META) if everything else meta.c.key == CONTROL_KEY
        conn.execute(delete(meta).where(gone))
    return deleted


def get_tuning(conn: Connection) -> str | None:
    return account_store.get_meta(conn, CONTROL_KEY)


def read_tuning(driver: Driver) -> str | None:
    """The tuning row on the bare driver: what each engine reads when it claims a task."""
    row = driver.row("SELECT value FROM meta WHERE key = ?", (CONTROL_KEY,))
    return None if row is None else str(row[0])


def current_step(driver: Driver, task_id: str) -> int:
    row = driver.row("SELECT current_step FROM tasks WHERE task_id = ?", (task_id,))
    return -1 if row is None else int(row[0])


def set_tuning(conn: Connection, value: str) -> None:
    account_store.set_meta(conn, CONTROL_KEY, value)


def advance(conn: Connection, seconds: float, now: datetime) -> int:
    """Bring every unfinished task's next step `seconds` closer (at most to now); returns how many moved."""
    if seconds <= 0:
        return 0
    delta = timedelta(seconds=min(seconds, 1e13))
    rows = conn.execute(
        select(tasks.c.seq, tasks.c.run_after).where(
            tasks.c.finished_at.is_(None), tasks.c.run_after.is_not(None)
        )
    ).all()
    for row in rows:
        conn.execute(
            update(tasks)
            .where(tasks.c.seq == row.seq)
            .values(run_after=now if row.run_after - now <= delta else row.run_after - delta)
        )
    if rows and conn.dialect.name == "postgresql":
        engine_store.notify(conn)
    return len(rows)


def make_due(conn: Connection, task_id: str, now: datetime) -> bool:
    """Make an unfinished task's next step due now; False when there is no such task."""
    result = conn.execute(
        update(tasks).where(tasks.c.task_id == task_id, tasks.c.finished_at.is_(None)).values(run_after=now)
    )
    return bool(result.rowcount)


def release(conn: Connection, seq: int, owner: str, token: int) -> None:
    """Give a lease back (fenced on its token) so any worker may run the next step."""
    conn.execute(
        update(tasks)
        .where(tasks.c.seq == seq, tasks.c.lease_owner == owner, tasks.c.lease_token == token)
        .values(lease_owner=None)
    )


def task_exists(conn: Connection, task_id: str) -> tuple[bool, bool]:
    """(exists, finished) for one task."""
    row = conn.execute(select(tasks.c.finished_at).where(tasks.c.task_id == task_id)).first()
    return (row is not None, row is not None and row.finished_at is not None)
