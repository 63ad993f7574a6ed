"""Accounts, RAM users and AccessKeys in the store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, or_, select, update

from hpcplane.domain.accounts import AccessKey, Account, KeyStatus
from hpcplane.store.db import Driver
from hpcplane.store.secrets import SecretBox
from hpcplane.store.tables import access_keys, accounts, meta, ram_users


def _account(row: Row[Any, Any, Any]) -> Account:
    return Account(id=row.id, name=row.name, ehpc_enabled=bool(row.ehpc_enabled))


def insert_account(conn: Connection, account: Account, now: datetime) -> None:
    conn.execute(
        insert(accounts).values(
            id=account.id, name=account.name, ehpc_enabled=account.ehpc_enabled, created_at=now
        )
    )


def find_account(conn: Connection, id_or_name: str) -> Account | None:
    """The account whose AccountId or name is `id_or_name`."""
    row = conn.execute(
        select(accounts.c.id, accounts.c.name, accounts.c.ehpc_enabled).where(
            or_(accounts.c.id == id_or_name, accounts.c.name == id_or_name)
        )
    ).first()
    return _account(row) if row else None


def get_account(conn: Connection, account_id: str) -> Account | None:
    row = conn.execute(
        select(accounts.c.id, accounts.c.name, accounts.c.ehpc_enabled).where(accounts.c.id == account_id)
    ).first()
    return _account(row) if row else None


def list_accounts(conn: Connection) -> list[Account]:
    rows = conn.execute(
        select(accounts.c.id, accounts.c.name, accounts.c.ehpc_enabled).order_by(accounts.c.created_at)
    )
    return [_account(row) for row in rows]


def count_accounts(conn: Connection) -> int:
    return len(conn.execute(select(accounts.c.id).limit(1)).all())


def set_enabled(conn: Connection, account_id: str, enabled: bool) -> None:
    conn.execute(update(accounts).where(accounts.c.id == account_id).values(ehpc_enabled=enabled))


def insert_user(conn: Connection, user_id: str, account_id: str, name: str, now: datetime) -> None:
    conn.execute(insert(ram_users).values(id=user_id, account_id=account_id, name=name, created_at=now))


def find_user(conn: Connection, account_id: str, name: str) -> str | None:
    """The id of the account's RAM user called `name`."""
    return conn.execute(
        select(ram_users.c.id).where(ram_users.c.account_id == account_id, ram_users.c.name == name)
    ).scalar_one_or_none()


def insert_key(conn: Connection, box: SecretBox, key: AccessKey, now: datetime) -> None:
    conn.execute(
        insert(access_keys).values(
            id=key.id,
            account_id=key.account_id,
            user_id=key.user_id,
            secret_enc=box.seal(key.secret),
            status=key.status.value,
            created_at=now,
        )
    )


def _access_key(box: SecretBox, row: Sequence[Any]) -> AccessKey:
    """(id, account_id, user_id, secret_enc, status, user name) as an AccessKey, its secret decrypted."""
    key_id, account_id, user_id, secret_enc, status, user_name = row
    return AccessKey(
        id=key_id,
        account_id=account_id,
        user_id=user_id,
        user_name=user_name,
        secret=box.open(secret_enc),
        status=KeyStatus(status),
    )


_KEY_AND_ACCOUNT = (
    "SELECT k.id, k.account_id, k.user_id, k.secret_enc, k.status, u.name, a.name, a.ehpc_enabled"
    " FROM access_keys k JOIN accounts a ON a.id = k.account_id"
    " LEFT OUTER JOIN ram_users u ON u.id = k.user_id WHERE k.id = ?"
)


def _key_and_account(box: SecretBox, row: Sequence[Any]) -> tuple[AccessKey, Account]:
    """A row of _KEY_AND_ACCOUNT's columns as the key (its secret decrypted) and its account."""
    key = _access_key(box, row[:6])
    return key, Account(id=key.account_id, name=row[6], ehpc_enabled=bool(row[7]))


def key_and_account(driver: Driver, box: SecretBox, key_id: str) -> tuple[AccessKey, Account] | None:
    """A permanent AccessKey with its secret decrypted, and its account: one indexed read per request."""
    row = driver.row(_KEY_AND_ACCOUNT, (key_id,))
    return None if row is None else _key_and_account(box, row)


# The same, and whether the store holds the request's nonce for that key unexpired: the key, its account and
# the replay check in one indexed read (one round trip on PostgreSQL instead of two).
_KEY_ACCOUNT_AND_NONCE = (
    "SELECT k.id, k.account_id, k.user_id, k.secret_enc, k.status, u.name, a.name, a.ehpc_enabled,"
    " EXISTS (SELECT 1 FROM nonces n WHERE n.access_key_id = k.id AND n.nonce = ? AND n.expires_at >= ?)"
    " FROM access_keys k JOIN accounts a ON a.id = k.account_id"
    " LEFT OUTER JOIN ram_users u ON u.id = k.user_id WHERE k.id = ?"
)
_CONVERTED_MAX = 4096


class KeyRows:
    """Reads a permanent key with its account (and the nonce check) on every call, and converts each
    distinct row it reads once: the row is the key's state as of this read (status, secret, account flag),
    so a key disabled or an account changed by any process is seen on the very next call."""

    def __init__(self, box: SecretBox) -> None:
        self._box = box
        self._converted: dict[tuple[Any, ...], tuple[AccessKey, Account]] = {}

    def convert(self, row: Sequence[Any]) -> tuple[AccessKey, Account]:
        state = tuple(row[:8])
        found = self._converted.get(state)
        if found is None:
            found = _key_and_account(self._box, state)
            if len(self._converted) >= _CONVERTED_MAX:
                self._converted.clear()
            self._converted[state] = found
        return found

    def with_nonce(
        self, driver: Driver, key_id: str, nonce: str, now: datetime
    ) -> tuple[tuple[AccessKey, Account] | None, bool]:
        """The key and its account (None: no such key), and whether the store holds `nonce` for it,
        unexpired at `now`: one statement."""
        row = driver.row(_KEY_ACCOUNT_AND_NONCE, (nonce, now, key_id))
        if row is None:
            return None, False
        return self.convert(row), bool(row[8])


def list_keys(conn: Connection, box: SecretBox, account_id: str) -> list[AccessKey]:
    """The account's AccessKeys, oldest first, with their secrets decrypted."""
    rows = conn.execute(
        select(
            access_keys.c.id,
            access_keys.c.account_id,
            access_keys.c.user_id,
            access_keys.c.secret_enc,
            access_keys.c.status,
            ram_users.c.name,
        )
        .select_from(access_keys.outerjoin(ram_users, ram_users.c.id == access_keys.c.user_id))
        .where(access_keys.c.account_id == account_id)
        .order_by(access_keys.c.created_at)
    )
    return [_access_key(box, row) for row in rows]


def set_key_status(conn: Connection, key_id: str, status: KeyStatus) -> bool:
    """Change a key's status; False when there is no such key."""
    result = conn.execute(update(access_keys).where(access_keys.c.id == key_id).values(status=status.value))
    return result.rowcount == 1


def get_meta(conn: Connection, key: str) -> str | None:
    return conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar_one_or_none()


def set_meta(conn: Connection, key: str, value: str) -> None:
    if get_meta(conn, key) is None:
        conn.execute(insert(meta).values(key=key, value=value))
    else:
        conn.execute(update(meta).where(meta.c.key == key).values(value=value))
