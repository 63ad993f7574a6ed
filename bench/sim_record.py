"""What the simulated cloud's call record costs on PostgreSQL (store/simcalls.py, `record_once`): the
transaction it was before (BEGIN, the advisory lock, the INSERT, COMMIT: four round trips) against the
one simple query it is now (`Driver.script`: one round trip, one implicit transaction), in alternating
repeats on one connection of a fresh database.

Each call records a new token, as an engine's provider step does once per task. Printed per call: wall
time, the client's CPU (this thread) and the server backend's CPU (/proc), and the ratios.

    python -m bench.sim_record [--calls N] [--pg-admin URL]
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from bench.common import pg_create, pg_drop, pg_reachable
from bench.cpu import process_cpu
from bench.engine_steps import DEFAULT_PG_ADMIN
from hpcplane.store import migrate, simcalls
from hpcplane.store.db import Database, Driver

Record = Callable[[Driver, str], bool]
_AT = datetime(2026, 12, 4, tzinfo=UTC)


def transaction(driver: Driver, token: str) -> bool:
    """The record before: its statements in a transaction of their own, each a round trip."""
    with driver.atomic():
        driver.execute(simcalls._LOCK, [token])
        cursor = driver.execute(simcalls._RECORD, [token, "StopInstances", json.dumps(["i-1"]), _AT, token])
    return cursor.rowcount == 1


def script(driver: Driver, token: str) -> bool:
    """The record now."""
    return simcalls.record_once(driver, token, "StopInstances", ["i-1"], _AT)


def measure(driver: Driver, record: Record, calls: int) -> tuple[float, float, float]:
    """Wall, client CPU and backend CPU, in us per call."""
    row = driver.execute("SELECT pg_backend_pid()").fetchone()
    backend = int(row[0])
    prefix = uuid.uuid4().hex[:12]
    server, cpu, wall = process_cpu(backend), time.thread_time(), time.perf_counter()
    for n in range(calls):
        if not record(driver, f"{prefix}:{n}"):
            raise AssertionError("a new token was not recorded")
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    server = process_cpu(backend) - server
    return wall / calls * 1e6, cpu / calls * 1e6, server / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sim_record", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls per repeat (default 3000)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating repeats (default 3)")
    parser.add_argument("--pg-admin", default=DEFAULT_PG_ADMIN, help="PostgreSQL admin URL")
    args = parser.parse_args()
    why = pg_reachable(args.pg_admin)
    if why is not None:
        print(f"postgres: {why}, skipped")
        return
    name = f"hpcplane_bench_simrecord_{uuid.uuid4().hex[:8]}"
    db = Database(pg_create(args.pg_admin, name), timeout=5.0, pool_size=1)
    try:
        migrate.upgrade(db)
        best: dict[str, tuple[float, float, float]] = {}
        with db.driver(write=True) as driver:
            for _ in range(args.repeats):  # alternating, so a drift of the machine touches both alike
                for label, record in (("transaction", transaction), ("script", script)):
                    figures = measure(driver, record, args.calls)
                    print(
                        f"  {label:11} wall {figures[0]:6.0f} us, client CPU {figures[1]:5.0f} us,"
                        f" backend CPU {figures[2]:5.0f} us a call"
                    )
                    kept = best.get(label, figures)
                    best[label] = (
                        min(kept[0], figures[0]),
                        min(kept[1], figures[1]),
                        min(kept[2], figures[2]),
                    )
        before, after = best["transaction"], best["script"]
        print("best of each, us a call: wall / client CPU / backend CPU")
        print(f"  transaction {before[0]:.0f} / {before[1]:.0f} / {before[2]:.0f}")
        print(f"  script      {after[0]:.0f} / {after[1]:.0f} / {after[2]:.0f}")
        print(
            f"  ratios {after[0] / before[0]:.2f} / {after[1] / before[1]:.2f} / {after[2] / before[2]:.2f}"
        )
    finally:
        db.dispose()
        pg_drop(args.pg_admin, name)


if __name__ == "__main__":
    main()
