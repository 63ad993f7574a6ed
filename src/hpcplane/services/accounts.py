"""Accounts, RAM users and AccessKeys: the use cases behind the CLI, and the key lookup."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, exc

from hpcplane import ids
from hpcplane.clock import Clock
from hpcplane.domain.accounts import AccessKey, Account, KeyStatus
from hpcplane.store import accounts as store
from hpcplane.store import nonces as nonce_store
from hpcplane.store import ram as ram_store
from hpcplane.store.db import Database
from hpcplane.store.secrets import SecretBox


class AccountError(Exception):
    """A CLI-level mistake: an unknown account, user or key, or a name already taken."""


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """An AccessKey pair as printed once to the operator."""

    account_id: str
    access_key_id: str
    access_key_secret: str
    user_name: str | None = None


class AccountService:
    """Creates and changes accounts, RAM users and keys."""

    def __init__(self, db: Database, box: SecretBox, clock: Clock) -> None:
        self._db = db
        self._box = box
        self._clock = clock

    def create_account(self, name: str) -> IssuedKey:
        """A new account with E-HPC enabled and one active AccessKey."""
        if not name or len(name) > 64:
            raise AccountError("an account name has 1 to 64 characters")
        account = Account(id=ids.account_id(), name=name, ehpc_enabled=True)
        now = self._clock.now()
        try:
            with self._db.write() as conn:
                if store.find_account(conn, name) is not None:
                    raise AccountError(f"an account named {name!r} exists already")
                store.insert_account(conn, account, now)
                return self._issue(conn, account.id, None, None)
        except exc.IntegrityError as error:
            raise AccountError(f"an account named {name!r} exists already") from error

    def create_key(self, account_ref: str, user_name: str | None = None) -> IssuedKey:
        """A new active AccessKey for the account, or for one of its RAM users."""
        with self._db.write() as conn:
            account = self._account(conn, account_ref)
            user_id = None
            if user_name is not None:
                user_id = store.find_user(conn, account.id, user_name)
                if user_id is None:
                    raise AccountError(f"account {account.name} has no RAM user {user_name!r}")
            return self._issue(conn, account.id, user_id, user_name)

    def disable_key(self, access_key_id: str) -> None:
        with self._db.write() as conn:
            if not store.set_key_status(conn, access_key_id, KeyStatus.INACTIVE):
                raise AccountError(f"no AccessKey {access_key_id!r}")

    def enable_key(self, access_key_id: str) -> None:
        with self._db.write() as conn:
            if not store.set_key_status(conn, access_key_id, KeyStatus.ACTIVE):
                raise AccountError(f"no AccessKey {access_key_id!r}")

    def set_service(self, account_ref: str, enabled: bool) -> Account:
        """Enable or disable E-HPC for an account."""
        with self._db.write() as conn:
            account = self._account(conn, account_ref)
            store.set_enabled(conn, account.id, enabled)
            return Account(account.id, account.name, enabled)

    def create_user(self, account_ref: str, user_name: str) -> str:
        """A RAM user under the account; returns its id."""
        if not user_name or len(user_name) > 64:
            raise AccountError("a RAM user name has 1 to 64 characters")
        with self._db.write() as conn:
            account = self._account(conn, account_ref)
            if store.find_user(conn, account.id, user_name) is not None:
                raise AccountError(f"account {account.name} has a RAM user {user_name!r} already")
            user_id = str(secrets.randbelow(9 * 10**15) + 10**15)
            store.insert_user(conn, user_id, account.id, user_name, self._clock.now())
            return user_id

    def list_accounts(self) -> list[Account]:
        with self._db.read() as conn:
            return store.list_accounts(conn)

    def list_keys(self, account_ref: str) -> list[AccessKey]:
        with self._db.read() as conn:
            return store.list_keys(conn, self._box, self._account(conn, account_ref).id)

    def find(self, account_ref: str) -> Account:
        with self._db.read() as conn:
            return self._account(conn, account_ref)

    def _account(self, conn: Connection, account_ref: str) -> Account:
        account = store.find_account(conn, account_ref)
        if account is None:
            raise AccountError(f"no account {account_ref!r} (give its AccountId or its name)")
        return account

    def _issue(self, conn: Connection, account_id: str, user_id: str | None, user: str | None) -> IssuedKey:
        key = AccessKey(
            id=ids.access_key_id(),
            account_id=account_id,
            user_id=user_id,
            user_name=user,
            secret=ids.access_key_secret(),
            status=KeyStatus.ACTIVE,
        )
        store.insert_key(conn, self._box, key, self._clock.now())
        return IssuedKey(account_id, key.id, key.secret, user)


class StoreKeyDirectory:
    """The authenticator's view of the keys: one indexed read per request (with the nonce check when the
    nonces are in the store too: `lookup_with_nonce`)."""

    def __init__(self, db: Database, box: SecretBox) -> None:
        self._db = db
        self._box = box
        self._rows = store.KeyRows(box)

    def lookup_with_nonce(
        self, access_key_id: str, nonce: str, now: datetime
    ) -> tuple[tuple[AccessKey, Account] | None, bool]:
        """The key and its account, and whether the store holds `nonce` for it unexpired at `now`."""
        if not access_key_id.startswith("STS."):
            with self._db.driver() as driver:
                return self._rows.with_nonce(driver, access_key_id, nonce, now)
        found = self.lookup(access_key_id)
        if found is None:
            return None, False
        with self._db.driver() as driver:
            return found, nonce_store.stored(driver, found[0].id, nonce, now)

    def lookup(self, access_key_id: str) -> tuple[AccessKey, Account] | None:
        if not access_key_id.startswith("STS."):
            with self._db.driver() as driver:
                return store.key_and_account(driver, self._box, access_key_id)
        with self._db.read() as conn:
            key = ram_store.get_sts_key(conn, self._box, access_key_id)
            if key is None:
                return None
            account = store.get_account(conn, key.account_id)
        return (key, account) if account is not None else None
