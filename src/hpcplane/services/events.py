"""The event feed: task events read from the store in order, and a bell that rings when there are new.

On PostgreSQL one thread per process LISTENs on the events channel (the engine's step statement and
task creation NOTIFY it) and rings the bell; on SQLite the readers poll. Either way the events come from
the database, so a reader resumes from any cursor, in any process, across restarts.
"""

from __future__ import annotations

import asyncio
import threading

import psycopg
import structlog

from hpcplane.store import events as store
from hpcplane.store.db import Database
from hpcplane.store.events import Cursor, TaskEvent

log = structlog.get_logger("hpcplane.events")


class Bell:
    """Wakes the asyncio waiters of any loop, rung from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def ring(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    async def wait(self, timeout: float) -> None:
        """Until rung or `timeout` seconds pass."""
        event = asyncio.Event()
        entry = (asyncio.get_running_loop(), event)
        with self._lock:
            self._waiters.add(entry)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiters.discard(entry)


class EventFeed:
    """Reads events after a cursor; `wait` returns when new ones may be there."""

    def __init__(self, db: Database, *, poll_interval: float, listen_dsn: str | None) -> None:
        self._db = db
        self.poll_interval = poll_interval
        self._listen_dsn = listen_dsn
        self.bell = Bell()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._listen_dsn and self._thread is None:
            self._thread = threading.Thread(target=self._listen, name="hpcplane-events-listen", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def read(
        self, after: Cursor, *, cluster_id: str | None = None, account_id: str | None = None, limit: int = 200
    ) -> list[TaskEvent]:
        with self._db.driver() as driver:
            return store.read_after(driver, after, cluster_id=cluster_id, account_id=account_id, limit=limit)

    def now(self) -> Cursor:
        """The cursor of a reader that wants only events from now on."""
        with self._db.driver() as driver:
            return store.last_cursor(driver)

    async def wait(self) -> None:
        """Until the bell rings (PostgreSQL) or the poll interval passes (both: a NOTIFY may be lost)."""
        await self.bell.wait(1.0 if self._thread is not None else self.poll_interval)

    def _listen(self) -> None:
        assert self._listen_dsn is not None
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._listen_dsn, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {store.EVENT_CHANNEL}")
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.bell.ring()
            except psycopg.Error as error:
                log.warning("events LISTEN connection lost; polling meanwhile", cause=repr(error))
                self._stop.wait(1.0)
