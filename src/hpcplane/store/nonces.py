"""The nonce replay cache: in the SQL store by default, in Redis when one is configured."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from hpcplane.domain.errors import RedisError, ServiceUnavailable
from hpcplane.store.db import Database, Driver

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
    """Remembers (AccessKeyId, nonce) pairs in the `nonces` table with one upsert per call (the form before
    BatchedNonces, which the server uses now; kept for its tests and as the reference semantics)."""

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
            fresh = driver.row(self._remember, (access_key_id, nonce, expires, now)) is not None
            self._since_purge += 1
            if self._since_purge >= _PURGE_EVERY:
                self._since_purge = 0
                driver.execute(_PURGE, (now,))
        return fresh


_SEEN = "SELECT 1 FROM nonces WHERE access_key_id = ? AND nonce = ? AND expires_at >= ?"


def stored(driver: Driver, access_key_id: str, nonce: str, now: datetime) -> bool:
    """Whether the store holds the nonce for the key, unexpired at `now`."""
    return driver.row(_SEEN, (access_key_id, nonce, now)) is not None


# A batch: a nonce another process recorded in the same window (the store's row not yet expired) is
# left as it is; an expired row is taken over, as by the single upsert.
_RECORD = (
    "INSERT INTO nonces (access_key_id, nonce, expires_at) VALUES (?, ?, ?)"
    " ON CONFLICT (access_key_id, nonce) DO UPDATE SET expires_at = excluded.expires_at"
    " WHERE nonces.expires_at < ?"
)
MAX_PENDING = 50_000


class BatchedNonces:
    """Nonces checked in memory and in the store, recorded in the store in batches (group commit).

    `remember` refuses a nonce that this process took and has not written yet (memory) or that any
    process has written (one indexed read, no write). Accepted nonces wait in memory until the writer
    (services.audit.AuditSink, every 0.2 s, in the transaction of the audit batch) records them all in one
    statement. So: a replay to this process is refused at once; to another process sharing the store,
    once the batch is written (within the writer's interval); after a restart, always (close() writes
    what is pending), and after a crash (kill -9, power loss) of the last interval's nonces, not: a
    replay of those is bounded by the timestamp window (docs/robustness.md, "Nonces").

    The backlog is bounded: with `max_pending` nonces waiting (the store not taking writes), further
    calls are refused with ServiceUnavailable rather than held in memory without end."""

    def __init__(self, db: Database, *, max_pending: int = MAX_PENDING) -> None:
        self._db = db
        self._max = max_pending
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], datetime] = {}
        self._writing: dict[tuple[str, str], datetime] = {}
        # The last committed batch, kept one interval more: a call that read the store just before that
        # batch committed still finds its nonces here (the read and the memory check are not atomic).
        self._written: dict[tuple[str, str], datetime] = {}
        self._since_purge = 0

    def remember(self, access_key_id: str, nonce: str, now: datetime, ttl: int) -> bool:
        key = (access_key_id, nonce)
        with self._lock:
            if self._held(key, now):
                return False
            if len(self._pending) + len(self._writing) >= self._max:
                raise ServiceUnavailable()
        with self._db.driver() as driver:
            if stored(driver, access_key_id, nonce, now):
                return False
        return self._take(key, now, ttl)

    def remember_read(self, access_key_id: str, nonce: str, now: datetime, ttl: int, *, stored: bool) -> bool:
        """`remember`, the store's part already read by the caller in a statement of its own (`stored`:
        the store holds the nonce unexpired; store/accounts.py KeyRows.with_nonce reads it with the key)."""
        key = (access_key_id, nonce)
        with self._lock:
            if self._held(key, now):
                return False
            if len(self._pending) + len(self._writing) >= self._max:
                raise ServiceUnavailable()
            if stored:
                return False
            self._pending[key] = now + timedelta(seconds=ttl)
        return True

    def _held(self, key: tuple[str, str], now: datetime) -> bool:
        """Taken by this process and not yet known to be in the store, or in the batch written last and
        not expired (call with the lock held)."""
        if key in self._pending or key in self._writing:
            return True
        written = self._written.get(key)
        return written is not None and written >= now

    def _take(self, key: tuple[str, str], now: datetime, ttl: int) -> bool:
        with self._lock:
            if self._held(key, now):  # another thread's
                return False
            self._pending[key] = now + timedelta(seconds=ttl)
        return True

    @property
    def pending(self) -> int:
        return len(self._pending) + len(self._writing)

    def write_pending(self, driver: Driver, now: datetime) -> int:
        """Record every pending nonce in the caller's transaction (`done` once it commits, `failed` if
        it does not); the number recorded."""
        with self._lock:
            self._writing.update(self._pending)
            self._pending = {}
            rows = [(k, n, expires) for (k, n), expires in self._writing.items()]
        # In key order: two processes' batches that share a nonce (a replay across processes within the
        # window) then take its row lock in the same order, so PostgreSQL sees no deadlock.
        rows.sort()
        if rows:
            bind = driver.bind
            at = bind(now)
            driver.executemany(_RECORD, [(k, n, bind(expires), at) for k, n, expires in rows], bound=True)
            self._since_purge += len(rows)
            if self._since_purge >= _PURGE_EVERY:
                self._since_purge = 0
                driver.execute(_PURGE, (now,))
        return len(rows)

    def done(self) -> None:
        """The batch committed: the store answers for those nonces now."""
        with self._lock:
            self._written, self._writing = self._writing, {}

    def failed(self) -> None:
        """The batch did not commit: its nonces stay in memory (refused) for the next batch."""


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
