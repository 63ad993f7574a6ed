"""The nine asynchronous operations through the official SDKs: lifecycles, idempotency, rules, Sync.

Each backend gets one paced server (steps of 30 ms, so a running task can be watched); the faults,
slow (conflicts, SIGKILL) and configuration servers live in test_operations_faults.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select, update

from hpcplane.domain.plans import PLANS
from hpcplane.domain.tasks import TaskType
from hpcplane.store.tables import nodes, sim_calls
from tests.support.backends import PgDatabases
from tests.support.families import account, seed
from tests.support.live import LiveServer
from tests.support.sdkclients import SdkError

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
TERMINAL = frozenset({"Success", "Failed", "PartialFail"})
POLL = 0.03
PASSWORD = "Hpc-plane-123"
STARTUP = 60.0  # seconds a server may take to start on a loaded machine


# --- Helpers (also used by test_operations_faults.py) ---------------------------------------------


def new_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    backend: str,
    name: str,
    **settings: str,
) -> LiveServer:
    """A server (not started) on `backend` with its own home and, on PostgreSQL, its own database."""
    database_url = None
    if backend == "postgres":
        databases: PgDatabases = request.getfixturevalue("pg_databases")
        database_url = databases.create()
    home = tmp_path_factory.mktemp(f"{name}-{backend}")
    return LiveServer(home, database_url, **settings)


def set_status(server: LiveServer, cluster_id: str, hostnames: list[str], status: str) -> None:
    with server.services.db.write() as conn:
        conn.execute(
            update(nodes)
            .where(nodes.c.cluster_id == cluster_id, nodes.c.hostname.in_(hostnames))
            .values(status=status)
        )


def provider_calls(server: LiveServer, task_id: str) -> list[tuple[str, list[str]]]:
    """What the simulated cloud was asked during the task: (action, instance ids) per call."""
    with server.services.db.read() as conn:
        rows = conn.execute(
            select(sim_calls.c.action, sim_calls.c.instance_ids)
            .where(sim_calls.c.token.like(f"{task_id}:%"))
            .order_by(sim_calls.c.id)
        ).all()
    return [(row.action, sorted(json.loads(row.instance_ids))) for row in rows]


def tasks_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = body["Tasks"]
    return found


def one_task(
    server: LiveServer, key: dict[str, str], cluster_id: str, task_id: str, kind: str = "tea-v3"
) -> dict[str, Any]:
    body = server.call(kind, key, "ListTasks", ClusterId=cluster_id, TaskId=task_id)
    (task,) = tasks_of(body)
    assert task["TaskId"] == task_id
    return task


def wait_task(
    server: LiveServer,
    key: dict[str, str],
    cluster_id: str,
    task_id: str,
    *,
    kind: str = "tea-v3",
    timeout: float = 30.0,
    seen: list[int] | None = None,
) -> tuple[dict[str, Any], list[int]]:
    """Poll ListTasks by TaskId until the task ends; CurrentStep never goes down, TotalSteps never moves."""
    deadline = time.monotonic() + timeout
    steps = seen if seen is not None else []
    total = None
    while True:
        task = one_task(server, key, cluster_id, task_id, kind)
        assert not steps or task["CurrentStep"] >= steps[-1], (steps, task)
        assert total is None or task["TotalSteps"] == total, task
        total = task["TotalSteps"]
        steps.append(task["CurrentStep"])
        if task["Status"] in TERMINAL:
            return task, steps
        assert task["Status"] == "Processing", task
        assert time.monotonic() < deadline, f"task still running after {timeout}s: {task}"
        time.sleep(POLL)


def nodes_by_host(
    server: LiveServer, key: dict[str, str], cluster_id: str, kind: str = "tea-v3"
) -> dict[str, dict[str, Any]]:
    """The cluster's live nodes (ListNodes), by hostname."""
    body = server.call(kind, key, "ListNodes", ClusterId=cluster_id, PageSize=100)
    found: list[dict[str, Any]] = body["Nodes"]["NodeInfo"]  # type: ignore[index]
    assert body["TotalCount"] == len(found)
    return {node["HostName"]: node for node in found}


def cluster_status(server: LiveServer, key: dict[str, str], cluster_id: str, kind: str = "legacy") -> str:
    body = server.call(kind, key, "DescribeCluster", ClusterId=cluster_id)
    status: str = body["ClusterInfo"]["Status"]  # type: ignore[index]
    return status


def task_count(server: LiveServer, key: dict[str, str], cluster_id: str) -> int:
    """Every task of the cluster, current or history (ListTasks Archived=true)."""
    count: int = server.call("tea-v3", key, "ListTasks", ClusterId=cluster_id, Archived=True)["TotalCount"]  # type: ignore[assignment]
    return count


def refused(
    server: LiveServer, key: dict[str, str], action: str, kind: str = "tea-v3", **params: object
) -> SdkError:
    with pytest.raises(SdkError) as caught:
        server.call(kind, key, action, **params)
    return caught.value


def assert_invalid(error: SdkError, name: str) -> None:
    assert (error.status, error.code) == (400, "InvalidParams"), error
    assert error.message == f"The specified parameter {name} is invalid."


def instances(ids: list[str]) -> list[dict[str, str]]:
    """Instance.N.Id as the SDKs take it."""
    return [{"Id": instance_id} for instance_id in ids]


def check_request(task: dict[str, Any], body: dict[str, Any], key: dict[str, str], cluster_id: str) -> None:
    """Request is the call as JSON: requestId, uid, clusterId and the parameters, never a secret."""
    request = json.loads(task["Request"])
    assert request["requestId"] == body["RequestId"]
    assert request["uid"] == key["AccountId"]
    assert request["clusterId"] == cluster_id
    assert "Password" not in request
    assert PASSWORD not in task["Request"]
    assert not {"AccessKeyId", "Signature", "SignatureNonce", "Timestamp"} & set(request)


# --- Server ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def paced(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, backend: str
) -> Iterator[LiveServer]:
    """Steps of 30 ms without jitter; an account may hold 10 compute instances."""
    live = new_server(
        request,
        tmp_path_factory,
        backend,
        "paced",
        sim_step_seconds="0.03",
        sim_jitter="0",
        sim_capacity="10",
    )
    try:
        yield live.start(timeout=STARTUP)
    finally:
        live.stop()


# --- The documented flow ------------------------------------------------------------------------


def test_create_cluster_then_add_three_nodes(paced: LiveServer) -> None:
    """Done-when: CreateCluster, AddNodes(Count=3), ListTasks sees CurrentStep climb and the 3 instances."""
    key = account(paced)
    body = paced.call(
        "tea-v3",
        key,
        "CreateCluster",
        Name="first-cluster",
        Password=PASSWORD,
        ZoneId="cn-hangzhou-h",
        EcsOrder={"Manager": {"Count": 1}, "Login": {"Count": 1}, "Compute": {"Count": 1}},
    )
    assert set(body) == {"RequestId", "ClusterId", "TaskId"}
    cluster_id, task_id = body["ClusterId"], body["TaskId"]
    assert isinstance(cluster_id, str)
    assert isinstance(task_id, str)
    assert cluster_status(paced, key, cluster_id) in ("uninit", "creating", "init")  # not running yet
    task, steps = wait_task(paced, key, cluster_id, task_id, kind="tea-v1")
    assert (task["TaskType"], task["Status"]) == ("CreateCluster", "Success")
    assert task["TotalSteps"] == len(PLANS[TaskType.CREATE_CLUSTER]) == steps[-1]
    assert len(set(steps)) >= 3, steps  # watched while it ran
    assert json.loads(task["Errors"]) == []
    check_request(task, body, key, cluster_id)
    assert json.loads(task["Request"])["Name"] == "first-cluster"
    created = nodes_by_host(paced, key, cluster_id)
    assert sorted(created) == ["compute0", "login0", "manager0"]
    assert {n["Status"] for n in created.values()} == {"running"}
    assert sorted(json.loads(task["Result"])["Instances"], key=lambda i: i["Hostname"]) == [
        {"InstanceId": n["Id"], "Ip": n["IpAddress"], "Hostname": host, "role": host.rstrip("0")}
        for host, n in sorted(created.items())
    ]
    assert cluster_status(paced, key, cluster_id) == "running"
    assert provider_calls(paced, task_id) == [("RunInstances", sorted(n["Id"] for n in created.values()))]

    added = paced.call("legacy", key, "AddNodes", ClusterId=cluster_id, Count=3)
    assert set(added) == {"RequestId", "TaskId", "InstanceIds"}
    new_ids: list[str] = added["InstanceIds"]["InstanceId"]  # type: ignore[index]
    assert len(set(new_ids)) == 3
    assert all(i.startswith("i-") for i in new_ids)
    add_id = added["TaskId"]
    assert isinstance(add_id, str)
    joining = nodes_by_host(paced, key, cluster_id)
    assert {joining[f"compute{i}"]["Id"] for i in (1, 2, 3)} == set(new_ids)
    assert {joining[f"compute{i}"]["Status"] for i in (1, 2, 3)} <= {"uninit", "initing", "running"}
    task, steps = wait_task(paced, key, cluster_id, add_id, kind="tea-v3")
    assert (task["TaskType"], task["Status"]) == ("AddComputes", "Success")
    assert task["TotalSteps"] == len(PLANS[TaskType.ADD_COMPUTES]) == steps[-1]
    assert len(set(steps)) >= 2, steps
    result = json.loads(task["Result"])["Instances"]
    assert sorted(i["InstanceId"] for i in result) == sorted(new_ids)
    assert {i["role"] for i in result} == {"compute"}
    after = nodes_by_host(paced, key, cluster_id)
    assert sorted(after) == ["compute0", "compute1", "compute2", "compute3", "login0", "manager0"]
    for item in result:
        node = after[item["Hostname"]]
        assert (node["Id"], node["IpAddress"], node["Status"]) == (item["InstanceId"], item["Ip"], "running")
    request = json.loads(task["Request"])
    assert (request["ClusterId"], request["Count"]) == (cluster_id, "3")
    check_request(task, added, key, cluster_id)
    assert json.loads(task["Errors"]) == []


# --- Lifecycles ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    action: str
    task_type: TaskType
    kind: str
    seeded: str  # the seeded cluster's status
    stopped: tuple[str, ...]  # nodes set stopped before the call
    targets: tuple[str, ...] | None  # Instance.N.Id hostnames; None: a cluster operation (every node)
    node_after: str | None  # the targets' status after success; None: gone
    cluster_after: str | None  # None: the cluster is gone
    provider_action: str


ALL = ("compute0", "compute1", "compute2", "login0", "manager0")
C0_C1 = ("compute0", "compute1")
CASES = [
    Case("StartCluster", TaskType.START_CLUSTER, "tea-v1", "stopped", (), None,
         "running", "running", "StartInstances"),
    Case("StopCluster", TaskType.STOP_CLUSTER, "legacy", "running", (), None,
         "stopped", "stopped", "StopInstances"),
    Case("DeleteCluster", TaskType.DELETE_CLUSTER, "tea-v3", "running", (), None,
         None, None, "DeleteInstances"),
    Case("StartNodes", TaskType.START_COMPUTES, "legacy", "running", C0_C1, C0_C1,
         "running", "running", "StartInstances"),
    Case("StopNodes", TaskType.STOP_COMPUTES, "tea-v3", "running", (), C0_C1,
         "stopped", "running", "StopInstances"),
    Case("ResetNodes", TaskType.RESET_COMPUTE, "tea-v1", "running", ("compute1",), C0_C1,
         "running", "running", "ReInitDisks"),
    Case("DeleteNodes", TaskType.DELETE_COMPUTES, "legacy", "running", (), C0_C1,
         None, "running", "DeleteInstances"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[case.action for case in CASES])
def test_operation_lifecycle(paced: LiveServer, case: Case) -> None:
    """Call, answer {RequestId, TaskId}, CurrentStep climbs to TotalSteps, Success, and the effect shows."""
    key = account(paced)
    cluster_id = seed(paced, key, computes=3, status=case.seeded)
    set_status(paced, cluster_id, list(case.stopped), "stopped")
    before = nodes_by_host(paced, key, cluster_id)
    params: dict[str, Any] = {"ClusterId": cluster_id}
    targets = list(ALL if case.targets is None else case.targets)
    if case.targets is not None:
        params["Instance"] = instances([before[host]["Id"] for host in targets])
    body = paced.call(case.kind, key, case.action, **params)
    assert set(body) == {"RequestId", "TaskId"}
    task_id = body["TaskId"]
    assert isinstance(task_id, str)
    assert task_id != "Not Available"

    task, steps = wait_task(paced, key, cluster_id, task_id, kind=case.kind)
    assert (task["TaskType"], task["Status"], task["ClusterId"]) == (
        case.task_type.value,
        "Success",
        cluster_id,
    )
    assert task["TotalSteps"] == len(PLANS[case.task_type]) == steps[-1]
    assert json.loads(task["Result"]) == {}
    assert json.loads(task["Errors"]) == []
    check_request(task, body, key, cluster_id)
    request = json.loads(task["Request"])
    assert request["ClusterId"] == cluster_id
    for index, host in enumerate(case.targets or (), start=1):
        assert request[f"Instance.{index}.Id"] == before[host]["Id"]
    target_ids = sorted(before[host]["Id"] for host in targets)
    assert provider_calls(paced, task_id) == [(case.provider_action, target_ids)]

    if case.cluster_after is None:
        error = refused(paced, key, "DescribeCluster", ClusterId=cluster_id)
        assert (error.status, error.code) == (404, "ClusterNotFound")
        return
    assert cluster_status(paced, key, cluster_id) == case.cluster_after
    after = nodes_by_host(paced, key, cluster_id)
    for host in ALL:
        if host not in targets:
            assert after[host]["Status"] == before[host]["Status"], host  # untouched
        elif case.node_after is None:
            assert host not in after
        else:
            assert after[host]["Status"] == case.node_after, host


def test_deleted_cluster_stays_readable_in_list_tasks(paced: LiveServer) -> None:
    """After DeleteCluster succeeds the cluster is gone from the reads, but its tasks stay listable."""
    key = account(paced)
    cluster_id = seed(paced, key, computes=1)
    kept = seed(paced, key)
    body = paced.call("tea-v1", key, "DeleteCluster", ClusterId=cluster_id, ReleaseInstance=False)
    task_id = body["TaskId"]
    assert isinstance(task_id, str)
    task, _ = wait_task(paced, key, cluster_id, task_id)
    assert task["Status"] == "Success"
    listed = paced.call("legacy", key, "ListClusters")
    ids = [c["Id"] for c in listed["Clusters"]["ClusterInfoSimple"]]  # type: ignore[index]
    assert (ids, listed["TotalCount"]) == ([kept], 1)
    for action in ("DescribeCluster", "ListNodes", "StartCluster", "DeleteCluster"):
        error = refused(paced, key, action, ClusterId=cluster_id)
        assert (error.status, error.code) == (404, "ClusterNotFound"), action
    for kind in ("tea-v3", "legacy"):
        assert one_task(paced, key, cluster_id, task_id, kind)["Status"] == "Success"
        history = paced.call(kind, key, "ListTasks", ClusterId=cluster_id, Archived=True)
        assert [t["TaskId"] for t in tasks_of(history)] == [task_id]
    # ReleaseInstance=false keeps the instances: the cloud is told to untrack them, not to delete them.
    assert [action for action, _ in provider_calls(paced, task_id)] == ["UntrackInstances"]


# --- Archived over a real lifecycle --------------------------------------------------------------


def test_archived_follows_a_running_task(paced: LiveServer) -> None:
    """A running task is current (Archived=false); once it ends it is only in history (Archived=true)."""
    key = account(paced)
    cluster_id = seed(paced, key, computes=2)
    body = paced.call("tea-v3", key, "StopCluster", ClusterId=cluster_id)
    task_id = body["TaskId"]
    assert isinstance(task_id, str)
    current = paced.call("legacy", key, "ListTasks", ClusterId=cluster_id)
    assert current["TotalCount"] == 1
    (task,) = tasks_of(current)
    assert (task["TaskId"], task["Status"], task["TaskType"]) == (task_id, "Processing", "StopCluster")
    assert task["CurrentStep"] < task["TotalSteps"] == 35
    assert cluster_status(paced, key, cluster_id) in ("running", "stopped")
    wait_task(paced, key, cluster_id, task_id, kind="tea-v1")
    for kind in ("tea-v3", "tea-v1", "legacy"):
        current = paced.call(kind, key, "ListTasks", ClusterId=cluster_id, Archived=False)
        assert (tasks_of(current), current["TotalCount"]) == ([], 0)
        history = paced.call(kind, key, "ListTasks", ClusterId=cluster_id, Archived=True)
        assert [(t["TaskId"], t["Status"], t["CurrentStep"]) for t in tasks_of(history)] == [
            (task_id, "Success", 35)
        ]


# --- Idempotency ----------------------------------------------------------------------------------


def test_create_cluster_client_token(paced: LiveServer) -> None:
    """The same ClientToken and parameters give the same cluster and task; other parameters are refused."""
    key = account(paced)
    params: dict[str, Any] = {
        "Name": "idem",
        "Password": PASSWORD,
        "ClientToken": "create-token-1",
        "EcsOrder": {"Manager": {"Count": 1}, "Login": {"Count": 1}, "Compute": {"Count": 1}},
    }
    first = paced.call("tea-v3", key, "CreateCluster", **params)
    cluster_id, task_id = first["ClusterId"], first["TaskId"]
    assert isinstance(cluster_id, str)
    assert isinstance(task_id, str)
    for kind in ("tea-v3", "tea-v1", "legacy"):
        again = paced.call(kind, key, "CreateCluster", **params)
        assert (again["ClusterId"], again["TaskId"]) == (cluster_id, task_id), kind
        assert again["RequestId"] != first["RequestId"]
    error = refused(paced, key, "CreateCluster", **{**params, "Name": "idem-other"})
    assert (error.status, error.code) == (400, "IdempotentParameterMismatch")
    wait_task(paced, key, cluster_id, task_id)
    listed = paced.call("tea-v3", key, "ListClusters")
    assert listed["TotalCount"] == 1
    assert task_count(paced, key, cluster_id) == 1
    assert len(nodes_by_host(paced, key, cluster_id)) == 3
    # The token belongs to the account: another account with the same token gets its own cluster.
    other = account(paced)
    theirs = paced.call("tea-v3", other, "CreateCluster", **params)
    assert theirs["ClusterId"] != cluster_id


def test_client_token_with_another_password_is_a_mismatch(paced: LiveServer) -> None:
    """Password is a parameter too: a token reused with another Password must not get the first cluster."""
    key = account(paced)
    params: dict[str, Any] = {"Name": "idem-secret", "Password": PASSWORD, "ClientToken": "create-token-2"}
    first = paced.call("tea-v3", key, "CreateCluster", **params)
    error = refused(paced, key, "CreateCluster", kind="legacy", **{**params, "Password": "Other-pass-123"})
    assert (error.status, error.code) == (400, "IdempotentParameterMismatch")
    assert "Other-pass-123" not in json.dumps(error.data)
    assert paced.call("tea-v3", key, "ListClusters")["TotalCount"] == 1
    wait_task(paced, key, str(first["ClusterId"]), str(first["TaskId"]))


def test_add_nodes_client_token(paced: LiveServer) -> None:
    """AddNodes with a used ClientToken: the first TaskId and InstanceIds, and no node added twice."""
    key = account(paced)
    cluster_id = seed(paced, key, computes=1)
    params: dict[str, Any] = {"ClusterId": cluster_id, "Count": 2, "ClientToken": "add-token-1"}
    first = paced.call("legacy", key, "AddNodes", **params)
    task_id = first["TaskId"]
    assert isinstance(task_id, str)
    again = paced.call("tea-v3", key, "AddNodes", **params)  # while the first still runs
    assert (again["TaskId"], again["InstanceIds"]) == (task_id, first["InstanceIds"])
    wait_task(paced, key, cluster_id, task_id)
    after = paced.call("tea-v1", key, "AddNodes", **params)  # and after it ended
    assert (after["TaskId"], after["InstanceIds"]) == (task_id, first["InstanceIds"])
    error = refused(paced, key, "AddNodes", **{**params, "Count": 3})
    assert (error.status, error.code) == (400, "IdempotentParameterMismatch")
    assert task_count(paced, key, cluster_id) == 1
    assert sorted(nodes_by_host(paced, key, cluster_id)) == [
        "compute0",
        "compute1",
        "compute2",
        "login0",
        "manager0",
    ]


# --- Refusals: parameters, statuses, tenants (conflicts: test_operations_faults.py) --------------------


def test_invalid_parameters_are_named_and_change_nothing(paced: LiveServer) -> None:
    """Each bad parameter is InvalidParams naming it, and a refused call creates no task nor node."""
    key = account(paced)
    cluster_id = seed(paced, key, computes=2)
    before = nodes_by_host(paced, key, cluster_id)
    c0, c1 = before["compute0"]["Id"], before["compute1"]["Id"]
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("Count", "AddNodes", {"Count": 0}),
        ("Count", "AddNodes", {"Count": 100}),
        ("Count", "AddNodes", {}),
        ("MinCount", "AddNodes", {"Count": 2, "MinCount": 3}),
        ("Instance.2.Id", "StopNodes", {"Instance": instances([c0, "i-nosuchnode"])}),
        ("Instance.1.Id", "DeleteNodes", {"Instance": instances([before["manager0"]["Id"]])}),
        ("Instance.1.Id", "ResetNodes", {"Instance": instances([])}),
        ("Instance.101.Id", "StartNodes", {"Instance": instances([c0, c1] * 50 + [c0])}),
        ("Instance.1.Id", "StopNodes", {"Instance": instances([c0]), "Role": "Login"}),
        ("Role", "StartNodes", {"Instance": instances([c0]), "Role": "Boss"}),
        ("HostNamePrefix", "AddNodes", {"Count": 1, "HostNamePrefix": "bad_name"}),
        ("CreateMode", "AddNodes", {"Count": 1, "CreateMode": "magic"}),
        ("ClientToken", "AddNodes", {"Count": 1, "ClientToken": "t" * 65}),
    ]
    kinds = ("tea-v3", "tea-v1", "legacy")
    for index, (name, action, params) in enumerate(cases):
        kind = kinds[index % len(kinds)]
        error = refused(paced, key, action, kind=kind, ClusterId=cluster_id, **params)
        assert_invalid(error, name)
    ecs = {"Manager": {"Count": 1}, "Login": {"Count": 1}}
    error = refused(paced, key, "CreateCluster", kind="legacy", Name="no-secret", EcsOrder=ecs)
    assert_invalid(error, "Password")
    error = refused(paced, key, "CreateCluster", Name="x", Password=PASSWORD, EcsOrder=ecs)
    assert_invalid(error, "Name")
    error = refused(
        paced, key, "CreateCluster", kind="tea-v1", Name="weak", Password="password", EcsOrder=ecs
    )
    assert_invalid(error, "Password")
    error = refused(
        paced, key, "CreateCluster", Name="big", Password=PASSWORD, EcsOrder={"Compute": {"Count": 100}}
    )
    assert_invalid(error, "EcsOrder.Compute.Count")
    assert task_count(paced, key, cluster_id) == 0
    assert nodes_by_host(paced, key, cluster_id) == before
    assert paced.call("tea-v3", key, "ListClusters")["TotalCount"] == 1


def test_status_rules(paced: LiveServer) -> None:
    """A node or cluster in the wrong status for the operation is refused with 403 and nothing changes."""
    key = account(paced)
    cluster_id = seed(paced, key, computes=2)
    set_status(paced, cluster_id, ["compute1"], "stopped")
    before = nodes_by_host(paced, key, cluster_id)
    stopped, running = before["compute1"]["Id"], before["compute0"]["Id"]
    for kind in ("tea-v3", "legacy"):
        error = refused(
            paced, key, "StopNodes", kind=kind, ClusterId=cluster_id, Instance=instances([stopped])
        )
        assert (error.status, error.code) == (403, "InvalidNodeStatus")
        assert error.message == "The operation failed due to invalid node status."
        error = refused(
            paced, key, "StartNodes", kind=kind, ClusterId=cluster_id, Instance=instances([running])
        )
        assert (error.status, error.code) == (403, "InvalidNodeStatus")
        error = refused(paced, key, "StartCluster", kind=kind, ClusterId=cluster_id)
        assert (error.status, error.code) == (403, "InvalidClusterStatus")
        assert error.message == "The operation failed due to invalid cluster status."
    # One bad node refuses the whole call: the good one is not stopped either.
    error = refused(paced, key, "StopNodes", ClusterId=cluster_id, Instance=instances([running, stopped]))
    assert error.code == "InvalidNodeStatus"
    stopped_cluster = seed(paced, key, status="stopped")
    for action, params in (("StopCluster", {}), ("AddNodes", {"Count": 1})):
        error = refused(paced, key, action, kind="tea-v1", ClusterId=stopped_cluster, **params)
        assert (error.status, error.code) == (403, "InvalidClusterStatus"), action
    assert task_count(paced, key, cluster_id) == task_count(paced, key, stopped_cluster) == 0
    assert nodes_by_host(paced, key, cluster_id) == before


OPERATION_PARAMS: list[tuple[str, dict[str, Any]]] = [
    ("StartCluster", {}),
    ("StopCluster", {}),
    ("DeleteCluster", {}),
    ("AddNodes", {"Count": 1}),
    ("StartNodes", {"Instance": instances(["i-any"])}),
    ("StopNodes", {"Instance": instances(["i-any"])}),
    ("ResetNodes", {"Instance": instances(["i-any"])}),
    ("DeleteNodes", {"Instance": instances(["i-any"])}),
]


def test_other_tenants_cluster_is_not_found(paced: LiveServer) -> None:
    """Every operation on another account's cluster is ClusterNotFound (404), exactly like a missing one."""
    owner = account(paced)
    cluster_id = seed(paced, owner, computes=1)
    intruder = account(paced)
    for index, (action, params) in enumerate(OPERATION_PARAMS):
        kind = ("tea-v3", "tea-v1", "legacy")[index % 3]
        for target in (cluster_id, "ehpc-hz-doesnotexist"):
            error = refused(paced, intruder, action, kind=kind, ClusterId=target, **params)
            assert (error.status, error.code) == (404, "ClusterNotFound"), action
            assert error.message == "The specified cluster does not exist."
    assert task_count(paced, owner, cluster_id) == 0
    assert {n["Status"] for n in nodes_by_host(paced, owner, cluster_id).values()} == {"running"}


# --- Capacity ---------------------------------------------------------------------------------------


def test_capacity_limits_add_nodes(paced: LiveServer) -> None:
    """With 10 instances per account: MinCount <= available < Count makes `available`, below fails."""
    key = account(paced)
    cluster_id = seed(paced, key, computes=2)  # 8 left

    def add(count: int, min_count: int) -> tuple[list[str], dict[str, Any]]:
        body = paced.call("tea-v3", key, "AddNodes", ClusterId=cluster_id, Count=count, MinCount=min_count)
        ids: list[str] = body["InstanceIds"]["InstanceId"]  # type: ignore[index]
        task_id = body["TaskId"]
        assert isinstance(task_id, str)
        return ids, wait_task(paced, key, cluster_id, task_id)[0]

    ids, task = add(5, 5)  # 3 left
    assert (len(ids), task["Status"]) == (5, "Success")
    ids, task = add(5, 4)  # 3 < MinCount: nothing
    assert (ids, task["Status"], task["CurrentStep"]) == ([], "Failed", 1)
    (failure,) = json.loads(task["Errors"])
    assert failure["Code"] == "InsufficientCapacity"
    assert json.loads(task["Result"]) == {"Instances": []}
    ids, task = add(5, 3)  # MinCount <= 3 < Count: the 3 available
    assert (len(ids), task["Status"]) == (3, "Success")
    assert sorted(i["InstanceId"] for i in json.loads(task["Result"])["Instances"]) == sorted(ids)
    ids, task = add(1, 1)  # none left
    assert (ids, task["Status"]) == ([], "Failed")
    assert [e["Code"] for e in json.loads(task["Errors"])] == ["InsufficientCapacity"]
    found = nodes_by_host(paced, key, cluster_id)
    assert len([host for host in found if host.startswith("compute")]) == 10
    # A deleted node gives its place back.
    gone = instances([found["compute0"]["Id"]])
    paced.call("legacy", key, "DeleteNodes", ClusterId=cluster_id, Instance=gone, Sync=True)
    ids, task = add(2, 1)
    assert (len(ids), task["Status"]) == (1, "Success")


# --- Sync -------------------------------------------------------------------------------------------


def test_add_nodes_sync_returns_when_done(paced: LiveServer) -> None:
    """AddNodes Sync=true answers once the task has ended: ListTasks right after shows Success."""
    key = account(paced)
    cluster_id = seed(paced, key)
    for kind in ("tea-v3", "legacy"):
        body = paced.call(
            kind, key, "AddNodes", ClusterId=cluster_id, Count=2, Sync=True, HostNamePrefix=kind
        )
        ids: list[str] = body["InstanceIds"]["InstanceId"]  # type: ignore[index]
        task_id = body["TaskId"]
        assert isinstance(task_id, str)
        task = one_task(paced, key, cluster_id, task_id)
        assert (task["Status"], task["CurrentStep"], task["TotalSteps"]) == ("Success", 11, 11)
        found = nodes_by_host(paced, key, cluster_id)
        assert {found[f"{kind}{i}"]["Id"] for i in (0, 1)} == set(ids)
        assert {found[f"{kind}{i}"]["Status"] for i in (0, 1)} == {"running"}


def test_delete_nodes_sync_has_no_task(paced: LiveServer) -> None:
    """DeleteNodes Sync=true: TaskId "Not Available", the node is gone at once, no task is recorded."""
    key = account(paced)
    cluster_id = seed(paced, key, computes=3)
    before = nodes_by_host(paced, key, cluster_id)
    for kind, host in (("tea-v3", "compute0"), ("legacy", "compute1")):
        body = paced.call(
            kind,
            key,
            "DeleteNodes",
            ClusterId=cluster_id,
            Instance=instances([before[host]["Id"]]),
            Sync=True,
        )
        assert body["TaskId"] == "Not Available"
        assert host not in nodes_by_host(paced, key, cluster_id)
    assert sorted(nodes_by_host(paced, key, cluster_id)) == ["compute2", "login0", "manager0"]
    assert task_count(paced, key, cluster_id) == 0
    # The node's hostname is not given again.
    body = paced.call("tea-v3", key, "AddNodes", ClusterId=cluster_id, Count=1, Sync=True)
    assert sorted(nodes_by_host(paced, key, cluster_id)) == ["compute2", "compute3", "login0", "manager0"]
