"""The nonce replay cache: in the SQL store by default, in Redis when one is configured."""

from __future__ import annotations

from datetime import datetime, timedelta

import redis
from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from hpcplane.domain.errors import RedisError
from hpcplane.store.db import Database
from hpcplane.store.tables import nonces

_PURGE_EVERY = 1000


class SqlNonces:
    """Remembers (AccessKeyId, nonce) pairs in the `nonces` table, so every process sees them."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._insert = pg_insert if db.is_postgres else sqlite_insert
        self._since_purge = 0

    def remember(self, access_key_id: str, nonce: str, now: datetime, ttl: int) -> bool:
        """Record the nonce; False when it was already recorded and has not expired."""
        insert = self._insert(nonces).values(
            access_key_id=access_key_id, nonce=nonce, expires_at=now + timedelta(seconds=ttl)
        )
        stmt = insert.on_conflict_do_update(
            index_elements=[nonces.c.access_key_id, nonces.c.nonce],
            set_={"expires_at": insert.excluded.expires_at},
            where=nonces.c.expires_at < now,
        ).returning(nonces.c.nonce)
        with self._db.write() as conn:
            fresh = conn.execute(stmt).first() is not None
            self._since_purge += 1
            if self._since_purge >= _PURGE_EVERY:
                self._since_purge = 0
                conn.execute(delete(nonces).where(nonces.c.expires_at < now))
        return fresh


class RedisNonces:
    """Remembers nonces in Redis with SET NX EX: one round trip, shared by every API process."""

    def __init__(self, url: str, timeout: float) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)

    def remember(self, access_key_id: str, nonce: str, now: datetime, ttl: int) -> bool:
        try:
            return bool(self._client.set(f"hpcplane:nonce:{access_key_id}:{nonce}", b"1", nx=True, ex=ttl))
        except redis.RedisError as error:
            raise RedisError() from error

    def close(self) -> None:
        self._client.close()
