"""What the task event costs the engine's step: the fenced step UPDATE alone (as before issue 13) against
the UPDATE with its event (and, on PostgreSQL, its NOTIFY), in alternating batches on one connection.

Alternating batches in one process keep a loaded machine's noise out of the comparison; a whole-engine
run (bench.engine_steps) measures the same change with everything around it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from bench.common import pg_create, pg_drop, pg_reachable
from bench.engine_steps import DEFAULT_PG_ADMIN
from hpcplane.domain.tasks import TaskType
from hpcplane.store import engine as engine_store
from hpcplane.store import events, migrate
from hpcplane.store.db import Database, Driver
from hpcplane.store.engine import Lease
from hpcplane.store.tables import accounts
from hpcplane.store.tasks import NewTask, insert_task

START = datetime(2026, 1, 1, tzinfo=UTC)


def _lease(db: Database) -> Lease:
    with db.write() as conn:
        conn.execute(insert(accounts).values(id="1", name="bench", created_at=START))
        task = NewTask("T", "1", "c", TaskType.STOP_CLUSTER, 35, "{}", plan="[]", run_after=START)
        insert_task(conn, task, START)
        (lease,) = engine_store.claim(
            conn,
            owner="w",
            now=START,
            lease_until=START + timedelta(days=1),
            limit=1,
            postgres=db.is_postgres,
        )
    return lease


def _step_values(step: int) -> dict[str, Any]:
    now = START + timedelta(microseconds=step)
    return {
        "current_step": step % 35,
        "state": "{}",
        "errors": "[]",
        "updated_at": now,
        "lease_expires_at": now + timedelta(days=1),
        "run_after": now,
    }


def _batch(driver: Driver, lease: Lease, n: int, with_event: bool, offset: int) -> float:
    """Seconds per step over n steps."""
    started = time.perf_counter()
    for i in range(n):
        values = _step_values(offset + i)
        columns = tuple(sorted(values))
        params = [values[name] for name in columns]
        fence = [lease.seq, "w", lease.token]
        sql = engine_store._advance_sql(columns)
        if with_event:
            assert events.advance_with_event(driver, sql, columns, params, fence, "progress")
        else:
            assert driver.execute(sql, [*params, *fence]).rowcount == 1
    return (time.perf_counter() - started) / n


def measure(db: Database, batches: int, size: int) -> dict[str, float]:
    lease = _lease(db)
    plain: list[float] = []
    evented: list[float] = []
    with db.driver(write=True) as driver:
        for b in range(batches):
            plain.append(_batch(driver, lease, size, False, 2 * b * size))
            evented.append(_batch(driver, lease, size, True, (2 * b + 1) * size))
    before, after = statistics.median(plain), statistics.median(evented)
    return {
        "update_us": round(before * 1e6, 1),
        "with_event_us": round(after * 1e6, 1),
        "ratio": round(after / before, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.events_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=9)
    parser.add_argument("--size", type=int, default=300, help="steps per batch")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--pg-admin", default=DEFAULT_PG_ADMIN)
    args = parser.parse_args()
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as work:
                db = Database(f"sqlite:///{Path(work) / 'events.db'}")
                migrate.upgrade(db)
                print("sqlite  ", measure(db, args.batches, args.size))
                db.dispose()
        elif backend == "postgres":
            if (why := pg_reachable(args.pg_admin)) is not None:
                print("postgres skipped:", why)
                continue
            name = f"hpcplane_bench_events_{uuid.uuid4().hex[:8]}"
            url = pg_create(args.pg_admin, name)
            db = Database(url, engine_role=True)
            try:
                migrate.upgrade(db)
                print("postgres", measure(db, args.batches, args.size))
            finally:
                db.dispose()
                pg_drop(args.pg_admin, name)


if __name__ == "__main__":
    main()
