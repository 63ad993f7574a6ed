"""engine/runner.py's leases in process: the heartbeat extends only the leases of steps still running
(and keeps this holder's own deadline with them), an injected hang stops heartbeating, a provider call
that outlives the lease or a store failing during it, and step_once giving the lease back.

The provider is a scripted SimulatedCloud (tests/integration/test_engine_outcomes.py) whose node call
runs a hook: what a heartbeat thread or another worker does while the call is under way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from hpcplane import metrics
from hpcplane.domain.accounts import Principal
from hpcplane.domain.errors import DbError
from hpcplane.domain.tasks import TaskType
from hpcplane.engine.runner import Engine
from hpcplane.providers.nodes import NodeRef, NodesOutcome
from hpcplane.store.db import Database, Driver
from hpcplane.store.engine import Lease
from hpcplane.wiring import Services
from tests.integration.conftest import START, FakeClock, services_on
from tests.integration.test_engine_outcomes import Scripted
from tests.integration.test_engine_steps import hosts, node_task, principal, seeded, step_of, task_row

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
NODE_STEP = step_of(TaskType.STOP_COMPUTES, "stop-nodes")


class Hooked(Scripted):
    """Runs `during` inside each node call (once the call is made), then answers as scripted."""

    def __init__(self, services: Services, spec: str = "", during: Callable[[], None] = lambda: None) -> None:
        super().__init__(services, spec)
        self.during = during
        self.calls = 0

    def _log(self, token: str, action: str, nodes: list[NodeRef]) -> NodesOutcome:
        self.calls += 1
        self.during()
        return super()._log(token, action, nodes)


@pytest.fixture(params=BACKENDS)
def services(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Services]:
    with services_on(request, request.param, tmp_path) as built:
        yield built


def engine(
    services: Services,
    provider: Scripted,
    *,
    owner: str = "a",
    lease: float = 30.0,
    max_step: float = 600.0,
    db: Database | None = None,
    kind: type[Engine] = Engine,
) -> Engine:
    """A worker `owner` on the services' store (or `db`), three attempts a step: the engine's own pool,
    as a worker process has it (on PostgreSQL: no readers, synchronous_commit off)."""
    return kind(
        db or services.engine.db,
        provider,
        services.clock,
        owner=owner,
        lease_seconds=lease,
        max_attempts=3,
        max_step_seconds=max_step,
    )


def fake_clock(services: Services) -> FakeClock:
    clock = services.clock
    assert isinstance(clock, FakeClock)
    return clock


def stop_task(services: Services, who: Principal | None = None) -> str:
    """A StopNodes task of compute0 on a new cluster: its node step calls the provider."""
    who = who or principal(services)
    cluster_id = seeded(services, who, computes=1)
    return node_task(
        services, who, TaskType.STOP_COMPUTES, cluster_id, [hosts(services, cluster_id)["compute0"].id]
    )


def stop_cluster_task(services: Services, who: Principal) -> str:
    """A StopCluster task on a new cluster: its drain-nodes step has no effect (recorded at a round's end)."""
    cluster_id = seeded(services, who, computes=1)
    return services.operations.cluster_operation(
        who, "req-stop", TaskType.STOP_CLUSTER, cluster_id, {"Action": "StopCluster"}
    ).task_id


@contextmanager
def heartbeating(worker: Engine) -> Iterator[None]:
    """The worker's heartbeat every 20 ms in a thread beside the block; stopped and joined after it. The
    pool starts empty: a step that needs a connection while the heartbeat holds one opens it with its
    lease's time left (under 2 s with these tests' short leases: Deadlines.connect_timeout)."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(0.02):
            worker.heartbeat()

    beating = threading.Thread(target=beat)
    beating.start()
    try:
        yield
    finally:
        stop.set()
        beating.join()


def lost_leases(captured: Sequence[Mapping[str, Any]], *keys: str) -> list[tuple[Any, ...]]:
    """The `keys` of each "lease lost" event logged (None where an event has no such key)."""
    return [tuple(e.get(k) for k in keys) for e in captured if e["event"] == "lease lost"]


@pytest.mark.parametrize("max_step", [600.0, 0.0])
def test_heartbeat_extends_the_running_steps_lease_only(services: Services, max_step: float) -> None:
    """During a step's provider call the heartbeat moves that task's lease to now + lease, and this
    holder's deadline with it; a task claimed but waiting is not extended; nor is a step that has run past
    max_step_seconds (max_step 0)."""
    clock = fake_clock(services)
    fake = Hooked(services)
    who = principal(services)
    running, waiting = stop_task(services, who), stop_task(services, who)
    worker = engine(services, fake, max_step=max_step)
    leases = {lease.task_id: lease for lease in worker.claim(2)}
    seen: list[tuple[float, float, float, float]] = []

    def during() -> None:
        clock.advance(10)
        ends = worker.lease_end(leases[running]), worker.lease_end(leases[waiting])
        time.sleep(0.01)  # the heartbeat's start is later than the claim's
        worker.heartbeat()
        seen.append((*ends, worker.lease_end(leases[running]), worker.lease_end(leases[waiting])))

    fake.during = during
    with capture_logs() as captured:
        worker.run(leases[running])
    [(running_before, waiting_before, running_after, waiting_after)] = seen
    assert waiting_after == waiting_before
    expires = task_row(services, waiting).lease_expires_at
    assert expires == START + timedelta(seconds=30)
    if max_step:
        assert running_after > running_before
        assert task_row(services, running).status == "Success"
    else:
        assert running_after == running_before
        row = task_row(services, running)
        # Not extended: the step's UPDATE (fenced on owner and token, not on expiry) still commits.
        assert (row.status, row.current_step) == ("Success", row.total_steps)
    assert [e for e in captured if e["log_level"] == "warning"] == []


def test_heartbeat_does_not_keep_a_lease_another_worker_took(services: Services) -> None:
    """Taken over during the provider's call: the heartbeat extends nothing for this holder (its deadline
    stays), and the step is refused at its UPDATE and logged as a lost lease."""
    clock = fake_clock(services)
    fake = Hooked(services)
    task_id = stop_task(services)
    worker, other = engine(services, fake), engine(services, fake, owner="b")
    [lease] = worker.claim()
    ends: list[float] = []

    def during() -> None:
        clock.advance(31)
        assert len(other.claim()) == 1
        ends.append(worker.lease_end(lease))
        time.sleep(0.01)
        worker.heartbeat()
        ends.append(worker.lease_end(lease))

    fake.during = during
    with capture_logs() as captured:
        worker.run(lease)
    assert ends[0] == ends[1]
    row = task_row(services, task_id)
    assert (row.current_step, row.lease_owner) == (NODE_STEP - 1, "b")
    assert row.lease_expires_at == clock.now() + timedelta(seconds=30)
    assert lost_leases(captured, "step", "reason") == [(NODE_STEP, "taken over")]


def test_a_provider_call_past_the_lease_loses_the_step(services: Services) -> None:
    """No heartbeat while the provider's call outlives the lease: the step is given up unrecorded (the
    next holder asks again with the same token), the reason logged."""
    fake = Hooked(services, during=lambda: time.sleep(0.3))
    task_id = stop_task(services)
    worker = engine(services, fake, lease=0.25)
    [lease] = worker.claim()
    with capture_logs() as captured:
        worker.run(lease)
    row = task_row(services, task_id)
    assert (row.current_step, row.lease_owner, row.status) == (NODE_STEP - 1, "a", "Processing")
    assert fake.calls == 1
    assert lost_leases(captured, "step", "reason") == [(NODE_STEP, "expired during the provider's call")]


class Flaky(Hooked):
    """Its first node call fails as a store would (DbError): the step is retried, not failed."""

    def _log(self, token: str, action: str, nodes: list[NodeRef]) -> NodesOutcome:
        self.calls += 1
        if self.calls == 1:
            raise DbError() from ConnectionError("connection lost")
        self.calls -= 1
        return super()._log(token, action, nodes)


@pytest.mark.parametrize("max_step", [600.0, 0.0])
def test_a_store_failure_during_a_step_is_retried_until_max_step_seconds(
    services: Services, max_step: float
) -> None:
    """The retry logs the step and the cause; past max_step_seconds the error is logged and the lease
    left to expire. A task run to its end counts as started once (its first step) and ended once."""
    fake = Flaky(services)
    task_id = stop_task(services)
    worker = engine(services, fake, max_step=max_step)
    kind = TaskType.STOP_COMPUTES.value
    counters = (
        metrics.get().tasks_started.labels(kind),
        metrics.get().tasks_ended.labels(kind, "Success"),
        metrics.get().steps.labels(kind),
    )
    before = [c._value.get() for c in counters]
    [lease] = worker.claim()
    with capture_logs() as captured:
        worker.run(lease)
    row = task_row(services, task_id)
    warnings = [e for e in captured if e["log_level"] == "warning"]
    events = [e["event"] for e in warnings]
    causes = [e["cause"] for e in warnings]
    if max_step:
        assert (row.status, fake.calls) == ("Success", 2)
        assert events == ["store failed during a step; retrying"]
        assert (warnings[0]["step"], causes) == (NODE_STEP, ["ConnectionError('connection lost')"])
        assert [c._value.get() - b for c, b in zip(counters, before, strict=True)] == [1, 1, row.total_steps]
    else:  # no time to retry: the step is given up, the lease left to expire
        assert (row.status, row.current_step, row.lease_owner, fake.calls) == (
            "Processing",
            NODE_STEP - 1,
            "a",
            1,
        )
        assert events == ["store unavailable past max_step_seconds; the lease will expire"]
        assert [cause.startswith("DbError(") for cause in causes] == [True]


@pytest.mark.parametrize("hang", [None, 0.02])
def test_a_hanging_step_stops_heartbeating(services: Services, hang: float | None) -> None:
    """hang_step without hang_seconds sleeps twice the lease with the heartbeat running beside it: the
    heartbeat skips the hung step, so the lease is given up and the step not recorded; a hang shorter than
    the lease (hang_seconds) only delays the step."""
    spec = "StopComputes.hang_step=1" + ("" if hang is None else f";StopComputes.hang_seconds={hang}")
    fake = Hooked(services, spec)
    task_id = stop_task(services)
    worker = engine(services, fake, lease=0.5)
    [lease] = worker.claim()
    with heartbeating(worker), capture_logs() as captured:
        worker.run(lease)
    row = task_row(services, task_id)
    if hang is None:
        assert (row.current_step, row.lease_owner, fake.calls) == (0, "a", 0)
        assert lost_leases(captured, "step", "reason") == [(1, "expired before it could be renewed")]
    else:
        assert (row.status, fake.calls) == ("Success", 1)


def test_step_once_runs_one_step_and_gives_the_lease_back(services: Services) -> None:
    """step_once: the next step only, then the lease released, so another worker claims the task at once
    (no clock moved); with the lease lost meanwhile it records nothing and raises nothing."""
    clock = fake_clock(services)
    fake = Hooked(services)
    task_id = stop_task(services)
    worker, other = engine(services, fake), engine(services, fake, owner="b")
    [lease] = worker.claim()
    worker.step_once(lease)
    row = task_row(services, task_id)
    assert (row.current_step, row.lease_owner, row.status) == (1, None, "Processing")
    [again] = other.claim()
    assert (again.current_step, again.lost_attempts) == (1, 0)
    clock.advance(31)
    [third] = worker.claim()  # "b"'s lease expired: taken back
    other.step_once(again)  # fenced: "b" no longer holds it
    row = task_row(services, task_id)
    assert (row.current_step, row.lease_owner) == (1, "a")
    worker.run(third)
    assert task_row(services, task_id).status == "Success"


def test_before_run_is_called_only_when_a_claim_got_tasks(services: Services) -> None:
    fake = Hooked(services)
    worker = engine(services, fake)
    called: list[int] = []
    worker.before_run = lambda: called.append(1)
    assert worker.claim() == []
    assert called == []
    stop_task(services)
    assert len(worker.claim()) == 1
    assert called == [1]


@pytest.mark.parametrize("many", [False, True])
def test_a_lease_run_out_in_a_round_gives_up_every_step_of_it(services: Services, many: bool) -> None:
    """A provider call outliving the lease (no heartbeat), run alone or in a round with a task whose step
    of that round has no effect (StopCluster's drain-nodes, recorded at the round's end): neither step is
    recorded, each lost lease logged with its step and reason; the tasks' states are as before the step."""
    fake = Hooked(services, during=lambda: time.sleep(0.3))
    who = principal(services)
    waiting = stop_cluster_task(services, who)
    running = stop_task(services, who)
    worker = engine(services, fake, lease=0.25)
    leases = {lease.task_id: lease for lease in worker.claim(2)}
    with capture_logs() as captured:
        if many:
            worker.run_many([leases[waiting], leases[running]])
        else:
            worker.run(leases[running])
    row = task_row(services, running)
    assert (row.current_step, row.lease_owner, fake.calls) == (NODE_STEP - 1, "a", 1)
    lost = lost_leases(captured, "task_id", "step", "reason")
    # The running step's loss is logged by _attempt (its task_id bound to the log context, not the event).
    if many:
        assert task_row(services, waiting).current_step == leases[waiting].current_step == NODE_STEP - 1
        assert lost == [
            (None, NODE_STEP, "expired during the provider's call"),
            (waiting, NODE_STEP, "expired before it could be renewed"),
        ]
    else:
        assert lost == [(None, NODE_STEP, "expired during the provider's call")]


def test_a_round_step_refused_at_its_recording_is_logged_and_its_state_restored(services: Services) -> None:
    """run_many: a task taken over while its no-effect step waits for the round's end is refused at the
    recording, logged as a lost lease (taken over) with its step, its in-memory progress undone."""
    clock = fake_clock(services)
    fake = Hooked(services)
    who = principal(services)
    victim = stop_cluster_task(services, who)
    running = stop_task(services, who)
    worker, other = engine(services, fake), engine(services, fake, owner="b")
    leases = {lease.task_id: lease for lease in worker.claim(2)}

    def during() -> None:
        clock.advance(31)
        assert len(other.claim(1, task_id=victim)) == 1

    fake.during = during
    with capture_logs() as captured:
        worker.run_many([leases[victim], leases[running]])
    assert task_row(services, running).status == "Success"
    row = task_row(services, victim)
    assert (row.current_step, row.lease_owner) == (NODE_STEP - 1, "b")
    assert leases[victim].current_step == NODE_STEP - 1
    assert lost_leases(captured, "task_id", "step", "reason") == [(victim, NODE_STEP, "taken over")]


def test_a_failed_task_is_logged_and_counted_by_type_and_code(services: Services) -> None:
    """_fail: the "task failed" warning names the task and the code; the end is counted under the task's
    type and Failed."""
    fake = Hooked(services)

    def boom() -> None:
        raise RuntimeError("boom")

    fake.during = boom
    task_id = stop_task(services)
    worker = engine(services, fake)
    ended = metrics.get().tasks_ended.labels(TaskType.STOP_COMPUTES.value, "Failed")
    before = ended._value.get()
    [lease] = worker.claim()
    with capture_logs() as captured:
        worker.run(lease)
    assert task_row(services, task_id).status == "Failed"
    assert ended._value.get() - before == 1
    failed = [(e["task_id"], e["code"]) for e in captured if e["event"] == "task failed"]
    assert failed == [(task_id, "UnknownError")]


def test_waiting_leases_of_a_round_are_heartbeated_while_another_task_hangs(services: Services) -> None:
    """run_many: while the round's first task hangs (past the lease, heartbeat skipping it), the heartbeat
    keeps the lease of the task waiting for its turn, which then runs to its end; the hung one is lost."""
    fake = Hooked(services, "StopComputes.hang_step=1;StopComputes.hang_seconds=1.2")
    who = principal(services)
    hung = stop_task(services, who)
    waiting = stop_cluster_task(services, who)
    worker = engine(services, fake, lease=1.0)
    leases = {lease.task_id: lease for lease in worker.claim(2)}
    with heartbeating(worker):
        worker.run_many([leases[hung], leases[waiting]])
    assert task_row(services, waiting).status == "Success"
    assert (task_row(services, hung).current_step, fake.calls) == (0, 1)  # the waiting one's node call


class Counting(Engine):
    """An engine counting its claims (drive's polls)."""

    claims = 0

    def claim(self, limit: int = 1, task_id: str | None = None) -> list[Lease]:
        self.claims += 1
        return super().claim(limit, task_id)


def test_drive_sleeps_until_the_next_step_or_its_timeout_at_most_half_a_second_at_a_time(
    services: Services,
) -> None:
    """drive with the next step a minute away (simulated): it polls once when the timeout is nearer than
    half a second, and again after half a second otherwise."""
    fake = Hooked(services)
    fake.step_delay = lambda: 60.0  # type: ignore[method-assign]
    task_id = stop_task(services)
    for timeout, polls in ((0.3, 1), (1.5, 2)):
        worker = engine(services, fake, owner=f"drive-{timeout}", kind=Counting)
        assert isinstance(worker, Counting)
        assert not worker.drive(task_id, timeout=timeout)
        assert worker.claims == polls if polls == 1 else worker.claims >= polls
    assert task_row(services, task_id).current_step == 1


class FailingWrites(Database):
    """The store, whose next `failures` autocommit writes (a round's recording) fail as a lost
    connection would."""

    failures = 0

    def driver(self, *, write: bool = False, deadline: float | None = None) -> AbstractContextManager[Driver]:
        if write and self.failures > 0:
            self.failures -= 1
            raise DbError() from ConnectionError("connection lost")
        return super().driver(write=write, deadline=deadline)


@pytest.mark.parametrize("max_step", [600.0, 0.0])
def test_a_store_failure_recording_a_round_is_retried_until_max_step_seconds(
    services: Services, max_step: float
) -> None:
    """run_many: the round's recording failing twice is retried (each retry logged with its cause) and
    the task runs to its end; with no time left the steps are given up, the leases left to expire."""
    assert services.settings.database_url is not None
    store = FailingWrites(services.settings.database_url, pool_size=2)
    try:
        fake = Hooked(services)
        who = principal(services)
        task_id = stop_cluster_task(services, who)
        worker = engine(services, fake, max_step=max_step, db=store)
        leases = worker.claim()
        store.failures = 2
        with capture_logs() as captured:
            worker.run_many(leases)
        warnings = [(e["event"], e.get("cause")) for e in captured if e["log_level"] == "warning"]
        row = task_row(services, task_id)
        if max_step:
            retried = ("store failed recording steps; retrying", "ConnectionError('connection lost')")
            assert warnings == [retried, retried]
            assert row.status == "Success"
        else:
            assert warnings == [("store unavailable past max_step_seconds; the leases will expire", None)]
            assert (row.current_step, row.lease_owner, row.status) == (1, "a", "Processing")  # step 1 logs
    finally:
        store.dispose()
