"""The batched writer: every call's audit record, and the nonces accepted since the last batch, written
by one background thread every `_INTERVAL` seconds (in transactions of `_BATCH` records, the nonces in
the first), and flushed on close.

One writer for both keeps SQLite's single write lock to a few short transactions per interval instead
of one per call (the nonce) plus one per interval (the audit batch). The backlog is bounded: once
`max_backlog` records wait (the store not taking writes), `accepting` is False and the gateway refuses
new calls with ServiceUnavailable (HTTP 503) before doing any work, so memory stays bounded; the
refusals are still audited (they have `_HEADROOM` of their own), and only past that a record is dropped
and logged (docs/robustness.md, "Load shedding").
"""

from __future__ import annotations

import threading
from collections import deque

import structlog

from hpcplane.clock import Clock, SystemClock
from hpcplane.domain.errors import DbError
from hpcplane.store import audit as store
from hpcplane.store.audit import AuditRecord
from hpcplane.store.db import Database, Driver
from hpcplane.store.nonces import BatchedNonces

log = structlog.get_logger("hpcplane.audit")

# Records per transaction: a flush of more writes several. Turning a record into its row is Python that
# holds the GIL (about 25 us a record): a batch of 500 held it for up to the interpreter's 5 ms switch
# interval at a time, and the calls waiting for it made the p99 (docs/benchmarks.md, session 5); each
# commit between chunks of 50 lets them in.
_BATCH = 50
_INTERVAL = 0.2
MAX_BACKLOG = 100_000
_HEADROOM = 10_000


class AuditSink:
    """Takes records without blocking the request; writes them (and the pending nonces) within about
    `_INTERVAL` seconds."""

    def __init__(
        self,
        db: Database,
        *,
        nonces: BatchedNonces | None = None,
        clock: Clock | None = None,
        max_backlog: int = MAX_BACKLOG,
        interval: float = _INTERVAL,
    ) -> None:
        self._db = db
        self._nonces = nonces
        self._clock = clock or SystemClock()
        self._max = max_backlog
        self._interval = interval
        self._queue: deque[AuditRecord] = deque()
        self._flushing = threading.Lock()
        self._stop = threading.Event()
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="hpcplane-audit", daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        return len(self._queue)

    @property
    def accepting(self) -> bool:
        """False while the backlog is full: new calls are to be refused (ServiceUnavailable)."""
        return len(self._queue) < self._max

    def record(self, record: AuditRecord) -> None:
        if len(self._queue) >= self._max + _HEADROOM:
            self.dropped += 1
            log.error("audit backlog full; record dropped", request_id=record.request_id)
            return
        self._queue.append(record)  # deque.append is atomic: no lock on the request's path

    def flush(self) -> None:
        """Write everything queued so far, and the pending nonces (retrying once the store answers)."""
        with self._flushing:
            while True:
                batch: list[AuditRecord] = []
                while len(batch) < _BATCH:
                    try:
                        batch.append(self._queue.popleft())
                    except IndexError:
                        break
                self._write(batch)
                if len(batch) < _BATCH:
                    return

    def _write(self, batch: list[AuditRecord]) -> None:
        nonces = self._nonces
        if not batch and (nonces is None or nonces.pending == 0):
            return
        try:
            with self._db.write() as conn:
                if nonces is not None:
                    nonces.write_pending(Driver.within(conn), self._clock.now())
                store.insert_records(conn, batch)
        except DbError as error:
            log.warning("audit write failed; will retry", records=len(batch), cause=repr(error.__cause__))
            if nonces is not None:
                nonces.failed()
            self._queue.extendleft(reversed(batch))
            raise
        if nonces is not None:
            nonces.done()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except DbError:
                self._stop.wait(1.0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        try:
            self.flush()
        except DbError:
            log.error("audit records lost at shutdown: the store is unreachable", records=len(self._queue))
