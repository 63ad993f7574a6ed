"""The nonce replay cache: in the SQL store by default, in Redis when one is configured."""

from __future__ import annotations

from datetime import datetime, timedelta

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from hpcplane.domain.errors import RedisError
from hpcplane.store.db import Database

_PURGE_EVERY = 1000


_REMEMBER = (
    "INSERT INTO nonces (access_key_id, nonce, expires_at) VALUES (?, ?, ?)"
    " ON CONFLICT (access_key_id, nonce) DO UPDATE SET expires_at = excluded.expires_at"
    " WHERE nonces.expires_at < ? RETURNING nonce"
)
# The same; on PostgreSQL its transaction (the statement's own) commits without waiting for the disk.
_REMEMBER_PG = (
    "INSERT INTO nonces (access_key_id, nonce, expires_at) SELECT ?, ?, ?"
    " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed"
    " ON CONFLICT (access_key_id, nonce) DO UPDATE SET expires_at = excluded.expires_at"
    " WHERE nonces.expires_at < ? RETURNING nonce"
)
_PURGE = "DELETE FROM nonces WHERE expires_at < ?"


class SqlNonces:
    """Remembers (AccessKeyId, nonce) pairs in the `nonces` table, so every process sees them."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._remember = _REMEMBER if db.is_sqlite else _REMEMBER_PG
        self._since_purge = 0

    def remember(self, access_key_id: str, nonce: str, now: datetime, ttl: int) -> bool:
        """Record the nonce; False when it was already recorded and has not expired.

        One statement on the bare driver, as it runs on every request. Its commit does not wait for the
        disk (SQLite in WAL mode with synchronous=NORMAL, PostgreSQL with synchronous_commit off): a
        database crash may forget the nonces of its last moments, as a Redis restart forgets them all;
        the timestamp window still bounds any replay."""
        expires = now + timedelta(seconds=ttl)
        with self._db.driver(write=True) as driver:
            fresh = (
                driver.execute(self._remember, (access_key_id, nonce, expires, now)).fetchone() is not None
            )
            self._since_purge += 1
            if self._since_purge >= _PURGE_EVERY:
                self._since_purge = 0
                driver.execute(_PURGE, (now,))
        return fresh


class RedisNonces:
    """Remembers nonces in Redis with SET NX EX: one round trip, shared by every API process."""

    def __init__(self, url: str, timeout: float) -> None:
        # No retries: redis-py retries a timed-out command three times with backoff by default, which
        # turns HPCPLANE_DB_TIMEOUT into four of them on a frozen path. The client retries the call.
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),
        )

    def remember(self, access_key_id: str, nonce: str, now: datetime, ttl: int) -> bool:
        try:
            return bool(self._client.set(f"hpcplane:nonce:{access_key_id}:{nonce}", b"1", nx=True, ex=ttl))
        except redis.RedisError as error:
            raise RedisError() from error

    def close(self) -> None:
        self._client.close()
