"""The batched writer (services/audit.py): nonces checked in memory and in the store and recorded with the
audit records in one transaction; replays refused in the process, across processes once written, and
after a restart; the backlog bounded (ServiceUnavailable), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from hpcplane.domain.errors import ServiceUnavailable
from hpcplane.services import audit
from hpcplane.services.audit import AuditSink
from hpcplane.store.audit import AuditRecord
from hpcplane.store.db import Database
from hpcplane.store.nonces import BatchedNonces
from hpcplane.store.tables import audit_log
from hpcplane.store.tables import nonces as nonces_table
from tests.integration.conftest import START, FakeClock

HOUR = 3600.0  # a writer interval no test waits for: every batch below is flushed by the test itself


def stored_nonces(db: Database) -> set[tuple[str, str]]:
    with db.read() as conn:
        return {(r.access_key_id, r.nonce) for r in conn.execute(select(nonces_table))}


def audit_rows(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(audit_log)).scalar_one())


def record(request_id: str) -> AuditRecord:
    return AuditRecord(at=START, request_id=request_id, source_ip="127.0.0.1", decision="Allow")


def other_process(db: Database) -> Database:
    """A second Database on the same store, as another API process has."""
    return Database(db.url.render_as_string(hide_password=False), timeout=5.0, pool_size=2)


def test_replay_refused_in_process_before_the_batch_is_written(db: Database) -> None:
    nonces = BatchedNonces(db)
    sink = AuditSink(db, nonces=nonces, clock=FakeClock(), interval=HOUR)
    try:
        assert nonces.remember("ak", "n1", START, 60)
        assert not nonces.remember("ak", "n1", START, 60)
        assert nonces.remember("ak2", "n1", START, 60)  # another key's nonce is another nonce
        assert stored_nonces(db) == set()  # nothing written yet: the refusal came from memory
        sink.flush()
        assert stored_nonces(db) == {("ak", "n1"), ("ak2", "n1")}
        assert not nonces.remember("ak", "n1", START, 60)  # from the store now
        assert nonces.pending == 0
    finally:
        sink.close()


def test_a_flush_past_one_transaction_writes_every_record(db: Database) -> None:
    """More records than one transaction takes (audit._BATCH): every chunk is written, nonces with them."""
    nonces = BatchedNonces(db)
    sink = AuditSink(db, nonces=nonces, clock=FakeClock(), interval=HOUR)
    try:
        count = 2 * audit._BATCH + 7
        for n in range(count):
            sink.record(record(f"r{n}"))
        assert nonces.remember("ak", "chunked", START, 60)
        sink.flush()
        assert audit_rows(db) == count
        assert sink.backlog == 0
        assert stored_nonces(db) == {("ak", "chunked")}
    finally:
        sink.close()


def test_replay_refused_by_another_process_once_written(db: Database) -> None:
    nonces = BatchedNonces(db)
    sink = AuditSink(db, nonces=nonces, clock=FakeClock(), interval=HOUR)
    second = other_process(db)
    try:
        assert nonces.remember("ak", "shared", START, 60)
        sink.flush()
        assert not BatchedNonces(second).remember("ak", "shared", START + timedelta(seconds=1), 60)
    finally:
        sink.close()
        second.dispose()


def test_replay_refused_after_a_restart(db: Database) -> None:
    """close() writes what is pending: the next process refuses the nonce; after its lifetime, not."""
    nonces = BatchedNonces(db)
    sink = AuditSink(db, nonces=nonces, clock=FakeClock(), interval=HOUR)
    assert nonces.remember("ak", "before-restart", START, 60)
    sink.close()
    restarted = other_process(db)
    try:
        again = BatchedNonces(restarted)
        assert not again.remember("ak", "before-restart", START + timedelta(seconds=30), 60)
        assert again.remember("ak", "before-restart", START + timedelta(seconds=61), 60)
    finally:
        restarted.dispose()


def test_expired_nonce_is_taken_over_by_the_batch(db: Database) -> None:
    clock = FakeClock()
    nonces = BatchedNonces(db)
    sink = AuditSink(db, nonces=nonces, clock=clock, interval=HOUR)
    try:
        assert nonces.remember("ak", "n", START, 60)
        sink.flush()
        later = START + timedelta(seconds=61)
        clock.current = later
        assert nonces.remember("ak", "n", later, 60)
        sink.flush()
        assert not nonces.remember("ak", "n", later + timedelta(seconds=59), 60)  # renewed in the store
    finally:
        sink.close()


def test_nonces_and_audit_records_in_one_batch(db: Database) -> None:
    nonces = BatchedNonces(db)
    sink = AuditSink(db, nonces=nonces, clock=FakeClock(), interval=HOUR)
    try:
        for i in range(3):
            assert nonces.remember("ak", f"n{i}", START, 60)
            sink.record(record(f"r{i}"))
        assert (audit_rows(db), len(stored_nonces(db)), sink.backlog) == (0, 0, 3)
        sink.flush()
        assert (audit_rows(db), len(stored_nonces(db)), sink.backlog) == (3, 3, 0)
    finally:
        sink.close()


def test_nonce_backlog_is_bounded(db: Database) -> None:
    """With max_pending nonces waiting for the writer, the next call is refused, not held in memory."""
    nonces = BatchedNonces(db, max_pending=2)
    sink = AuditSink(db, nonces=nonces, clock=FakeClock(), interval=HOUR)
    try:
        assert nonces.remember("ak", "a", START, 60)
        assert nonces.remember("ak", "b", START, 60)
        with pytest.raises(ServiceUnavailable):
            nonces.remember("ak", "c", START, 60)
        sink.flush()
        assert nonces.remember("ak", "c", START, 60)
    finally:
        sink.close()


def test_audit_backlog_is_bounded(db: Database) -> None:
    """Past max_backlog the sink stops accepting (the gateway sheds calls); the shed calls' own records
    still fit in the headroom; the backlog drains on the next batch."""
    sink = AuditSink(db, clock=FakeClock(), max_backlog=3, interval=HOUR)
    try:
        for i in range(3):
            assert sink.accepting
            sink.record(record(f"r{i}"))
        assert not sink.accepting
        sink.record(record("refused"))
        assert (sink.backlog, sink.dropped) == (4, 0)
        sink.flush()
        assert sink.accepting
        assert audit_rows(db) == 4
    finally:
        sink.close()


def test_a_batch_just_written_is_refused_from_memory_whatever_the_read_said(db: Database) -> None:
    """remember_read with the store read before the batch committed (stored=False): the last batch's
    nonces are still held in memory, so the replay is refused; once expired, taken again."""
    nonces = BatchedNonces(db)
    sink = AuditSink(db, nonces=nonces, clock=FakeClock(), interval=HOUR)
    try:
        assert nonces.remember_read("ak", "n", START, 60, stored=False)
        assert not nonces.remember_read("ak", "n", START, 60, stored=False)  # pending
        sink.flush()
        assert stored_nonces(db) == {("ak", "n")}
        assert not nonces.remember_read("ak", "n", START, 60, stored=False)  # the batch written last
        assert not nonces.remember_read("ak", "other", START, 60, stored=True)  # another process's
        later = START + timedelta(seconds=61)
        assert nonces.remember_read("ak", "n", later, 60, stored=False)
    finally:
        sink.close()
