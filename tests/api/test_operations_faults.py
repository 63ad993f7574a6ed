"""Injected faults and determinism; conflicts and SIGKILL on slow steps; archive delay; no grace.

Per backend: a `faulty` server (instant steps, seed 7, FAULTS, ARCHIVE_DELAY=2, DELETED_CLUSTER_GRACE=0)
and a `slow` one (0.3 s steps, 2 s leases) whose tasks are still running when the next call comes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from hpcplane.clock import SystemClock
from hpcplane.domain.plans import PLANS
from hpcplane.domain.tasks import TaskType
from hpcplane.providers.faults import parse_faults
from hpcplane.providers.simulated import SimulatedCloud
from hpcplane.store.tables import tasks
from tests.api.test_operations import (
    BACKENDS,
    STARTUP,
    check_request,
    cluster_status,
    instances,
    new_server,
    nodes_by_host,
    one_task,
    provider_calls,
    refused,
    task_count,
    tasks_of,
    wait_task,
)
from tests.support.families import account, seed
from tests.support.live import LiveServer
from tests.support.sdkclients import SdkError

SEED = 7
FAULTS = "AddNodes.node_fail_rate=0.5;ResetNodes.node_fail_rate=1;StopCluster.fail_step=3"
COMPUTES = [f"compute{i}" for i in range(8)]


def expected_failures(task_type: TaskType, hostnames: list[str]) -> list[str]:
    """The hostnames the simulated cloud fails for this seed and spec, asked of the provider itself."""
    cloud = SimulatedCloud(
        SystemClock(), step_seconds=0, jitter=0, capacity=1000, seed=SEED, faults=parse_faults(FAULTS)
    )
    return [host for host in hostnames if cloud.node_fails(task_type, host)]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@dataclass
class Slow:
    """The slow server of this backend; the SIGKILL test replaces it with its restarted self."""

    server: LiveServer
    settings: dict[str, str]


@pytest.fixture(scope="module")
def servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, backend: str
) -> Iterator[tuple[LiveServer, Slow]]:
    """The faulty and the slow server of the backend, started side by side."""
    faulty = new_server(
        request,
        tmp_path_factory,
        backend,
        "faulty",
        sim_step_seconds="0",
        sim_seed=str(SEED),
        sim_faults=FAULTS,
        archive_delay="2",
        deleted_cluster_grace="0",
    )
    settings = {"sim_step_seconds": "0.3", "sim_jitter": "0", "lease_seconds": "2"}
    slow = Slow(new_server(request, tmp_path_factory, backend, "slow", **settings), settings)
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda live: live.start(timeout=STARTUP), (faulty, slow.server)))
        yield faulty, slow
    finally:
        faulty.stop()
        slow.server.stop()


@pytest.fixture(scope="module")
def faulty(servers: tuple[LiveServer, Slow]) -> LiveServer:
    """Instant steps, seed 7, FAULTS; ended tasks stay current 2 s; a deleted cluster's tasks vanish."""
    return servers[0]


@pytest.fixture(scope="module")
def slow(servers: tuple[LiveServer, Slow]) -> Slow:
    """Steps of 0.3 s and leases of 2 s: a 35-step StopCluster runs for 10 s."""
    return servers[1]


def add_nodes(
    server: LiveServer, key: dict[str, str], cluster_id: str, count: int, kind: str = "tea-v3"
) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    """AddNodes and wait for its end: (InstanceIds, the call's answer, the ended task)."""
    body = server.call(kind, key, "AddNodes", ClusterId=cluster_id, Count=count)
    ids: list[str] = body["InstanceIds"]["InstanceId"]  # type: ignore[index]
    task, _ = wait_task(server, key, cluster_id, str(body["TaskId"]), kind=kind)
    return ids, body, task


# --- node_fail_rate -------------------------------------------------------------------------------


def test_some_nodes_failing_is_partial_fail(faulty: LiveServer) -> None:
    """node_fail_rate=0.5: PartialFail, one NodeFailed Error per failed instance, those nodes exception."""
    failing = expected_failures(TaskType.ADD_COMPUTES, COMPUTES)
    assert 0 < len(failing) < len(COMPUTES)  # the seed gives a mix, or this test proves nothing
    key = account(faulty)
    cluster_id = seed(faulty, key)
    ids, body, task = add_nodes(faulty, key, cluster_id, len(COMPUTES))
    assert (task["Status"], task["TaskType"]) == ("PartialFail", "AddComputes")
    assert task["CurrentStep"] == task["TotalSteps"] == len(PLANS[TaskType.ADD_COMPUTES])
    check_request(task, body, key, cluster_id)
    found = nodes_by_host(faulty, key, cluster_id)
    assert sorted(found[host]["Id"] for host in COMPUTES) == sorted(ids)
    by_id = {found[host]["Id"]: host for host in COMPUTES}
    errors = json.loads(task["Errors"])
    assert sorted(by_id[e["InstanceId"]] for e in errors) == sorted(failing)
    for error in errors:
        assert error["Code"] == "NodeFailed"
        assert by_id[error["InstanceId"]] in error["Message"]
    for host in COMPUTES:
        assert found[host]["Status"] == ("exception" if host in failing else "running"), host
    survivors = json.loads(task["Result"])["Instances"]
    assert sorted(i["Hostname"] for i in survivors) == sorted(set(COMPUTES) - set(failing))
    assert cluster_status(faulty, key, cluster_id) == "running"


def test_same_seed_same_failures(faulty: LiveServer) -> None:
    """The same seed and the same sequence fail the same hostnames, in any cluster, through any SDK."""
    key = account(faulty)
    seen = []
    for kind in ("legacy", "tea-v1"):
        cluster_id = seed(faulty, key)
        _, _, task = add_nodes(faulty, key, cluster_id, 5, kind)
        add_nodes(faulty, key, cluster_id, 3, kind)  # compute5..7
        found = nodes_by_host(faulty, key, cluster_id)
        assert task["Status"] == "PartialFail"
        seen.append(sorted(host for host in COMPUTES if found[host]["Status"] == "exception"))
    assert seen[0] == seen[1] == sorted(expected_failures(TaskType.ADD_COMPUTES, COMPUTES))


def test_every_node_failing_is_failed(faulty: LiveServer) -> None:
    """node_fail_rate=1: Failed with an Error per node; the nodes are in exception, and can be started."""
    key = account(faulty)
    cluster_id = seed(faulty, key, computes=3)
    before = nodes_by_host(faulty, key, cluster_id)
    targets = sorted(before[f"compute{i}"]["Id"] for i in range(3))
    body = faulty.call("legacy", key, "ResetNodes", ClusterId=cluster_id, Instance=instances(targets))
    task, _ = wait_task(faulty, key, cluster_id, str(body["TaskId"]), kind="legacy")
    assert (task["Status"], task["TaskType"]) == ("Failed", "ResetCompute")
    assert task["CurrentStep"] == task["TotalSteps"] == len(PLANS[TaskType.RESET_COMPUTE])
    errors = json.loads(task["Errors"])
    assert sorted(e["InstanceId"] for e in errors) == targets
    assert {e["Code"] for e in errors} == {"NodeFailed"}
    assert json.loads(task["Result"]) == {}
    after = nodes_by_host(faulty, key, cluster_id)
    assert {after[f"compute{i}"]["Status"] for i in range(3)} == {"exception"}
    assert (after["manager0"]["Status"], after["login0"]["Status"]) == ("running", "running")
    # exception is a state StartNodes accepts (StartNodes has no fault here).
    body = faulty.call("tea-v3", key, "StartNodes", ClusterId=cluster_id, Instance=instances(targets))
    assert wait_task(faulty, key, cluster_id, str(body["TaskId"]))[0]["Status"] == "Success"
    assert {n["Status"] for n in nodes_by_host(faulty, key, cluster_id).values()} == {"running"}


# --- fail_step ------------------------------------------------------------------------------------


def test_failing_step_ends_the_task_there(faulty: LiveServer) -> None:
    """fail_step=3: Failed at CurrentStep 3 with an EcsError; the cluster goes to exception, then restarts."""
    key = account(faulty)
    cluster_id = seed(faulty, key, computes=2)
    body = faulty.call("tea-v1", key, "StopCluster", ClusterId=cluster_id)
    task_id = str(body["TaskId"])
    task, _ = wait_task(faulty, key, cluster_id, task_id, kind="tea-v1")
    assert (task["Status"], task["CurrentStep"], task["TotalSteps"]) == ("Failed", 3, 35)
    (error,) = json.loads(task["Errors"])
    assert error["Code"] == "EcsError"
    assert "InstanceId" not in error
    assert json.loads(task["Result"]) == {}
    assert provider_calls(faulty, task_id) == []  # it failed before the step that stops instances
    assert cluster_status(faulty, key, cluster_id) == "exception"
    assert {n["Status"] for n in nodes_by_host(faulty, key, cluster_id).values()} == {"exception"}
    body = faulty.call("legacy", key, "StartCluster", ClusterId=cluster_id)
    assert wait_task(faulty, key, cluster_id, str(body["TaskId"]))[0]["Status"] == "Success"
    assert cluster_status(faulty, key, cluster_id) == "running"
    assert {n["Status"] for n in nodes_by_host(faulty, key, cluster_id).values()} == {"running"}


# --- HPCPLANE_ARCHIVE_DELAY and HPCPLANE_DELETED_CLUSTER_GRACE -------------------------------------


def test_archive_delay_keeps_an_ended_task_current(faulty: LiveServer) -> None:
    """With ARCHIVE_DELAY=2 an ended task is still in Archived=false right after it ends, later only in
    history (the order is asserted, not the seconds: the machine may be loaded)."""
    key = account(faulty)
    cluster_id = seed(faulty, key, computes=1)
    node = nodes_by_host(faulty, key, cluster_id)["compute0"]["Id"]
    body = faulty.call("tea-v3", key, "StopNodes", ClusterId=cluster_id, Instance=instances([node]))
    task_id = str(body["TaskId"])
    assert wait_task(faulty, key, cluster_id, task_id)[0]["Status"] == "Success"
    current = faulty.call("legacy", key, "ListTasks", ClusterId=cluster_id)
    assert [(t["TaskId"], t["Status"]) for t in tasks_of(current)] == [(task_id, "Success")]
    deadline = time.monotonic() + 30
    while faulty.call("tea-v3", key, "ListTasks", ClusterId=cluster_id)["TotalCount"] == 1:
        assert time.monotonic() < deadline, "the ended task never left the current list"
        time.sleep(0.1)
    history = faulty.call("tea-v1", key, "ListTasks", ClusterId=cluster_id, Archived=True)
    assert [t["TaskId"] for t in tasks_of(history)] == [task_id]


def list_error(server: LiveServer, key: dict[str, str], cluster_id: str, task_id: str) -> SdkError | None:
    try:
        one_task(server, key, cluster_id, task_id)
    except SdkError as error:
        return error
    return None


def test_no_grace_hides_a_deleted_clusters_tasks(faulty: LiveServer) -> None:
    """With DELETED_CLUSTER_GRACE=0, ListTasks answers ClusterNotFound once DeleteCluster has succeeded."""
    key = account(faulty)
    cluster_id = seed(faulty, key, computes=1)
    body = faulty.call("legacy", key, "DeleteCluster", ClusterId=cluster_id)
    task_id = str(body["TaskId"])
    deadline = time.monotonic() + 10
    while (error := list_error(faulty, key, cluster_id, task_id)) is None:
        assert time.monotonic() < deadline, "ListTasks still answers for the deleted cluster"
        time.sleep(0.05)
    assert (error.status, error.code) == (404, "ClusterNotFound")
    for archived in (False, True):
        error = refused(faulty, key, "ListTasks", kind="legacy", ClusterId=cluster_id, Archived=archived)
        assert (error.status, error.code) == (404, "ClusterNotFound")
    with faulty.services.db.read() as conn:
        status = conn.execute(select(tasks.c.status).where(tasks.c.task_id == task_id)).scalar_one()
    assert status == "Success"  # the task is kept, only not shown


# --- A server killed mid-task ----------------------------------------------------------------------


def test_operations_conflict_with_a_running_cluster_task(slow: Slow) -> None:
    """While StopCluster runs, every other operation on that cluster is ConflictOpt (403); others proceed."""
    server = slow.server
    key = account(server)
    cluster_id = seed(server, key, computes=2)
    compute = nodes_by_host(server, key, cluster_id)["compute0"]["Id"]
    task_id = str(server.call("tea-v3", key, "StopCluster", ClusterId=cluster_id)["TaskId"])
    attempts: list[tuple[str, dict[str, Any]]] = [
        ("StopCluster", {}),
        ("StartCluster", {}),
        ("DeleteCluster", {}),
        ("AddNodes", {"Count": 1}),
        ("StopNodes", {"Instance": instances([compute])}),
        ("DeleteNodes", {"Instance": instances([compute]), "Sync": True}),
    ]
    for index, (action, params) in enumerate(attempts):
        kind = ("tea-v3", "legacy", "tea-v1")[index % 3]
        error = refused(server, key, action, kind=kind, ClusterId=cluster_id, **params)
        assert (error.status, error.code) == (403, "ConflictOpt"), action
        assert error.message == "A conflicting operation is running."
    task = one_task(server, key, cluster_id, task_id)
    assert task["Status"] == "Processing"  # the refusals came while it ran
    assert task_count(server, key, cluster_id) == 1
    other = seed(server, key, computes=1)  # conflicts are per cluster
    body = server.call("legacy", key, "StopCluster", ClusterId=other)
    assert one_task(server, key, other, str(body["TaskId"]))["Status"] == "Processing"


def test_busy_node_conflicts_with_node_and_cluster_operations(slow: Slow) -> None:
    """A node in a running task refuses another node operation on it and any cluster-level operation."""
    server = slow.server
    key = account(server)
    cluster_id = seed(server, key, computes=2)
    found = nodes_by_host(server, key, cluster_id)
    busy, free = found["compute0"]["Id"], found["compute1"]["Id"]
    body = server.call("legacy", key, "ResetNodes", ClusterId=cluster_id, Instance=instances([busy]))
    task_id = str(body["TaskId"])
    attempts: list[tuple[str, dict[str, Any]]] = [
        ("StopNodes", {"Instance": instances([free, busy])}),
        ("DeleteNodes", {"Instance": instances([busy])}),
        ("StopCluster", {}),
        ("DeleteCluster", {}),
    ]
    for action, params in attempts:
        error = refused(server, key, action, ClusterId=cluster_id, **params)
        assert (error.status, error.code) == (403, "ConflictOpt"), action
    assert one_task(server, key, cluster_id, task_id)["Status"] == "Processing"
    assert task_count(server, key, cluster_id) == 1
    # The free node is not held by the refused StopNodes: it can be stopped on its own.
    server.call("tea-v3", key, "StopNodes", ClusterId=cluster_id, Instance=instances([free]))
    assert task_count(server, key, cluster_id) == 2


def test_task_finishes_after_sigkill_and_restart(slow: Slow) -> None:
    """SIGKILL the server mid-task, start it again on the same store: the task resumes to Success once."""
    first = slow.server
    key = account(first)
    cluster_id = seed(first, key)
    body = first.call("tea-v3", key, "AddNodes", ClusterId=cluster_id, Count=2)
    ids: list[str] = body["InstanceIds"]["InstanceId"]  # type: ignore[index]
    task_id = str(body["TaskId"])
    seen: list[int] = []
    deadline = time.monotonic() + 15
    while not seen or seen[-1] < 2:
        assert time.monotonic() < deadline, seen
        task = one_task(first, key, cluster_id, task_id)
        assert task["Status"] == "Processing"
        seen.append(task["CurrentStep"])
        time.sleep(0.05)
    assert first.process is not None
    first.process.kill()
    first.process.wait(10)
    with first.services.db.read() as conn:  # what the dead server left: a task half done
        row = conn.execute(
            select(tasks.c.status, tasks.c.current_step).where(tasks.c.task_id == task_id)
        ).one()
    assert row.status == "Processing"
    assert row.current_step >= seen[-1]  # the store kept at least the progress seen before the kill
    first.stop()
    again = LiveServer(first.home, first.env.get("HPCPLANE_DATABASE_URL"), **slow.settings)
    slow.server = again  # stopped by the fixture, whatever happens next
    again.start(timeout=STARTUP)
    task, _ = wait_task(again, key, cluster_id, task_id, seen=seen)
    assert (task["Status"], task["CurrentStep"]) == ("Success", 11)
    assert sorted(i["InstanceId"] for i in json.loads(task["Result"])["Instances"]) == sorted(ids)
    found = nodes_by_host(again, key, cluster_id)
    assert sorted(found) == ["compute0", "compute1", "login0", "manager0"]
    assert {n["Status"] for n in found.values()} == {"running"}
    assert provider_calls(again, task_id) == [("RunInstances", sorted(ids))]  # exactly once
