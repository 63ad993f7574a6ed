"""The engine: claims tasks under a lease; each step asks the provider outside any transaction, then records
what it confirmed in one transaction fenced on the lease."""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

import structlog
from sqlalchemy import Connection

from hpcplane import metrics
from hpcplane.clock import Clock
from hpcplane.domain.errors import DbError
from hpcplane.domain.tasks import TaskStatus
from hpcplane.engine import acts, rounds, steps
from hpcplane.engine.rounds import Step
from hpcplane.providers.base import Provider
from hpcplane.store import cluster_logs
from hpcplane.store import control as control_store
from hpcplane.store import engine as store
from hpcplane.store.db import Database, Driver
from hpcplane.store.engine import Lease

log = structlog.get_logger("hpcplane.engine")


class LeaseLost(Exception):
    """Another worker holds the task now: this step's transaction must roll back."""


# A holder treats its lease as gone this fraction of it before it ends: its transactions end by then, so
# the next holder finds no row of the task locked.
_LEASE_MARGIN = 0.1
T = TypeVar("T")


class Engine:
    """Runs tasks; many engines (threads, processes, machines) can share one store."""

    def __init__(
        self,
        db: Database,
        provider: Provider,
        clock: Clock,
        *,
        owner: str,
        lease_seconds: float,
        max_attempts: int,
        max_step_seconds: float,
        host: str | None = None,
    ) -> None:
        self.db = db
        self.host = host  # the machine it runs on: it also claims tasks of clusters bound to it
        self.provider = provider
        self.clock = clock
        self.owner = owner
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self.max_step_seconds = max_step_seconds
        self._active: dict[tuple[int, int], float] = {}
        self._renewed: dict[tuple[int, int], float] = {}  # monotonic time the lease was last extended from
        self._active_lock = threading.Lock()
        self.before_run: Callable[[], None] | None = None  # called when a claim got tasks (the tuning)

    def claim(self, limit: int = 1, task_id: str | None = None) -> list[Lease]:
        """Take due tasks; a task whose lease was lost `max_attempts` times in a row (no step of it recorded
        in between) ends Failed instead."""
        started = time.monotonic()
        with self.db.write() as conn:
            now = self.clock.now()  # read once the write lock is held, so the lease is not born expired
            leases = store.claim(
                conn,
                owner=self.owner,
                now=now,
                lease_until=now + self.lease,
                limit=limit,
                postgres=self.db.is_postgres,
                task_id=task_id,
                host=self.host,
            )
        if leases and self.before_run is not None:
            self.before_run()
        usable = []
        for lease in leases:
            if lease.taken_over:
                metrics.record_takeover()
            self._renewed[(lease.seq, lease.token)] = started
            if lease.lost_streak >= self.max_attempts:
                message = (
                    f"The task's worker was lost {lease.lost_streak} times in a row"
                    f" at step {lease.current_step + 1} of {lease.total_steps}."
                )
                self._fail(lease, "TaskLost", message)
                self._renewed.pop((lease.seq, lease.token), None)
            else:
                usable.append(lease)
        return usable

    def run(self, lease: Lease) -> None:
        """Run the task's due steps until it ends, its next step lies in the future, or the lease is lost."""
        try:
            while self._guarded(lease, lambda: self._run_step(lease, None)):
                pass
        finally:
            self._untrack(lease)

    def run_many(self, leases: list[Lease]) -> None:
        """Run several tasks' due steps in rounds, one step of each task a round, until each ends, its next
        step lies in the future, or its lease is lost.

        A round makes every step's provider call first (no transaction open), then records the round in
        one write transaction (rounds.Writes; pipelined on PostgreSQL): each step with effects writes
        them, then every step is recorded, with effects or without (advance_many: one statement for
        each set of columns on PostgreSQL), each in its own task's row, fenced on its own lease, with
        its own event; so every step of every task is still committed, and seen by ListTasks, one by one. If a
        step with effects finds its lease taken over, or anything else fails in that transaction, it
        rolls back and the round's steps are recorded each alone, as run() does (_alone)."""
        for lease in leases:
            self._track(lease, hung=False)  # the heartbeat keeps the leases waiting for their turn
        active = list(leases)
        try:
            while active:
                asked = []
                for lease in active:
                    step = self._guarded(lease, functools.partial(self._ask_next, lease))
                    if step is not None:
                        asked.append(step)
                going = self._round(asked)
                kept = {id(lease) for lease in going}
                for lease in active:
                    if id(lease) not in kept:
                        self._untrack(lease)
                active = going
        finally:
            for lease in active:
                self._untrack(lease)

    def _guarded(self, lease: Lease, call: Callable[[], T]) -> T | None:
        """`call` for one task's step, its failures handled: a lost lease or an unavailable store logged
        (the lease is left to expire), any other error failing the task; None then."""
        structlog.contextvars.bind_contextvars(task_id=lease.task_id)
        try:
            return call()
        except LeaseLost as lost:
            metrics.record_lease_lost()
            log.warning("lease lost", step=lease.current_step + 1, reason=str(lost) or "taken over")
        except DbError as error:
            log.warning("store unavailable past max_step_seconds; the lease will expire", cause=repr(error))
        except Exception:
            log.exception("step failed with an unexpected error")
            self._fail(lease, "UnknownError", "An unknown error occurred.")
        finally:
            structlog.contextvars.unbind_contextvars("task_id")
        return None

    def _begin(self, lease: Lease) -> int:
        """The index of the task's next step, after the injected hang (if it is this step)."""
        index = lease.current_step + 1
        fault = self.provider.fault(lease.task_type)
        if fault.hang_step == index:
            self._hang(lease, fault.hang_seconds)
        self._track(lease, hung=False)
        return index

    def _run_step(self, lease: Lease, batch: list[Step] | None) -> bool:
        """One whole step (deferred into `batch` when it has no effect and a batch is given): True when its
        next step is due at once and the lease is kept."""
        index = self._begin(lease)
        return self._with_retries(lease, index, lambda: self._step(lease, index, batch))

    def _ask_next(self, lease: Lease) -> Step:
        """The first half of the task's next step in a round: its provider call (retried on a store
        failure as a step is)."""
        index = self._begin(lease)
        return self._with_retries(lease, index, lambda: self._ask(lease, index))

    def _round(self, asked: list[Step]) -> list[Lease]:
        """Record a round's steps, their provider calls made, in one transaction (see run_many); returns
        the leases whose next step is due at once."""
        now = time.monotonic()
        live = []
        for step in asked:
            if now >= self.lease_end(step.lease):
                step.lost("expired before it could be renewed")
            else:
                live.append(step)
        if not live:
            return []
        applied: list[Step] = []
        deferred: list[Step] = []
        try:
            with rounds.Writes(self.db, min(self.lease_end(s.lease) for s in live)) as writes:
                for step in live:
                    structlog.contextvars.bind_contextvars(task_id=step.lease.task_id)
                    try:
                        self._apply(step, writes.conn)
                    finally:
                        structlog.contextvars.unbind_contextvars("task_id")
                    (applied if step.wrote or step.ends else deferred).append(step)
                logged = any(step.lines for step in deferred)
                held = writes.record(self.owner, applied, deferred) if applied or logged else set()
        except Exception as error:
            log.info(
                "a round's steps could not be recorded together; recording each alone", cause=repr(error)
            )
            for step in live:
                step.undo()
            return self._alone(live)
        if not applied and not logged:
            return self._record(deferred)  # nothing written: the steps without effects, one statement
        going = [step.lease for step in applied if self._recorded(step)]
        return going + self._kept(deferred, held)

    def _kept(self, steps: list[Step], held: set[int]) -> list[Lease]:
        """The leases of steps recorded by one advance_many (`held`: the seqs whose fence held) whose next
        step is due at once; a step whose fence did not hold is logged as lost."""
        going = []
        for step in steps:
            if step.lease.seq not in held:
                step.lost("")
            elif self._recorded(step):
                going.append(step.lease)
        return going

    def _alone(self, live: list[Step]) -> list[Lease]:
        """A round's steps recorded each in its own transaction (those without effects together, as
        before), their provider calls not made again."""
        batch: list[Step] = []
        going = []
        for step in live:
            commit = functools.partial(self._commit, step, batch)
            if self._guarded(
                step.lease, functools.partial(self._with_retries, step.lease, step.index, commit)
            ):
                going.append(step.lease)
        return going + self._record(batch)

    def _record(self, batch: list[Step]) -> list[Lease]:
        """Record a round's deferred steps together (retried on a store failure as a step is, the fence
        making a retry safe); returns the leases whose next step is due at once."""
        if not batch:
            return []
        deadline = time.monotonic() + self.max_step_seconds
        pause = 0.1
        while True:
            now = time.monotonic()
            for step in batch:
                if now >= self.lease_end(step.lease):
                    step.lost("expired before it could be renewed")
            batch = [step for step in batch if now < self.lease_end(step.lease)]
            if not batch:
                return []
            try:
                with self.db.driver(
                    write=True, deadline=min(self.lease_end(s.lease) for s in batch)
                ) as driver:
                    held = rounds.advance_many(driver, self.owner, batch)
                break
            except DbError as error:
                if time.monotonic() + pause > deadline:
                    log.warning("store unavailable past max_step_seconds; the leases will expire")
                    return []
                log.warning("store failed recording steps; retrying", cause=repr(error.__cause__))
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
        return self._kept(batch, held)

    def step_once(self, lease: Lease) -> None:
        """Run only the lease's next step, then give the lease back (the control API's step by hand)."""
        self._track(lease, hung=False)
        index = lease.current_step + 1
        try:
            kept = self._with_retries(lease, index, lambda: self._step(lease, index))
        except LeaseLost:
            return
        finally:
            self._untrack(lease)
        if kept:
            with self.db.write() as conn:
                control_store.release(conn, lease.seq, self.owner, lease.token)

    def _with_retries(self, lease: Lease, index: int, call: Callable[[], T]) -> T:
        """A store failure (lock timeout, lost connection) is not a lost worker: retry the step, keeping the
        lease alive by heartbeat, until max_step_seconds; the fence makes a retry safe."""
        deadline = time.monotonic() + self.max_step_seconds
        pause = 0.1
        while True:
            if time.monotonic() >= self.lease_end(lease):
                # Not renewed in time (the store was unreachable, or the step hung): another worker may
                # hold the task now, so this one gives it up rather than retry into its locks.
                raise LeaseLost("expired before it could be renewed")
            try:
                return call()
            except DbError as error:
                if time.monotonic() + pause > deadline:
                    raise
                log.warning("store failed during a step; retrying", step=index, cause=repr(error.__cause__))
                time.sleep(pause)
                pause = min(pause * 2, 2.0)

    def _step(self, lease: Lease, index: int, batch: list[Step] | None = None) -> bool:
        """One step: its provider call, then its effects and progress in one fenced transaction; True when
        the next step is due at once and the lease is kept."""
        return self._commit(self._ask(lease, index), batch)

    def _ask(self, lease: Lease, index: int) -> Step:
        """The step's provider call, outside any transaction (the heartbeat keeps the lease alive)."""
        began = time.perf_counter()
        delay = self.provider.step_delay()
        outcome = acts.act(self.db, lease, index, self.provider, f"{lease.task_id}:{index}")
        if time.monotonic() >= self.lease_end(lease):
            raise LeaseLost("expired during the provider's call")
        return rounds.Step(lease, index, outcome, delay, began, time.monotonic(), lease.state_json)

    def _commit(self, step: Step, batch: list[Step] | None = None) -> bool:
        """The step's effects and progress in one transaction fenced on its lease (begun when the step
        first touches the store; a step with no effect of its own is one fenced UPDATE, or deferred into
        `batch`); True when the next step is due at once and the lease is kept."""
        lease = step.lease
        if step.ctx is not None:
            step.undo()  # applied before (a retry, or a round recorded each alone): from the state before
        deadline = self.lease_end(lease)
        with rounds.Writes(self.db, deadline) as writes:
            self._apply(step, writes.conn)
            if not writes.opened and batch is not None and not step.ends:
                batch.append(step)
                return False  # recorded with the round's other steps (run_many)
            if writes.opened:
                try:
                    writes.record(self.owner, [step], [])
                    held = True
                except rounds.Refused:
                    held = False
            else:
                with self.db.driver(write=True, deadline=deadline) as driver:
                    held = rounds.advance(driver, self.owner, step)
            if not held:
                step.undo()
                raise LeaseLost()  # rolls the step's effects back with it
        return self._recorded(step)

    def _apply(self, step: Step, conn: Callable[[], Connection]) -> None:
        """Run the step's effects (engine/steps.py) in the transaction `conn` gives, begun on first use,
        and set the columns its UPDATE records."""
        lease = step.lease
        step.wrote = False

        def used() -> Connection:
            step.wrote = True
            return conn()

        now = self.clock.now()
        errors = list(lease.errors)
        ctx = steps.StepContext(used, lease, step.index, now, self.provider, errors, step.outcome)
        steps.apply(ctx)
        values: dict[str, object] = {
            "current_step": step.index,
            "updated_at": now,
            "lease_expires_at": now + self.lease,
        }
        # The state and Errors only when the step changed them (most steps do not): the row keeps them.
        if ctx.state_changed:
            values["state"] = json.dumps(lease.state)
        if errors != lease.errors:
            values["errors"] = json.dumps(errors, separators=(",", ":"))
        if lease.lost_streak:
            values["lost_streak"] = 0  # the step is recorded: the leases lost before it are forgiven
        if step.delay > 0:
            # Kept as it was while the lease is (it is past): the step then changes no indexed column,
            # and PostgreSQL updates the row in place (HOT) without touching the table's indexes.
            values["run_after"] = now + timedelta(seconds=step.delay)
        if ctx.finished is not None:
            values.update(
                status=ctx.finished.value,
                finished_at=now,
                result=steps.result_json(ctx),
                lease_owner=None,
                run_after=None,
            )
        elif step.delay > 0:
            values["lease_owner"] = None
        step.ctx, step.values = ctx, values

    def _recorded(self, step: Step) -> bool:
        """The bookkeeping of a step whose UPDATE held; True when the task's next step is due at once."""
        lease, ctx = step.lease, step.ctx
        assert ctx is not None
        self._renewed[(lease.seq, lease.token)] = step.started
        lease.current_step = step.index
        lease.lost_streak = 0
        lease.errors = ctx.errors
        state = step.values.get("state")
        if isinstance(state, str):
            lease.state_json = state
        metrics.record_step(lease.task_type.value, time.perf_counter() - step.began, step.index == 1)
        if ctx.finished is not None:
            metrics.record_end(lease.task_type.value, ctx.finished.value)
            # Named here: a round records its steps outside the task_id bound around each step.
            log.info("task ended", task_id=lease.task_id, status=ctx.finished.value, steps=step.index)
        return ctx.finished is None and step.delay == 0

    def _fail(self, lease: Lease, code: str, message: str) -> None:
        """End the task Failed with one more Error, releasing what it held (fenced on the lease)."""
        errors = [*lease.errors, {"Code": code, "Message": message}]
        try:
            with self.db.write(deadline=self.lease_end(lease)) as conn:
                now = self.clock.now()
                ctx = steps.StepContext(lambda: conn, lease, lease.current_step, now, self.provider, errors)
                steps.finish(ctx, failed=True)
                cluster_logs.append_many(Driver.within(conn), ctx.lines)  # rolled back if not ok
                ok = store.advance(
                    Driver.within(conn),
                    lease,
                    self.owner,
                    {
                        "status": TaskStatus.FAILED.value,
                        "errors": json.dumps(errors, separators=(",", ":")),
                        "result": steps.result_json(ctx),
                        "finished_at": now,
                        "updated_at": now,
                        "lease_owner": None,
                        "run_after": None,
                    },
                )
                if not ok:
                    raise LeaseLost()
            metrics.record_end(lease.task_type.value, TaskStatus.FAILED.value)
            log.warning("task failed", task_id=lease.task_id, code=code)
        except (LeaseLost, DbError) as error:
            log.warning(
                "could not fail the task; it will be retried", task_id=lease.task_id, cause=repr(error)
            )

    def _hang(self, lease: Lease, seconds: float | None) -> None:
        """The injected hang: stop heartbeating and sleep past the lease, as a stuck worker would."""
        self._track(lease, hung=True)
        time.sleep(seconds if seconds is not None else self.lease.total_seconds() * 2)

    def _track(self, lease: Lease, *, hung: bool) -> None:
        with self._active_lock:
            self._active[(lease.seq, lease.token)] = float("-inf") if hung else time.monotonic()

    def _untrack(self, lease: Lease) -> None:
        with self._active_lock:
            self._active.pop((lease.seq, lease.token), None)
            self._renewed.pop((lease.seq, lease.token), None)

    def lease_end(self, lease: Lease) -> float:
        """When (time.monotonic()) this holder stops relying on the lease: a margin before it expires."""
        renewed = self._renewed.get((lease.seq, lease.token), time.monotonic())
        return renewed + self.lease.total_seconds() * (1 - _LEASE_MARGIN)

    def heartbeat(self) -> None:
        """Extend the leases of steps still running, unless they have run past max_step_seconds."""
        limit = time.monotonic() - self.max_step_seconds
        with self._active_lock:
            held = [key for key, started in self._active.items() if started >= limit]
        if held:
            started = time.monotonic()
            with self.db.write() as conn:
                kept = store.heartbeat(conn, held, self.owner, self.clock.now() + self.lease)
            with self._active_lock:
                for key in kept:
                    previous = self._renewed.get(key)
                    if previous is not None:
                        self._renewed[key] = max(previous, started)

    def drive(self, task_id: str, timeout: float) -> bool:
        """Run one task to its end from this thread (AddNodes Sync=true); False if it did not end in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for lease in self.claim(1, task_id=task_id):
                self.run(lease)
            with self.db.read() as conn:
                if store.task_finished(conn, task_id):
                    return True
                due = store.next_due(conn)
            wait = 0.05 if due is None else (due - self.clock.now()).total_seconds()
            time.sleep(min(max(wait, 0.0), 0.5, max(deadline - time.monotonic(), 0.0)))
        return False
