"""The audit sink: calls are recorded in batches by a background thread, and flushed on close."""

from __future__ import annotations

import queue
import threading

import structlog

from hpcplane.domain.errors import DbError
from hpcplane.store import audit as store
from hpcplane.store.audit import AuditRecord
from hpcplane.store.db import Database

log = structlog.get_logger("hpcplane.audit")

_BATCH = 500
_INTERVAL = 0.2


class AuditSink:
    """Takes records without blocking the request; writes them within about `_INTERVAL` seconds."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._queue: queue.Queue[AuditRecord] = queue.Queue(maxsize=100_000)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hpcplane-audit", daemon=True)
        self._thread.start()

    def record(self, record: AuditRecord) -> None:
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            log.error("audit queue full; record dropped", request_id=record.request_id)

    def flush(self) -> None:
        """Write everything queued so far (retrying once the store answers again)."""
        batch: list[AuditRecord] = []
        while True:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
            if len(batch) >= _BATCH:
                self._write(batch)
                batch = []
        self._write(batch)

    def _write(self, batch: list[AuditRecord]) -> None:
        if not batch:
            return
        try:
            with self._db.write() as conn:
                store.insert_records(conn, batch)
        except DbError as error:
            log.warning("audit write failed; will retry", records=len(batch), cause=repr(error.__cause__))
            for record in batch:
                self.record(record)
            raise

    def _run(self) -> None:
        while not self._stop.wait(_INTERVAL):
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
            log.error("audit records lost at shutdown: the store is unreachable", records=self._queue.qsize())
