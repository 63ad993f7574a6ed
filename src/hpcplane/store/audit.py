"""The audit trail in the store: one row per API call, allowed or refused."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import Connection, select

from hpcplane.store.db import Driver
from hpcplane.store.limits import fit, width
from hpcplane.store.tables import audit_log


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One call: when, which request, who, what on which resource, from where, and the outcome."""

    at: datetime
    request_id: str
    source_ip: str
    decision: str  # Allow | Deny | Refused (failed before authorization); error_code says how it ended
    account_id: str | None = None
    principal: str | None = None
    access_key_id: str | None = None
    action: str | None = None
    resource: str | None = None
    error_code: str | None = None


_FIELDS = tuple(field.name for field in fields(AuditRecord))
_INSERT = (
    "INSERT INTO audit_log (at, request_id, source_ip, decision, account_id, principal, access_key_id,"
    " action, resource, error_code) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
assert _FIELDS == ("at", "request_id", "source_ip", "decision", "account_id", "principal", "access_key_id",
                   "action", "resource", "error_code")  # fmt: skip


def insert_records(conn: Connection, records: Sequence[AuditRecord]) -> None:
    """One batch, on the bare driver in the caller's transaction: the batch holds SQLite's single writer
    while it runs, so it must be short (SQLAlchemy's executemany took several times as long)."""
    if records:
        driver = Driver.within(conn)
        bind = driver.bind
        driver.executemany(_INSERT, [_row(r, bind(r.at)) for r in records], bound=True)


# The declared width of each text column the record fills (all but `at`), read once.
_WIDTHS = tuple((name, width("audit_log", name)) for name in _FIELDS[1:])


def _row(record: AuditRecord, at: object) -> list[object]:
    """The record's values, text fitted to its columns: a client's Action or RoleArn of any length or
    with a NUL byte must not make a batch of the trail unwritable (and so retried forever). A short ASCII
    value without NUL (every value of an SDK's call) is kept as it is: `fit` would give it back unchanged.
    The writer turns every call's record into its row: this is on the server's hot path."""
    row: list[object] = [at]
    for name, size in _WIDTHS:
        value = getattr(record, name)
        if value is not None and not (len(value) <= size and value.isascii() and "\x00" not in value):
            value = fit("audit_log", name, value)
        row.append(value)
    return row


def search(
    conn: Connection,
    *,
    action: str | None = None,
    principal: str | None = None,
    since: datetime | None = None,
    account_id: str | None = None,
    limit: int = 100,
) -> list[AuditRecord]:
    """The newest matching records first; `principal` matches the whole ARN or its last part (a user name)."""
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if action is not None:
        query = query.where(audit_log.c.action == action)
    if principal is not None:
        query = query.where(
            (audit_log.c.principal == principal) | audit_log.c.principal.like(f"%/{principal}")
        )
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    if account_id is not None:
        query = query.where(audit_log.c.account_id == account_id)
    fields = AuditRecord.__dataclass_fields__
    return [
        AuditRecord(**{k: v for k, v in row._mapping.items() if k in fields}) for row in conn.execute(query)
    ]
