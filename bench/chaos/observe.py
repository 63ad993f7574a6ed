"""What the suite reads from the store (directly, not through the paths it breaks) to judge a run."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime

import psycopg
from sqlalchemy import func, select

from hpcplane.store.db import Database
from hpcplane.store.tables import sim_calls, tasks


class Observer:
    """Reads tasks and provider calls; on PostgreSQL also samples pg_stat_activity in the background."""

    def __init__(self, database_url: str, pg_dsn: str | None, database: str | None) -> None:
        self.db = Database(database_url, timeout=10.0, pool_size=2)
        self.pg_dsn = pg_dsn
        self.database = database
        self.peak: dict[str, int] = defaultdict(int)  # most connections seen per application_name
        self.idle_in_transaction: dict[str, float] = defaultdict(float)  # longest seen, seconds
        self._count_from = 0.0  # time.monotonic() from which connection samples count
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    def start(self) -> None:
        if self.pg_dsn:
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()

    def count_from(self, moment: float) -> None:
        """Count connections only from `moment` (float("inf"): not until told again)."""
        self._count_from = moment

    def close(self) -> None:
        self._stop.set()
        if self._sampler:
            self._sampler.join(5)
        self.db.dispose()

    def _sample(self) -> None:
        assert self.pg_dsn
        while not self._stop.is_set():
            last: dict[str, int] = {}
            try:
                with psycopg.connect(self.pg_dsn, autocommit=True, connect_timeout=3) as conn:
                    while not self._stop.wait(0.25):
                        rows = conn.execute(
                            "SELECT application_name, state, extract(epoch FROM now() - state_change)"
                            " FROM pg_stat_activity"
                            " WHERE datname = %s AND application_name LIKE 'hpcplane %%'",
                            (self.database,),
                        ).fetchall()
                        counts: dict[str, int] = defaultdict(int)
                        for name, state, age in rows:
                            counts[name] += 1
                            if state == "idle in transaction" and age is not None:
                                self.idle_in_transaction[name] = max(
                                    self.idle_in_transaction[name], float(age)
                                )
                        counted, last = last, counts
                        if time.monotonic() < self._count_from:
                            continue
                        # Seen in two samples in a row: a session closing as its successor opens (a
                        # reconnect) is one connection, not two.
                        for name, count in counts.items():
                            self.peak[name] = max(self.peak[name], min(count, counted.get(name, 0)))
            except psycopg.Error:
                self._stop.wait(0.5)

    def held_by(self, pid: int) -> dict[str, int]:
        """Unfinished tasks whose lease a process holds (its owner name carries its pid): their tokens."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(tasks.c.task_id, tasks.c.lease_token).where(
                    tasks.c.finished_at.is_(None), tasks.c.lease_owner.like(f"%:{pid}:%")
                )
            ).all()
        return {row.task_id: row.lease_token for row in rows}

    def wait_taken_over(self, held: dict[str, int], since: float, limit: float) -> list[float]:
        """Seconds from `since` until each task was claimed again (its lease token moved on) or ended;
        tasks not taken over in `limit` seconds are left out (the run's `stuck` count catches them)."""
        waiting = dict(held)
        taken: list[float] = []
        deadline = since + limit
        while waiting and time.monotonic() < deadline:
            with self.db.read() as conn:
                rows = conn.execute(
                    select(tasks.c.task_id, tasks.c.lease_token, tasks.c.finished_at).where(
                        tasks.c.task_id.in_(list(waiting))
                    )
                ).all()
            now = time.monotonic()
            for row in rows:
                if row.finished_at is not None or row.lease_token > waiting[row.task_id]:
                    del waiting[row.task_id]
                    taken.append(now - since)
            time.sleep(0.05)
        return taken

    def wait_first_step(self, moment: datetime, since: float, limit: float) -> float | None:
        """Seconds from `since` until some worker recorded a step after `moment` (None: not in `limit`).

        A task created since has updated_at too, but no step yet (current_step 0): it does not count."""
        deadline = since + limit
        while time.monotonic() < deadline:
            with self.db.read() as conn:
                last = conn.execute(
                    select(func.max(tasks.c.updated_at)).where(tasks.c.current_step > 0)
                ).scalar()
            if last is not None and last > moment:
                return time.monotonic() - since
            time.sleep(0.05)
        return None

    def unfinished(self, task_ids: Iterable[str]) -> set[str]:
        ids = set(task_ids)
        with self.db.read() as conn:
            done = set(
                conn.execute(
                    select(tasks.c.task_id).where(tasks.c.task_id.in_(ids), tasks.c.finished_at.is_not(None))
                ).scalars()
            )
        return ids - done

    def missing(self, task_ids: Iterable[str]) -> set[str]:
        ids = set(task_ids)
        with self.db.read() as conn:
            found = set(conn.execute(select(tasks.c.task_id).where(tasks.c.task_id.in_(ids))).scalars())
        return ids - found

    def applied_twice(self) -> int:
        """Provider tokens recorded more than once: a step's effect applied twice."""
        with self.db.read() as conn:
            counts = conn.execute(
                select(sim_calls.c.token, func.count()).group_by(sim_calls.c.token).having(func.count() > 1)
            ).all()
        return len(counts)

    def statuses(self) -> dict[str, int]:
        with self.db.read() as conn:
            return {
                s: n for s, n in conn.execute(select(tasks.c.status, func.count()).group_by(tasks.c.status))
            }


def utcnow() -> datetime:
    return datetime.now(UTC)
