"""A step between its provider call and its record, and the write transaction a round's steps share.

A worker thread runs its claimed tasks in rounds, one step of each a round (Engine.run_many): first every
step's provider call (engine/acts.py, no transaction open), then their effects (engine/steps.py) and
their fenced UPDATEs in one write transaction, `Writes` (pipelined on PostgreSQL when SessionLimits
allows it, store/db.py Driver.pipeline): the UPDATEs of up to a claim's worth of steps in one
statement for each set of columns (store/engine.py advance_many), and the transaction commits only if
every step with effects still held its lease.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from types import TracebackType

import structlog
from sqlalchemy import Connection

from hpcplane import metrics
from hpcplane.engine import acts, steps
from hpcplane.store import cluster_logs
from hpcplane.store import engine as store
from hpcplane.store.db import Database, Driver
from hpcplane.store.engine import Lease

log = structlog.get_logger("hpcplane.engine")


@dataclass
class Step:
    """One step of a task whose provider call was made: what its transaction is to record."""

    lease: Lease
    index: int
    outcome: acts.Outcome | None  # what the provider confirmed (None: the step makes no call)
    delay: float  # the simulated duration before the task's next step (0: due at once)
    began: float  # time.perf_counter() when the step began (the step's duration metric)
    started: float  # time.monotonic() after the provider's call: the renewed lease runs from here
    before: str  # the task's state before the step (steps change it in place), restored if not recorded
    ctx: steps.StepContext | None = None  # set by Engine._apply
    values: dict[str, object] = field(default_factory=dict)  # the columns its UPDATE sets
    wrote: bool = False  # its effects opened the transaction (a step with none is recorded by advance_many)

    @property
    def ends(self) -> bool:
        return self.ctx is not None and self.ctx.finished is not None

    @property
    def lines(self) -> list[cluster_logs.Line]:
        """Its ListClusterLogs lines, to be written with its record (only if its fence held)."""
        return self.ctx.lines if self.ctx is not None else []

    def undo(self) -> None:
        """The task's state as it was before the step."""
        self.lease.state = json.loads(self.before)

    def lost(self, reason: str) -> None:
        """The step was not recorded: its lease is gone (logged and counted), its state restored."""
        self.undo()
        metrics.record_lease_lost()
        log.warning(
            "lease lost",
            task_id=self.lease.task_id,
            step=self.lease.current_step + 1,
            reason=reason or "taken over",
        )


class Refused(Exception):
    """A step with effects found its lease taken over: the shared transaction rolls back, every step."""


class Writes:
    """One write transaction, begun when a step first writes (`conn`), its statements pipelined on
    PostgreSQL; it commits when the `with` block ends without an error, and rolls back otherwise."""

    def __init__(self, db: Database, deadline: float) -> None:
        self._db = db
        self._deadline = deadline
        self._stack = ExitStack()
        self._conn: Connection | None = None
        self._sync: Callable[[], None] | None = None

    def __enter__(self) -> Writes:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        return self._stack.__exit__(kind, error, tb)

    @property
    def opened(self) -> bool:
        return self._conn is not None

    def conn(self) -> Connection:
        """The transaction's connection (begun on first use)."""
        if self._conn is None:
            conn = self._stack.enter_context(self._db.write(deadline=self._deadline))
            self._sync = self._stack.enter_context(Driver.within(conn).pipeline())
            self._conn = conn
        return self._conn

    def record(self, owner: str, applied: list[Step], deferred: list[Step]) -> set[int]:
        """The fenced UPDATEs (and events) of every step, those with effects and those without, in one
        statement for each set of columns (advance_many: a round in lockstep is one or two), then the
        log lines of every step recorded, in one statement; raises Refused if any step with effects lost
        its lease, and returns the seqs whose lease held (a step without effects that is not among them,
        and its lines, is simply not written)."""
        driver = Driver.within(self.conn())
        steps = [(step.lease, step.values) for step in (*applied, *deferred)]
        held = store.advance_many(driver, owner, steps, ends=True)
        assert self._sync is not None
        self._sync()
        if any(step.lease.seq not in held for step in applied):
            raise Refused()
        recorded = [*applied, *(d for d in deferred if d.lease.seq in held)]
        cluster_logs.append_many(driver, [line for step in recorded for line in step.lines])
        return held


def advance(driver: Driver, owner: str, step: Step) -> bool:
    """store.advance on an autocommit driver, with the step's log lines in the same transaction if it
    held (a transaction of its own only when there are lines)."""
    if not step.lines:
        return store.advance(driver, step.lease, owner, step.values)
    with driver.atomic():
        held = store.advance(driver, step.lease, owner, step.values)
        if held:
            cluster_logs.append_many(driver, step.lines)
    return held


def advance_many(driver: Driver, owner: str, batch: list[Step]) -> set[int]:
    """store.advance_many on an autocommit driver, with the log lines of the steps whose fence held in
    the same transaction (a transaction of its own only when there are lines)."""
    rows = [(step.lease, step.values) for step in batch]
    if not any(step.lines for step in batch):
        return store.advance_many(driver, owner, rows)
    with driver.atomic():
        held = store.advance_many(driver, owner, rows)
        cluster_logs.append_many(driver, [line for s in batch if s.lease.seq in held for line in s.lines])
    return held
