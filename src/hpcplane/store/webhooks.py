"""Webhooks and their deliveries. A webhook's cursor is the last task event it got (task_events is the
outbox); deliverers claim due webhooks under a lease (FOR UPDATE SKIP LOCKED on PostgreSQL, SQLite's
single writer elsewhere), so several worker processes share the work and never send one webhook's events
out of order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, delete, insert, or_, select, update

from hpcplane.store.events import Cursor
from hpcplane.store.tables import webhook_deliveries, webhooks


@dataclass(frozen=True, slots=True)
class Webhook:
    id: str
    account_id: str
    url: str
    events: tuple[str, ...]  # empty: every kind
    secret_enc: str
    cursor: Cursor
    failures: int
    next_attempt_at: datetime
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    webhook_id: str
    event_id: str
    attempt: int
    ok: bool
    status_code: int | None
    error: str | None
    at: datetime


def _webhook(row: object) -> Webhook:
    r = row._mapping  # type: ignore[attr-defined]
    return Webhook(
        id=r["id"],
        account_id=r["account_id"],
        url=r["url"],
        events=tuple(kind for kind in r["events"].split(",") if kind),
        secret_enc=r["secret_enc"],
        cursor=Cursor(r["cursor_tx"], r["cursor_id"]),
        failures=r["failures"],
        next_attempt_at=r["next_attempt_at"],
        created_at=r["created_at"],
    )


def add(conn: Connection, hook: Webhook) -> None:
    conn.execute(
        insert(webhooks).values(
            id=hook.id,
            account_id=hook.account_id,
            url=hook.url,
            events=",".join(hook.events),
            secret_enc=hook.secret_enc,
            cursor_tx=hook.cursor.tx,
            cursor_id=hook.cursor.id,
            failures=0,
            next_attempt_at=hook.next_attempt_at,
            created_at=hook.created_at,
        )
    )


def list_webhooks(conn: Connection, account_id: str | None = None) -> list[Webhook]:
    query = select(webhooks).order_by(webhooks.c.created_at, webhooks.c.id)
    if account_id is not None:
        query = query.where(webhooks.c.account_id == account_id)
    return [_webhook(row) for row in conn.execute(query)]


def get(conn: Connection, webhook_id: str) -> Webhook | None:
    row = conn.execute(select(webhooks).where(webhooks.c.id == webhook_id)).first()
    return _webhook(row) if row else None


def remove(conn: Connection, webhook_id: str) -> bool:
    return bool(conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id)).rowcount)


def claim(
    conn: Connection, *, owner: str, now: datetime, lease_until: datetime, limit: int, postgres: bool
) -> list[Webhook]:
    """Lease up to `limit` webhooks whose next attempt is due and that no live lease holds."""
    due = and_(
        webhooks.c.next_attempt_at <= now,
        or_(webhooks.c.lease_owner.is_(None), webhooks.c.lease_expires_at < now),
    )
    candidates = select(webhooks.c.id).where(due).order_by(webhooks.c.next_attempt_at).limit(limit)
    if postgres:
        candidates = candidates.with_for_update(skip_locked=True)
    ids = list(conn.execute(candidates).scalars())
    if not ids:
        return []
    rows = conn.execute(
        update(webhooks)
        .where(webhooks.c.id.in_(ids), due)
        .values(lease_owner=owner, lease_expires_at=lease_until)
        .returning(*webhooks.c)
    ).all()
    return [_webhook(row) for row in rows]


def delivered(conn: Connection, webhook_id: str, owner: str, cursor: Cursor) -> bool:
    """Move the cursor past a delivered event (fenced on the lease); False if the lease is gone."""
    result = conn.execute(
        update(webhooks)
        .where(webhooks.c.id == webhook_id, webhooks.c.lease_owner == owner)
        .values(cursor_tx=cursor.tx, cursor_id=cursor.id, failures=0)
    )
    return bool(result.rowcount)


def release(
    conn: Connection, webhook_id: str, owner: str, next_attempt_at: datetime, failures: int | None
) -> None:
    """Give the lease back; the next attempt is due at `next_attempt_at` (`failures` counted so far)."""
    values: dict[str, object] = {
        "lease_owner": None,
        "lease_expires_at": None,
        "next_attempt_at": next_attempt_at,
    }
    if failures is not None:
        values["failures"] = failures
    conn.execute(
        update(webhooks).where(webhooks.c.id == webhook_id, webhooks.c.lease_owner == owner).values(**values)
    )


def record_delivery(conn: Connection, delivery: Delivery) -> None:
    conn.execute(
        insert(webhook_deliveries).values(
            webhook_id=delivery.webhook_id,
            event_id=delivery.event_id,
            attempt=delivery.attempt,
            ok=delivery.ok,
            status_code=delivery.status_code,
            error=delivery.error,
            at=delivery.at,
        )
    )


def deliveries(
    conn: Connection, webhook_id: str, *, failed_only: bool = False, limit: int = 50
) -> list[Delivery]:
    """The newest attempts first."""
    query = (
        select(webhook_deliveries)
        .where(webhook_deliveries.c.webhook_id == webhook_id)
        .order_by(webhook_deliveries.c.id.desc())
        .limit(limit)
    )
    if failed_only:
        query = query.where(webhook_deliveries.c.ok.is_(False))
    return [Delivery(**row._mapping) for row in conn.execute(query)]
