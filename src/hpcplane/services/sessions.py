"""Console sign-in: an AccessKey pair checked once, then a server-side session behind a random id.

The cookie holds the random id; the store holds its SHA-256 (a stolen database opens no session), the
AccessKey id and the expiry, never the secret. Every request re-reads the key, so a key made inactive or
deleted ends its sessions at once. The CSRF token is an HMAC of the session id under a key derived from
the secret key: nothing more to store, and every API process computes the same.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from hpcplane.api.authn import KeyDirectory
from hpcplane.clock import Clock
from hpcplane.domain.accounts import AccessKey, Account, KeyStatus, Principal
from hpcplane.domain.errors import InvalidAccessKeyPair
from hpcplane.store import audit as audit_store
from hpcplane.store import sessions as store
from hpcplane.store.db import Database


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A new session: the cookie's value, its CSRF token and who it is."""

    session_id: str
    csrf: str
    principal: Principal


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class ConsoleSessions:
    def __init__(
        self, db: Database, keys: KeyDirectory, clock: Clock, *, ttl: float, csrf_key: bytes
    ) -> None:
        self._db = db
        self._keys = keys
        self._clock = clock
        self.ttl = ttl
        self._csrf_key = csrf_key

    def sign_in(self, access_key_id: str, secret: str) -> SignedIn:
        """Check the pair (a permanent key, active) and open a session; InvalidAccessKeyPair if not."""
        found = self._active(access_key_id)
        if found is None or not hmac.compare_digest(found[0].secret.encode(), secret.encode()):
            raise InvalidAccessKeyPair()
        principal = _principal(*found)
        session_id = secrets.token_urlsafe(32)
        now = self._clock.now()
        with self._db.write() as conn:
            store.purge_expired(conn, now)
            store.create(
                conn,
                _hash(session_id),
                principal.account.id,
                access_key_id,
                now,
                now + timedelta(seconds=self.ttl),
            )
        return SignedIn(session_id, self.csrf(session_id), principal)

    def resolve(self, session_id: str) -> Principal | None:
        """The principal of an unexpired session whose key is still active."""
        with self._db.driver() as driver:
            found = store.find(driver, _hash(session_id), self._clock.now())
        key = self._active(found[1]) if found else None
        return _principal(*key) if key else None

    def sign_out(self, session_id: str) -> None:
        with self._db.write() as conn:
            store.remove(conn, _hash(session_id))

    def csrf(self, session_id: str) -> str:
        return hmac.new(self._csrf_key, session_id.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session_id: str, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.csrf(session_id), token)

    def _active(self, access_key_id: str) -> tuple[AccessKey, Account] | None:
        if not access_key_id or access_key_id.startswith("STS."):
            return None  # temporary keys sign calls; the console takes permanent keys only
        found = self._keys.lookup(access_key_id)
        return found if found is not None and found[0].status is KeyStatus.ACTIVE else None


def _principal(key: AccessKey, account: Account) -> Principal:
    return Principal(account=account, access_key_id=key.id, user_id=key.user_id, user_name=key.user_name)


def audit_trail(db: Database, principal: Principal, limit: int) -> list[dict[str, object]]:
    """The newest audit records the console shows: the account's for its own key, a RAM user's own."""
    with db.read() as conn:
        records = audit_store.search(
            conn,
            account_id=principal.account.id,
            principal=None if principal.is_account else principal.arn,
            limit=limit,
        )
    return [
        {
            "At": record.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Principal": record.principal or "",
            "Action": record.action or "",
            "Resource": record.resource or "",
            "Decision": record.decision,
            "ErrorCode": record.error_code or "",
            "SourceIp": record.source_ip,
            "RequestId": record.request_id,
        }
        for record in records
    ]
