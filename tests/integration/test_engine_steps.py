"""The engine in this process on the simulated clock: one step per claim, each operation's effects and end
statuses, injected faults, capacity, a lease taken over (and fenced), lost attempts, unexpected errors.

No worker threads: the test claims and runs, so what happened is known step by step (engine/runner.py and
engine/steps.py at the depth of their own units, where the crash tests only see outcomes).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, select

from hpcplane import ids, metrics
from hpcplane.clock import Clock
from hpcplane.config import Settings
from hpcplane.domain.accounts import Principal
from hpcplane.domain.plans import base, plan_for
from hpcplane.domain.resources import Role
from hpcplane.domain.tasks import TaskType
from hpcplane.engine.runner import Engine
from hpcplane.engine.steps import NODE_STEP
from hpcplane.providers.base import Provider
from hpcplane.providers.faults import parse_faults
from hpcplane.providers.simulated import SimulatedCloud
from hpcplane.services.clusters import seed_cluster
from hpcplane.services.operations import AddSpec
from hpcplane.store import clusters as cluster_store
from hpcplane.store.tables import clusters, nodes, sim_calls, task_events, tasks
from hpcplane.wiring import Services, build_services
from tests.integration.conftest import START, FakeClock, database_url

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
Build = Callable[..., Services]


@pytest.fixture(params=BACKENDS)
def build(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Build]:
    """Services on a fresh database of each backend, on a FakeClock, with no worker started."""
    url = database_url(request, request.param, tmp_path)
    opened: list[Services] = []

    def make(**values: Any) -> Services:
        settings = Settings(
            **{
                "home": tmp_path / "home",
                "database_url": url,
                "redis_url": None,
                "sim_faults": "",
                "sim_step_seconds": 0.0,
                "sim_jitter": 0.0,
                "lease_seconds": 30.0,
                **values,
            }
        )
        services = build_services(settings, clock=FakeClock())
        opened.append(services)
        return services

    yield make
    for services in opened:
        services.close()


def principal(services: Services) -> Principal:
    issued = services.accounts.create_account("engine")
    return Principal(services.accounts.find(issued.account_id), issued.access_key_id)


def seeded(services: Services, who: Principal, computes: int = 2, status: str = "running") -> str:
    return seed_cluster(
        services.db,
        services.clock,
        account_id=who.account.id,
        region=services.settings.region,
        name="c",
        status=status,
        computes=computes,
    )


def hosts(services: Services, cluster_id: str) -> dict[str, Any]:
    """The cluster's nodes by hostname (deleted ones included)."""
    with services.db.read() as conn:
        rows = conn.execute(select(nodes).where(nodes.c.cluster_id == cluster_id)).all()
    return {row.hostname: row for row in rows}


def task_row(services: Services, task_id: str) -> Any:
    with services.db.read() as conn:
        return conn.execute(select(tasks).where(tasks.c.task_id == task_id)).one()


def cluster_row(services: Services, cluster_id: str) -> Any:
    with services.db.read() as conn:
        return conn.execute(select(clusters).where(clusters.c.id == cluster_id)).one()


def provider_calls(services: Services, task_id: str) -> list[tuple[str, str, list[str]]]:
    with services.db.read() as conn:
        rows = conn.execute(
            select(sim_calls.c.token, sim_calls.c.action, sim_calls.c.instance_ids)
            .where(sim_calls.c.token.like(f"{task_id}:%"))
            .order_by(sim_calls.c.id)
        ).all()
    return [(row.token, row.action, sorted(json.loads(row.instance_ids))) for row in rows]


def node_task(
    services: Services, who: Principal, task_type: TaskType, cluster_id: str, node_ids: list[str], **raw: str
) -> str:
    instances = [(f"Instance.{i + 1}.Id", node_id) for i, node_id in enumerate(node_ids)]
    params = {"Action": "NodeOperation", "ClusterId": cluster_id, **dict(instances), **raw}
    accepted = services.operations.node_operation(
        who, ids.request_id(), task_type, cluster_id, instances, Role.COMPUTE, params
    )
    return accepted.task_id


def cluster_task(services: Services, who: Principal, task_type: TaskType, cluster_id: str) -> str:
    raw = {"Action": "ClusterOperation", "ClusterId": cluster_id}
    return services.operations.cluster_operation(who, ids.request_id(), task_type, cluster_id, raw).task_id


def add_task(services: Services, who: Principal, cluster_id: str, count: int, min_count: int = 0) -> str:
    spec = AddSpec(cluster_id, count, min_count, None, "", "", None, "manual", None, sync=False)
    return services.operations.add_nodes(who, ids.request_id(), spec, {"Action": "AddNodes"}).task_id


def run_to_end(engine: Engine) -> int:
    """Claim and run until nothing is due, as a worker thread does (run_many); the number of leases run."""
    runs = 0
    while leases := engine.claim(4):
        engine.run_many(leases)
        runs += len(leases)
    return runs


def step_of(task_type: TaskType, name: str) -> int:
    return [base(step) for step in plan_for(task_type)].index(name) + 1


# --- one step at a time -----------------------------------------------------------------------


def test_each_claim_runs_one_step_when_steps_take_time(build: Build) -> None:
    """With a step duration, a claim runs one step and gives the task up until the clock reaches its next
    step: current_step goes 1, 2, ... in order; the cluster is releasing from step 1; it ends deleted."""
    services = build(sim_step_seconds=2.0)
    clock = services.clock
    assert isinstance(clock, FakeClock)
    who = principal(services)
    cluster_id = seeded(services, who)
    task_id = cluster_task(services, who, TaskType.DELETE_CLUSTER, cluster_id)
    total = len(plan_for(TaskType.DELETE_CLUSTER))
    seen = []
    while True:
        [lease] = services.engine.claim(4)
        services.engine.run(lease)
        row = task_row(services, task_id)
        seen.append(row.current_step)
        if row.finished_at is not None:
            break
        assert row.lease_owner is None  # given up until its next step is due
        assert row.run_after == clock.now() + timedelta(seconds=2)
        assert row.lease_expires_at == clock.now() + timedelta(seconds=30)
        assert cluster_row(services, cluster_id).status == "releasing"
        assert services.engine.claim(4) == []  # not due yet
        clock.advance(2)
    assert seen == list(range(1, total + 1))
    assert (row.status, row.current_step, row.total_steps) == ("Success", total, total)
    assert (row.finished_at, row.lease_owner, row.run_after) == (clock.now(), None, None)
    cluster = cluster_row(services, cluster_id)
    assert (cluster.status, cluster.task_id, cluster.deleted_at) == ("releasing", None, clock.now())
    step = step_of(TaskType.DELETE_CLUSTER, NODE_STEP[TaskType.DELETE_CLUSTER])
    released = START + timedelta(seconds=2 * (step - 1))  # at the node step, on the simulated clock
    assert {n.deleted_at for n in hosts(services, cluster_id).values()} == {released}
    ids_ = sorted(n.id for n in hosts(services, cluster_id).values())
    assert provider_calls(services, task_id) == [(f"{task_id}:{step}", "DeleteInstances", ids_)]


def test_instant_steps_run_to_the_end_in_one_claim(build: Build) -> None:
    """With no step duration, one claim runs every step; the task ends Success with its finish time."""
    services = build()
    who = principal(services)
    cluster_id = seeded(services, who)
    task_id = cluster_task(services, who, TaskType.STOP_CLUSTER, cluster_id)
    assert run_to_end(services.engine) == 1
    row = task_row(services, task_id)
    assert (row.status, row.current_step, json.loads(row.errors)) == ("Success", row.total_steps, [])
    assert row.finished_at == START
    cluster = cluster_row(services, cluster_id)
    assert (cluster.status, cluster.task_id) == ("stopped", None)
    assert {(n.status, n.task_id) for n in hosts(services, cluster_id).values()} == {("stopped", None)}


# --- each operation's effects ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task_type", "before", "after", "action"),
    [
        (TaskType.STOP_COMPUTES, "running", "stopped", "StopInstances"),
        (TaskType.START_COMPUTES, "stopped", "running", "StartInstances"),
        (TaskType.RESET_COMPUTE, "stopped", "running", "ReInitDisks"),
        (TaskType.DELETE_COMPUTES, "running", None, "DeleteInstances"),
    ],
)
def test_node_operation_effects(
    build: Build, task_type: TaskType, before: str, after: str | None, action: str
) -> None:
    """A node operation calls the provider once at its node step with the targets, moves them to the
    operation's status (or deletes them), frees them, and leaves the other nodes alone."""
    services = build()
    who = principal(services)
    cluster_id = seeded(services, who, computes=3)
    found = hosts(services, cluster_id)
    targets = [found["compute0"].id, found["compute2"].id]
    with services.db.write() as conn:
        cluster_store.update_nodes(conn, targets, status=before)
    task_id = node_task(services, who, task_type, cluster_id, targets)
    run_to_end(services.engine)
    row = task_row(services, task_id)
    assert (row.status, json.loads(row.result)) == ("Success", {})
    step = step_of(task_type, NODE_STEP[task_type])
    assert provider_calls(services, task_id) == [(f"{task_id}:{step}", action, sorted(targets))]
    found = hosts(services, cluster_id)
    for name in ("compute0", "compute2"):
        node = found[name]
        assert node.task_id is None
        if after is None:
            assert node.deleted_at == START
        else:
            assert (node.status, node.deleted_at) == (after, None)
    assert (found["compute1"].status, found["compute1"].deleted_at) == ("running", None)
    assert cluster_row(services, cluster_id).status == "running"


def test_delete_nodes_without_release_untracks_the_instances(build: Build) -> None:
    """DeleteNodes with ReleaseInstance=false asks the provider to untrack, not delete, the instances."""
    services = build()
    who = principal(services)
    cluster_id = seeded(services, who)
    target = hosts(services, cluster_id)["compute1"].id
    task_id = node_task(
        services, who, TaskType.DELETE_COMPUTES, cluster_id, [target], ReleaseInstance="False"
    )
    run_to_end(services.engine)
    [(_, action, instance_ids)] = provider_calls(services, task_id)
    assert (action, instance_ids) == ("UntrackInstances", [target])
    assert hosts(services, cluster_id)["compute1"].deleted_at == START


def test_add_nodes_result_lists_the_new_running_instances(build: Build) -> None:
    """AddNodes runs the new instances, and its Result lists each with its Ip, Hostname and role."""
    services = build()
    who = principal(services)
    cluster_id = seeded(services, who, computes=1)
    task_id = add_task(services, who, cluster_id, 2)
    run_to_end(services.engine)
    row = task_row(services, task_id)
    assert row.status == "Success"
    found = hosts(services, cluster_id)
    assert {found[name].status for name in found} == {"running"}
    instances = json.loads(row.result)["Instances"]
    expected = [
        {"InstanceId": n.id, "Ip": n.private_ip, "Hostname": n.hostname, "role": "compute"}
        for n in (found[name] for name in sorted(found))
        if n.hostname.startswith("compute") and n.hostname != "compute0"
    ]
    assert sorted(instances, key=lambda i: i["Hostname"]) == expected
    assert len(expected) == 2
    [(_, action, instance_ids)] = provider_calls(services, task_id)
    assert (action, instance_ids) == ("RunInstances", sorted(i["InstanceId"] for i in expected))


def test_start_cluster_is_init_during_and_running_after(build: Build) -> None:
    """StartCluster puts the cluster in init at its first step and running at the end."""
    services = build(sim_step_seconds=1.0)
    clock = services.clock
    assert isinstance(clock, FakeClock)
    who = principal(services)
    cluster_id = seeded(services, who, status="stopped")
    with services.db.write() as conn:
        cluster_store.update_nodes(
            conn, [n.id for n in hosts(services, cluster_id).values()], status="stopped"
        )
    task_id = cluster_task(services, who, TaskType.START_CLUSTER, cluster_id)
    [lease] = services.engine.claim()
    services.engine.run(lease)
    assert cluster_row(services, cluster_id).status == "init"
    while task_row(services, task_id).finished_at is None:
        clock.advance(1)
        run_to_end(services.engine)
    assert cluster_row(services, cluster_id).status == "running"
    assert {n.status for n in hosts(services, cluster_id).values()} == {"running"}


# --- faults and capacity ------------------------------------------------------------------------


def test_injected_step_failure_ends_the_task_at_that_step(build: Build) -> None:
    """fail_step=3: the task ends Failed at step 3 with EcsError; nothing was stopped; the cluster and the
    nodes not yet at their target are in exception and freed."""
    services = build(sim_faults="StopCluster.fail_step=3")
    who = principal(services)
    cluster_id = seeded(services, who)
    task_id = cluster_task(services, who, TaskType.STOP_CLUSTER, cluster_id)
    run_to_end(services.engine)
    row = task_row(services, task_id)
    assert (row.status, row.current_step) == ("Failed", 3)
    message = "An error occurred while calling the ECS API operation (step 3)."
    assert json.loads(row.errors) == [{"Code": "EcsError", "Message": message}]
    assert provider_calls(services, task_id) == []
    cluster = cluster_row(services, cluster_id)
    assert (cluster.status, cluster.task_id) == ("exception", None)
    assert {(n.status, n.task_id) for n in hosts(services, cluster_id).values()} == {("exception", None)}


def test_every_node_failing_fails_the_task_with_an_error_per_node(build: Build) -> None:
    """node_fail_rate=1: each target gets a NodeFailed error naming it and ends in exception; the provider
    is called with no instance; all targets failed, so the task is Failed."""
    services = build(sim_faults="StopNodes.node_fail_rate=1")
    who = principal(services)
    cluster_id = seeded(services, who)
    found = hosts(services, cluster_id)
    targets = [found["compute0"].id, found["compute1"].id]
    task_id = node_task(services, who, TaskType.STOP_COMPUTES, cluster_id, targets)
    run_to_end(services.engine)
    row = task_row(services, task_id)
    assert row.status == "Failed"
    errors = sorted(json.loads(row.errors), key=lambda e: e["InstanceId"])
    by_id = {found[name].id: name for name in ("compute0", "compute1")}
    assert errors == [
        {"Code": "NodeFailed", "Message": f"StopInstances failed on {by_id[i]}", "InstanceId": i}
        for i in sorted(targets)
    ]
    [(_, action, instance_ids)] = provider_calls(services, task_id)
    assert (action, instance_ids) == ("StopInstances", [])
    assert {hosts(services, cluster_id)[name].status for name in by_id.values()} == {"exception"}


def test_some_nodes_failing_is_partial_fail(build: Build) -> None:
    """Some targets failing and some not: PartialFail; the failed ones in exception, the others moved."""
    services = build(sim_faults="StopNodes.node_fail_rate=0.5", sim_seed=7)
    who = principal(services)
    cluster_id = seeded(services, who, computes=8)
    found = hosts(services, cluster_id)
    computes = sorted(name for name in found if name.startswith("compute"))
    provider = services.engine.provider
    failing = [name for name in computes if provider.node_fails(TaskType.STOP_COMPUTES, name)]
    assert 0 < len(failing) < len(computes), failing  # the seed gives a mix
    task_id = node_task(services, who, TaskType.STOP_COMPUTES, cluster_id, [found[n].id for n in computes])
    run_to_end(services.engine)
    row = task_row(services, task_id)
    assert row.status == "PartialFail"
    assert sorted(e["InstanceId"] for e in json.loads(row.errors)) == sorted(found[n].id for n in failing)
    after = hosts(services, cluster_id)
    assert {n: after[n].status for n in computes} == {
        n: "exception" if n in failing else "stopped" for n in computes
    }


def test_add_nodes_beyond_capacity_fails_at_the_quota_check(build: Build) -> None:
    """More instances than the account may have (and more than MinCount allows): InsufficientCapacity at
    the quota step, with the figures; no instance is run and the Result lists none."""
    services = build(sim_capacity=1)
    who = principal(services)
    cluster_id = seeded(services, who, computes=0)
    task_id = add_task(services, who, cluster_id, 3, min_count=2)
    run_to_end(services.engine)
    row = task_row(services, task_id)
    assert (row.status, row.current_step) == ("Failed", step_of(TaskType.ADD_COMPUTES, "check-quota"))
    message = "1 instances available, MinCount 2."
    assert json.loads(row.errors) == [{"Code": "InsufficientCapacity", "Message": message}]
    assert json.loads(row.result) == {"Instances": []}
    assert provider_calls(services, task_id) == []


# --- leases --------------------------------------------------------------------------------------


def other_engine(
    services: Services,
    owner: str,
    max_attempts: int = 3,
    *,
    clock: Clock | None = None,
    provider: Provider | None = None,
) -> Engine:
    """Another engine on the same store (by default the same provider and clock), 30 s leases."""
    return Engine(
        services.db,
        provider or services.engine.provider,
        clock or services.clock,
        owner=owner,
        lease_seconds=30.0,
        max_attempts=max_attempts,
        max_step_seconds=600.0,
    )


def test_expired_lease_is_taken_over_and_the_old_holder_is_fenced(build: Build) -> None:
    """A lease past its expiry is claimed by another engine (one lost attempt); the first holder's step is
    then refused and rolled back, and the task ends once, with one provider call."""
    services = build()
    clock = services.clock
    assert isinstance(clock, FakeClock)
    who = principal(services)
    cluster_id = seeded(services, who)
    task_id = node_task(
        services, who, TaskType.STOP_COMPUTES, cluster_id, [hosts(services, cluster_id)["compute0"].id]
    )
    [first] = services.engine.claim()
    assert (first.task_id, first.lost_attempts, first.current_step) == (task_id, 0, 0)
    assert other_engine(services, "b").claim() == []  # held, not expired
    clock.advance(31)
    second_engine = other_engine(services, "b")
    [second] = second_engine.claim()
    assert (second.lost_attempts, second.token) == (1, first.token + 1)
    services.engine.run(first)
    row = task_row(services, task_id)
    assert (row.current_step, row.lease_owner, row.finished_at) == (0, "b", None)
    assert provider_calls(services, task_id) == []
    second_engine.run(second)
    row = task_row(services, task_id)
    assert (row.status, row.lost_attempts) == ("Success", 1)
    assert len(provider_calls(services, task_id)) == 1


def test_tasks_run_side_by_side_commit_every_step_and_a_taken_over_one_is_fenced(build: Build) -> None:
    """run_many (a worker thread's claim of several tasks): each task's steps are committed one by one, as
    one event each with the step's CurrentStep, even those recorded together at a round's end; a task of
    the batch taken over by another engine meanwhile is refused at its first step and left to that engine,
    while the others run to their ends."""
    services = build()
    clock = services.clock
    assert isinstance(clock, FakeClock)
    who = principal(services)
    task_ids = [cluster_task(services, who, TaskType.STOP_CLUSTER, seeded(services, who)) for _ in range(3)]
    first = services.engine.claim(3)
    assert len(first) == 3
    clock.advance(31)
    second_engine = other_engine(services, "b")
    [taken] = second_engine.claim(1, task_id=task_ids[1])
    services.engine.run_many(first)
    total = len(plan_for(TaskType.STOP_CLUSTER))
    for task_id in (task_ids[0], task_ids[2]):
        row = task_row(services, task_id)
        assert (row.status, row.current_step, row.lost_attempts) == ("Success", total, 0)
    row = task_row(services, task_ids[1])
    assert (row.current_step, row.lease_owner, row.finished_at) == (0, "b", None)
    assert provider_calls(services, task_ids[1]) == []
    second_engine.run_many([taken])
    row = task_row(services, task_ids[1])
    # Its steps were recorded by the batched statement too, which forgave its lost lease (lost_streak).
    assert (row.status, row.current_step, row.lost_attempts, row.lost_streak) == ("Success", total, 1, 0)
    with services.db.read() as conn:
        seen = conn.execute(
            select(task_events.c.task_id, task_events.c.current_step)
            .where(task_events.c.kind != "created")
            .order_by(task_events.c.id)
        ).all()
    for task_id in task_ids:
        assert [step for who_, step in seen if who_ == task_id] == list(range(1, total + 1)), task_id


class _TakeoverClock(FakeClock):
    """The first engine's clock: its `at`-th reading runs `takeover` first (once)."""

    def __init__(self, at: int, takeover: Callable[[], None]) -> None:
        super().__init__()
        self.readings = 0
        self.at = at
        self.takeover = takeover

    def now(self) -> datetime:
        self.readings += 1
        if self.readings == self.at:
            self.takeover()
        return super().now()


def test_a_step_recorded_with_its_round_is_refused_alone_when_its_lease_was_taken_over(build: Build) -> None:
    """A task taken over while its no-effect step waits for the end of its round: that step is refused
    and leaves neither its progress nor an event, the round's other steps are recorded, and the new holder
    goes on from the last step the first one committed; each step of each task is committed once."""
    services = build()
    who = principal(services)
    task_ids = [cluster_task(services, who, TaskType.STOP_CLUSTER, seeded(services, who)) for _ in range(3)]
    second_engine = other_engine(services, "b")
    taken: list[Any] = []

    def takeover() -> None:
        assert isinstance(services.clock, FakeClock)
        services.clock.advance(31)  # the first engine's leases have expired for the second one
        taken.extend(second_engine.claim(1, task_id=victim[0]))

    victim: list[str] = []
    # Readings: the claim, then one per step; the 7th is the round-2 step of the batch's last task, after
    # the first task's round-2 step (no effect) was run and deferred.
    first_engine = other_engine(services, "a", clock=_TakeoverClock(7, takeover))
    leases = first_engine.claim(3)
    victim.append(leases[0].task_id)
    counted = metrics.get().steps.labels(TaskType.STOP_CLUSTER.value)
    before = counted._value.get()
    first_engine.run_many(leases)
    assert len(taken) == 1
    total = len(plan_for(TaskType.STOP_CLUSTER))
    # Only the steps that were committed count: the others' all, and the taken task's first.
    assert counted._value.get() - before == 2 * total + 1
    row = task_row(services, victim[0])
    assert (row.current_step, row.lease_owner, row.finished_at) == (1, "b", None)
    for task_id in task_ids:
        if task_id != victim[0]:
            assert task_row(services, task_id).status == "Success"
    second_engine.run_many(taken)
    row = task_row(services, victim[0])
    assert (row.status, row.current_step, row.lost_attempts) == ("Success", total, 1)
    with services.db.read() as conn:
        seen = conn.execute(
            select(task_events.c.current_step)
            .where(task_events.c.kind != "created", task_events.c.task_id == victim[0])
            .order_by(task_events.c.id)
        ).scalars()
        assert list(seen) == list(range(1, total + 1))


def test_lease_lost_max_attempts_times_fails_the_task(build: Build) -> None:
    """The claim that finds a task's lease lost max_attempts times ends it Failed with TaskLost and frees
    its nodes; it is not handed out to run."""
    services = build()
    clock = services.clock
    assert isinstance(clock, FakeClock)
    who = principal(services)
    cluster_id = seeded(services, who)
    target = hosts(services, cluster_id)["compute0"].id
    task_id = node_task(services, who, TaskType.STOP_COMPUTES, cluster_id, [target])
    assert len(services.engine.claim()) == 1
    clock.advance(31)
    assert other_engine(services, "b", max_attempts=1).claim() == []
    row = task_row(services, task_id)
    assert (row.status, row.lost_attempts, row.lease_owner) == ("Failed", 1, None)
    errors = json.loads(row.errors)
    total = len(plan_for(TaskType.STOP_COMPUTES))
    message = f"The task's worker was lost 1 times in a row at step 1 of {total}."
    assert errors == [{"Code": "TaskLost", "Message": message}]
    node = hosts(services, cluster_id)["compute0"]
    assert (node.status, node.task_id) == ("exception", None)


def test_a_recorded_step_forgives_the_leases_lost_before_it(build: Build) -> None:
    """max_attempts bounds the leases lost in a row: a task lost, then one of its steps recorded, then
    lost again runs on to Success with max_attempts=2 (two leases lost in its life); a task lost twice
    with no step recorded in between ends Failed (TaskLost) at the claim that finds it so."""
    services = build()
    clock = services.clock
    assert isinstance(clock, FakeClock)
    who = principal(services)
    cluster_id = seeded(services, who)
    nodes_ = hosts(services, cluster_id)
    progressing, stalled = (
        node_task(services, who, TaskType.STOP_COMPUTES, cluster_id, [nodes_[name].id])
        for name in ("compute0", "compute1")
    )
    assert len(other_engine(services, "a", max_attempts=2).claim(2)) == 2
    clock.advance(31)
    second = other_engine(services, "b", max_attempts=2)
    taken = {lease.task_id: lease for lease in second.claim(2)}
    assert {t: (lease.lost_attempts, lease.lost_streak) for t, lease in taken.items()} == {
        progressing: (1, 1),
        stalled: (1, 1),
    }
    second.step_once(taken[progressing])  # one step recorded, its lease given back
    row = task_row(services, progressing)
    assert (row.current_step, row.lost_streak) == (1, 0)
    clock.advance(31)  # the lease on `stalled` expires too
    [again] = other_engine(services, "c", max_attempts=2).claim(2)  # a given-back lease is not lost
    assert (again.task_id, again.lost_attempts, again.lost_streak) == (progressing, 1, 0)
    row = task_row(services, stalled)
    total = len(plan_for(TaskType.STOP_COMPUTES))
    assert (row.status, row.lost_attempts, row.lost_streak, row.current_step) == ("Failed", 2, 2, 0)
    message = f"The task's worker was lost 2 times in a row at step 1 of {total}."
    assert json.loads(row.errors) == [{"Code": "TaskLost", "Message": message}]
    clock.advance(31)
    last = other_engine(services, "d", max_attempts=2)
    [lease] = last.claim()
    assert (lease.task_id, lease.lost_attempts, lease.lost_streak) == (progressing, 2, 1)
    last.run(lease)
    row = task_row(services, progressing)
    assert (row.status, row.current_step, row.lost_attempts, row.lost_streak) == ("Success", total, 2, 0)


class BrokenCloud(SimulatedCloud):
    """The simulated cloud, but its provider call fails with an error nobody expects."""

    def call(self, conn: Connection, token: str, action: str, instance_ids: list[str]) -> None:
        raise RuntimeError("boom")


def test_unexpected_error_in_a_step_fails_the_task_as_unknown_error(build: Build) -> None:
    """An exception no step expects ends the task Failed with UnknownError, its nodes freed."""
    services = build()
    who = principal(services)
    cluster_id = seeded(services, who)
    target = hosts(services, cluster_id)["compute0"].id
    task_id = node_task(services, who, TaskType.STOP_COMPUTES, cluster_id, [target])
    broken = BrokenCloud(
        services.clock, step_seconds=0, jitter=0, capacity=10, seed=0, faults=parse_faults("")
    )
    engine = other_engine(services, "broken", provider=broken)
    [lease] = engine.claim()
    engine.run(lease)
    row = task_row(services, task_id)
    assert row.status == "Failed"
    assert json.loads(row.errors) == [{"Code": "UnknownError", "Message": "An unknown error occurred."}]
    assert hosts(services, cluster_id)["compute0"].task_id is None


def test_drive_runs_one_task_to_its_end_or_gives_up_in_time(build: Build) -> None:
    """drive: True once the task has ended; False when its next step is not due before the timeout."""
    services = build()
    who = principal(services)
    cluster_id = seeded(services, who)
    done = cluster_task(services, who, TaskType.STOP_CLUSTER, cluster_id)
    assert services.engine.drive(done, timeout=30)
    assert task_row(services, done).status == "Success"
    slow = build(sim_step_seconds=60.0)
    cluster_id = seeded(slow, who, computes=1)
    pending = cluster_task(slow, who, TaskType.STOP_CLUSTER, cluster_id)
    assert not slow.engine.drive(pending, timeout=0.3)
    assert task_row(slow, pending).current_step == 1
