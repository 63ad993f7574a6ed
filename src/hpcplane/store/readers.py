"""Kept PostgreSQL connections for the bare reads of every request (`Database.driver()`).

A read through the pool pays more than the indexed statement it runs: SQLAlchemy's checkout and checkin
(events, the reset's ROLLBACK) and psycopg switching autocommit on and back off, each a trip through
psycopg's wait loop. A *reader* is a pooled connection kept checked out, in autocommit, between reads: a
call takes an idle one from a stack (the most recently used first) and gives it back.

The process's connection budget (store/deadline.py) still holds: an idle reader keeps the budget slot it
was opened with, a call on it uses that slot, and a call that finds the budget spent first closes idle
readers (`Readers.evict`, Deadlines' `starved` hook) rather than wait; while a call waits for a slot, a
reader given back goes to the pool with its own (`Deadlines.waiting`). There are at most `limit`
readers; a read that finds none idle and the limit reached waits for the next one given back, unless
this thread already holds one (a nested read then goes through the pool: it would wait for itself). A
reader idle for `idle_seconds` goes back to the pool; one idle for more than `ping_seconds` is pinged
first (as the pool pings its own), so a restarted database costs no failed call. A statement on a reader
runs under the call's deadline like any other, and a reader whose connection failed is thrown away.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import psycopg
from sqlalchemy import Engine, exc

from hpcplane.domain.errors import DbError
from hpcplane.store.deadline import Call, Deadlines


class Reader:
    """One kept connection: the pool's record of it (to give it back) and the driver connection."""

    __slots__ = ("connection", "driver", "pooled", "used_at")

    def __init__(self, pooled: Any, driver: Any, used_at: float) -> None:
        self.pooled = pooled
        self.connection: Any = pooled.driver_connection
        self.driver = driver  # the store's Driver on it (store/db.py)
        self.used_at = used_at

    def alive(self) -> bool:
        try:
            self.connection.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True


class Readers:
    """The kept readers of one Database's pool (PostgreSQL only)."""

    def __init__(
        self,
        engine: Engine,
        deadlines: Deadlines,
        limit: int,
        driver: Callable[[Any], Any],
        *,
        idle_seconds: float = 10.0,
        ping_seconds: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self.deadlines = deadlines
        self._driver = driver
        self.limit = limit
        self._idle_seconds = idle_seconds
        self._ping_seconds = ping_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)  # a reader given back, or one fewer open
        self._idle: list[Reader] = []  # the most recently used last
        self._holding = threading.local()  # how many readers this thread holds now (nested calls)
        self.count = 0  # readers open, idle or in use
        deadlines.starved = self.evict

    def use(self, deadline: float | None) -> Use | None:
        """A reader for one call (with-block), or None: then the caller goes through the pool."""
        reader = self._take()
        if reader is None:
            reader = self._open(deadline)
            if reader is None and self.count >= self.limit and not self.held():
                # Every reader allowed is in use: the next given back (through the pool, this call
                # would wait for a slot of the budget, and take it from a reader closed for it).
                reader = self._wait(deadline)
                if reader is None:
                    reader = self._open(deadline)
            if reader is None:
                return None
        elif self._monotonic() - reader.used_at > self._ping_seconds and not self._alive(reader, deadline):
            reader = self._open(deadline)
            if reader is None:
                return None
        return Use(self, reader, deadline)

    def _alive(self, reader: Reader, deadline: float | None) -> bool:
        """Ping a reader idle for over `ping_seconds`, under the call's deadline like any statement (the
        watchdog cuts it if the path froze); a dead one is thrown away. A ping cut at its deadline means
        the store does not answer: DbError then, rather than a new connection's wait on top."""
        with self.deadlines.call(deadline, slot=False) as call:
            self.deadlines.attach(reader.connection)
            alive = reader.alive()
        if not alive:
            self.discard(reader)
            if call.fired:
                raise DbError() from TimeoutError("a kept reader's ping passed the call's deadline")
        return alive

    def _take(self) -> Reader | None:
        now = self._monotonic()
        stale: list[Reader] = []
        with self._lock:
            while self._idle and now - self._idle[0].used_at > self._idle_seconds:
                stale.append(self._idle.pop(0))
            reader = self._idle.pop() if self._idle else None
        for old in stale:
            self._close(old)
        return reader

    def held(self) -> int:
        """Readers this thread holds: a nested read never waits for one (it would wait for itself)."""
        count: int = getattr(self._holding, "count", 0)
        return count

    def hold(self, change: int) -> None:
        self._holding.count = self.held() + change

    def _wait(self, deadline: float | None) -> Reader | None:
        """The next reader given back; None if one closed meanwhile (a new one may be opened)."""
        until = time.monotonic() + self.deadlines.seconds
        if deadline is not None:
            until = min(until, deadline)
        with self._ready:
            while not self._idle:
                if self.count < self.limit:
                    return None
                left = until - time.monotonic()
                if left <= 0:
                    raise DbError() from TimeoutError(f"all {self.limit} readers of this process in use")
                self._ready.wait(left)
            return self._idle.pop()

    def _open(self, deadline: float | None) -> Reader | None:
        with self._lock:
            # No new reader while another call waits for a slot: the slot freed is that call's.
            if self.count >= self.limit or self.deadlines.waiting or not self.deadlines.try_hold():
                return None
            self.count += 1
        try:
            with self.deadlines.call(deadline, slot=False):
                pooled = self._engine.raw_connection()
        except BaseException as error:
            with self._ready:
                self.count -= 1
                self._ready.notify()
            self.deadlines.release_held()
            if isinstance(error, exc.SQLAlchemyError | psycopg.Error):
                raise DbError() from error
            raise
        connection: Any = pooled.driver_connection
        try:
            connection.autocommit = True
        except BaseException:
            pooled.invalidate()
            self._release(pooled)
            raise DbError() from None
        return Reader(pooled, self._driver(connection), self._monotonic())

    def give_back(self, reader: Reader) -> None:
        """Idle again; or, when another call waits for a slot of the budget, back to the pool with its
        slot (kept idle, it would hold the slot the waiting call needs)."""
        if self.deadlines.waiting:
            self._close(reader)
            return
        reader.used_at = self._monotonic()
        with self._ready:
            self._idle.append(reader)
            self._ready.notify()

    def discard(self, reader: Reader) -> None:
        """A reader whose connection failed: the pool replaces the connection, the slot is freed."""
        reader.pooled.invalidate()
        self._release(reader.pooled)

    def _close(self, reader: Reader) -> None:
        """Back to the pool, out of autocommit, as the pool's other connections are."""
        try:
            if not reader.connection.closed:
                reader.connection.autocommit = False
        except psycopg.Error:
            reader.pooled.invalidate()
        self._release(reader.pooled)

    def _release(self, pooled: Any) -> None:
        try:
            pooled.close()
        finally:
            with self._ready:
                self.count -= 1
                self._ready.notify()
            self.deadlines.release_held()

    def evict(self) -> bool:
        """Close the least recently used idle reader (its slot freed); False if none was idle."""
        with self._lock:
            reader = self._idle.pop(0) if self._idle else None
        if reader is None:
            return False
        self._close(reader)
        return True

    def close(self) -> None:
        while self.evict():
            pass


# Failures of the connection itself: the reader is thrown away (others leave it usable, in autocommit).
_BROKEN = (psycopg.OperationalError, psycopg.InterfaceError)


class Use:
    """One call on a reader: `with` gives its Driver, under the call's deadline; a store failure inside
    throws the reader away and becomes DbError."""

    __slots__ = ("_call", "_deadline", "_entered", "_reader", "_readers")

    def __init__(self, readers: Readers, reader: Reader, deadline: float | None) -> None:
        self._readers = readers
        self._reader = reader
        self._deadline = deadline
        self._call: Any = None
        self._entered: Call | None = None

    def __enter__(self) -> Any:
        deadlines = self._readers.deadlines
        self._call = deadlines.call(self._deadline, slot=False)
        self._entered = self._call.__enter__()
        deadlines.attach(self._reader.connection)
        self._readers.hold(1)
        return self._reader.driver

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        fired = self._entered is not None and self._entered.fired
        self._readers.hold(-1)
        self._call.__exit__(kind, error, tb)
        reader = self._reader
        if error is None and not fired:
            self._readers.give_back(reader)
            return
        if isinstance(error, _BROKEN) or fired or reader.connection.broken:
            self._readers.discard(reader)
            if isinstance(error, psycopg.Error):
                raise DbError() from error
            return
        # An error of the query itself (or of the caller) leaves the connection as it was: autocommit,
        # idle. A statement that failed inside Driver.atomic() was rolled back by psycopg.
        if reader.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            self._readers.give_back(reader)
        else:
            self._readers.discard(reader)
