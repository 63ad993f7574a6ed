"""ListClusterLogs' lines as the engine writes them: a step's lines go in with its record, in its own
transaction, only if its fence held (a round's lines in one statement), in the order they were logged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select
from structlog.testing import capture_logs

from hpcplane.domain.tasks import TaskType
from hpcplane.providers.faults import parse_faults
from hpcplane.store import cluster_logs
from hpcplane.store.db import Driver
from hpcplane.store.tables import cluster_logs as cluster_logs_table
from tests.integration.conftest import FakeClock
from tests.integration.test_engine_outcomes import logs
from tests.integration.test_engine_steps import (
    BrokenCloud,
    Build,
    _TakeoverClock,
    build,
    cluster_task,
    hosts,
    node_task,
    other_engine,
    principal,
    seeded,
    task_row,
)

__all__ = ["build"]  # the fixture, shared with test_engine_steps


def stopped(task_id: str) -> list[tuple[str, str]]:
    return [
        ("info", f"Task {task_id} started (35 steps)."),
        ("info", "StopInstances: 4 of 4 nodes done."),
        ("info", f"Task {task_id} ended Success."),
    ]


def test_a_step_refused_at_its_rounds_end_leaves_no_line(build: Build) -> None:
    """StopCluster's first step only logs, so it is recorded with its round's other steps (advance_many)
    and its line with theirs; a task taken over before that round ends leaves neither its step nor its
    line, and the new holder's first step writes that line once."""
    services = build()
    who = principal(services)
    clusters = [seeded(services, who) for _ in range(3)]
    task_ids = [cluster_task(services, who, TaskType.STOP_CLUSTER, cluster_id) for cluster_id in clusters]
    second_engine = other_engine(services, "b")
    taken: list[Any] = []
    victim: list[str] = []

    def takeover() -> None:
        assert isinstance(services.clock, FakeClock)
        services.clock.advance(31)  # the first engine's leases have expired for the second one
        taken.extend(second_engine.claim(1, task_id=victim[0]))

    # Readings: the claim, then one per step: the 4th is the last task's first step, after the first
    # task's first step was run and deferred to the round's end.
    first_engine = other_engine(services, "a", clock=_TakeoverClock(4, takeover))
    leases = first_engine.claim(3)
    victim.append(leases[0].task_id)
    first_engine.run_many(leases)
    assert len(taken) == 1
    victim_cluster = clusters[task_ids.index(victim[0])]
    assert logs(services, victim_cluster) == []
    assert (task_row(services, victim[0]).current_step, task_row(services, victim[0]).lease_owner) == (0, "b")
    second_engine.run_many(taken)
    for task_id, cluster_id in zip(task_ids, clusters, strict=True):
        assert task_row(services, task_id).status == "Success"
        assert logs(services, cluster_id) == stopped(task_id), task_id


def test_each_way_of_recording_a_step_writes_its_lines_once(build: Build) -> None:
    """run (one step a transaction), run_many (rounds) and a task failed by the engine itself (_fail):
    every line once, in order."""
    services = build(sim_faults="StopCluster.fail_step=2")
    who = principal(services)
    alone, failed = seeded(services, who), seeded(services, who)
    alone_task = cluster_task(services, who, TaskType.STOP_CLUSTER, alone)
    failed_task = cluster_task(services, who, TaskType.STOP_CLUSTER, failed)
    leases = services.engine.claim(2)
    by_task = {lease.task_id: lease for lease in leases}
    services.engine.run(by_task[alone_task])
    services.engine.run_many([by_task[failed_task]])
    message = "An error occurred while calling the ECS API operation (step 2)."
    assert logs(services, failed) == [
        ("info", f"Task {failed_task} started (35 steps)."),
        ("error", f"Step 2 (stop-jobs): {message}"),
        ("error", f"Task {failed_task} ended Failed."),
    ]
    # fail_step applies to every StopCluster: the one run alone failed the same way.
    assert logs(services, alone)[-1] == ("error", f"Task {alone_task} ended Failed.")
    assert len(logs(services, alone)) == 3

    broken_cluster = seeded(services, who)
    target = hosts(services, broken_cluster)["compute0"].id
    broken_task = node_task(services, who, TaskType.STOP_COMPUTES, broken_cluster, [target])
    broken = BrokenCloud(
        services.clock, step_seconds=0, jitter=0, capacity=10, seed=0, faults=parse_faults("")
    )
    engine = other_engine(services, "x", provider=broken)
    [lease] = engine.claim()
    engine.run(lease)
    assert task_row(services, broken_task).status == "Failed"
    assert logs(services, broken_cluster)[-1] == ("error", f"Task {broken_task} ended Failed.")


def test_append_many_keeps_the_order_given_and_cuts_long_messages(build: Build) -> None:
    """Lines of several clusters in one statement: ids in the order given, the time exact to the
    microsecond, a message cut at the column's width."""
    services = build()
    who = principal(services)
    a, b = seeded(services, who), seeded(services, who)
    at = datetime(2026, 12, 3, 18, 0, 0, 123457, tzinfo=UTC)
    given = [
        (b, "StopCluster", "info", "second cluster first", at),
        (a, "StopCluster", "warn", "x" * 600, at + timedelta(microseconds=1)),
        (b, "StopCluster", "error", "second cluster again", at + timedelta(seconds=1)),
    ]
    with services.db.write() as conn:
        cluster_logs.append_many(Driver.within(conn), given)
    with services.db.read() as conn:
        rows = conn.execute(
            select(cluster_logs_table)
            .where(cluster_logs_table.c.cluster_id.in_([a, b]))
            .order_by(cluster_logs_table.c.id)
        ).all()
    assert [(r.cluster_id, r.level, r.message, r.created_at) for r in rows] == [
        (c, level, message[: cluster_logs.MESSAGE_WIDTH], when) for c, _, level, message, when in given
    ]


def test_the_workers_line_of_a_tasks_end_names_the_task_in_rounds_and_alone(build: Build) -> None:
    """The worker's own log (structlog, with the context it binds merged as in production): "task ended"
    carries the task's id whether the task ran alone (run) or in a round with others (run_many)."""
    services = build()
    who = principal(services)
    clusters = [seeded(services, who) for _ in range(3)]
    task_ids = [cluster_task(services, who, TaskType.STOP_CLUSTER, cluster_id) for cluster_id in clusters]
    leases = {lease.task_id: lease for lease in services.engine.claim(3)}
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as captured:
        services.engine.run(leases[task_ids[0]])
        services.engine.run_many([leases[task_ids[1]], leases[task_ids[2]]])
    ended = [(e.get("task_id"), e["status"]) for e in captured if e["event"] == "task ended"]
    assert sorted(ended, key=str) == sorted([(task_id, "Success") for task_id in task_ids], key=str)
