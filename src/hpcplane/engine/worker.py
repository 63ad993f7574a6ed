"""Workers: threads that claim and run tasks, a heartbeat, a PostgreSQL LISTEN wake-up, housekeeping."""

from __future__ import annotations

import gc
import threading
import time
from datetime import timedelta
from typing import Any

import psycopg
import structlog

from hpcplane.domain.errors import DbError
from hpcplane.engine.runner import Engine
from hpcplane.store import engine as store
from hpcplane.store import events as event_store
from hpcplane.store import ram as ram_store
from hpcplane.store import sessions as session_store

log = structlog.get_logger("hpcplane.worker")

_IDLE_MAX = 1.0  # seconds an idle thread sleeps at most on PostgreSQL, where NOTIFY wakes it sooner
_HOUSEKEEPING_EVERY = 60.0
# Due tasks one thread claims at once and runs side by side, their steps with no effect recorded together
# (Engine.run_many): one claim and one statement a round instead of one of each per task and step.
CLAIM_BATCH = 16
_GC_YOUNG = 10_000  # allocations between two young collections (CPython's default: 700)


class Worker:
    """`concurrency` threads running tasks from one engine, until stop()."""

    def __init__(
        self,
        engine: Engine,
        *,
        concurrency: int,
        poll_interval: float,
        listen_dsn: str | None = None,
        retention: float | None = None,
        listen_args: dict[str, Any] | None = None,
        batch: int = CLAIM_BATCH,
    ) -> None:
        self.engine = engine
        self.batch = batch
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.listen_dsn = listen_dsn
        self.listen_args = listen_args or {}
        self.retention = retention
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        # What start-up built (modules, settings, pools) lives as long as the process: frozen, the
        # collector no longer walks it on every full collection; and the steps' short-lived objects are
        # collected in larger, rarer passes.
        gc.collect()
        gc.freeze()
        gc.set_threshold(max(gc.get_threshold()[0], _GC_YOUNG), *gc.get_threshold()[1:])
        targets = [self._loop] * self.concurrency + [self._heartbeat, self._housekeeping]
        if self.listen_dsn:
            targets.append(self._listen)
        for index, target in enumerate(targets):
            thread = threading.Thread(target=target, name=f"hpcplane-worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("worker started", owner=self.engine.owner, threads=self.concurrency)

    def stop(self, timeout: float = 10.0) -> None:
        """Let running steps finish (each is one short transaction), then return."""
        self._stop.set()
        self.wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        log.info("worker stopped", owner=self.engine.owner)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                leases = self.engine.claim(self.batch)
            except DbError as error:
                log.warning("cannot claim tasks", cause=repr(error.__cause__))
                self._stop.wait(self.poll_interval)
                continue
            if not leases:
                self._idle()
                continue
            self.engine.run_many(leases)

    def _idle(self) -> None:
        """Sleep until the next step is due, a new task is announced, or the poll interval passes."""
        limit = _IDLE_MAX if self.listen_dsn else self.poll_interval
        try:
            with self.engine.db.read() as conn:
                due = store.next_due(conn)
        except DbError:
            due = None
        wait = limit if due is None else (due - self.engine.clock.now()).total_seconds()
        if self.wake.wait(min(max(wait, 0.0), limit)):
            self.wake.clear()

    def _heartbeat(self) -> None:
        interval = self.engine.lease.total_seconds() / 3
        while not self._stop.wait(interval):
            try:
                self.engine.heartbeat()
            except DbError as error:
                log.warning("heartbeat failed", cause=repr(error.__cause__))

    def _housekeeping(self) -> None:
        """Every minute: purge task history past the retention period, and STS credentials expired for
        a day (until then a call with them is told its token expired, not that its key is unknown)."""
        while not self._stop.wait(_HOUSEKEEPING_EVERY):
            try:
                self.housekeep()
            except DbError as error:
                log.warning("housekeeping failed", cause=repr(error.__cause__))

    def housekeep(self) -> tuple[int, int]:
        """One pass of housekeeping; returns (tasks purged, STS credentials purged)."""
        now = self.engine.clock.now()
        history_before = now - timedelta(seconds=self.retention) if self.retention else None
        with self.engine.db.write() as conn:
            purged = store.purge_history(conn, history_before) if history_before else 0
            if history_before:
                event_store.purge(conn, history_before)  # task events are kept as long as tasks
            session_store.purge_expired(conn, now)
            expired = ram_store.purge_sts(conn, now - timedelta(days=1))
        if purged or expired:
            log.info("housekeeping", tasks_purged=purged, sts_credentials_purged=expired)
        return purged, expired

    def _listen(self) -> None:
        """PostgreSQL LISTEN: a NOTIFY from any process that created a task wakes an idle thread."""
        assert self.listen_dsn is not None
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self.listen_dsn, autocommit=True, connect_timeout=5, **self.listen_args
                ) as conn:
                    conn.execute(f"LISTEN {store.NOTIFY_CHANNEL}")
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.wake.set()
            except psycopg.Error as error:
                log.warning("LISTEN connection lost; polling meanwhile", cause=repr(error))
                self._stop.wait(1.0)
