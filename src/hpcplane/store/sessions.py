"""Console sessions: only the SHA-256 of the random session id is stored, with its key and expiry."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, insert

from hpcplane.store.db import Driver
from hpcplane.store.tables import console_sessions

_FIND = "SELECT account_id, access_key_id FROM console_sessions WHERE id_hash = ? AND expires_at > ?"


def create(
    conn: Connection, id_hash: str, account_id: str, access_key_id: str, now: datetime, expires: datetime
) -> None:
    conn.execute(
        insert(console_sessions).values(
            id_hash=id_hash,
            account_id=account_id,
            access_key_id=access_key_id,
            created_at=now,
            expires_at=expires,
        )
    )


def find(driver: Driver, id_hash: str, now: datetime) -> tuple[str, str] | None:
    """(account id, AccessKey id) of an unexpired session."""
    row = driver.row(_FIND, [id_hash, now])
    return (row[0], row[1]) if row else None


def remove(conn: Connection, id_hash: str) -> bool:
    return bool(conn.execute(delete(console_sessions).where(console_sessions.c.id_hash == id_hash)).rowcount)


def purge_expired(conn: Connection, now: datetime) -> int:
    return int(conn.execute(delete(console_sessions).where(console_sessions.c.expires_at <= now)).rowcount)
