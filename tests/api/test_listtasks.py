"""ListTasks through the official SDKs: shapes, paging, Archived semantics, boundaries, tenants."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from hpcplane.domain.tasks import TaskStatus, TaskType
from hpcplane.services.clusters import seed_cluster
from hpcplane.services.tasks import record_task
from tests.support.live import LiveServer
from tests.support.sdkclients import SDK_KINDS, SdkError

TASK_FIELDS = {
    "ClusterId",
    "TaskId",
    "TaskType",
    "Status",
    "CurrentStep",
    "TotalSteps",
    "Result",
    "Errors",
    "Request",
}


@pytest.fixture(scope="module")
def tenant(server: LiveServer) -> dict[str, str]:
    """An account with one cluster holding 55 tasks: 3 running, the rest ended (history)."""
    key = server.new_account("tenant")
    services = server.services
    cluster = seed_cluster(
        services.db, services.clock, account_id=key["AccountId"], region="cn-hangzhou", name="c1"
    )
    base = services.clock.now() - timedelta(hours=1)
    for i in range(55):
        running = i >= 52
        record_task(
            services.db,
            services.clock,
            account_id=key["AccountId"],
            cluster_id=cluster,
            task_type=TaskType.ADD_COMPUTES,
            total_steps=12,
            status=TaskStatus.PROCESSING if running else TaskStatus.SUCCESS,
            current_step=3 if running else 12,
            params={"index": i},
            created_at=base + timedelta(seconds=i // 2),  # pairs share a timestamp: ties must be stable
        )
    return {**key, "ClusterId": cluster}


def _ended_task(
    server: LiveServer, tenant: dict[str, str], name: str, status: TaskStatus, step: int, errors: str = "[]"
) -> tuple[str, str]:
    """A new cluster of the tenant's with one ended StopCluster task of 35 steps: (cluster, task id)."""
    services = server.services
    cluster = seed_cluster(
        services.db, services.clock, account_id=tenant["AccountId"], region="cn-hangzhou", name=name
    )
    task_id = record_task(
        services.db,
        services.clock,
        account_id=tenant["AccountId"],
        cluster_id=cluster,
        task_type=TaskType.STOP_CLUSTER,
        total_steps=35,
        status=status,
        current_step=step,
        errors=errors,
    )
    return cluster, task_id


def _indexes(body: dict[str, object]) -> list[int]:
    tasks = body["Tasks"]
    assert isinstance(tasks, list)
    return [json.loads(t["Request"])["index"] for t in tasks]


@pytest.mark.parametrize("kind", SDK_KINDS)
def test_current_tasks_only_by_default(server: LiveServer, tenant: dict[str, str], kind: str) -> None:
    """Archived defaults to false: only the tasks still running, newest first, with every field."""
    body = server.call(kind, tenant, "ListTasks", ClusterId=tenant["ClusterId"])
    assert body["TotalCount"] == 3
    assert body["PageNumber"] == 1
    assert body["PageSize"] == 10
    assert _indexes(body) == [54, 53, 52]
    tasks = body["Tasks"]
    assert isinstance(tasks, list)
    for task in tasks:
        assert set(task) == TASK_FIELDS
        assert task["Status"] == "Processing"
        assert task["TaskType"] == "AddComputes"
        assert (task["CurrentStep"], task["TotalSteps"]) == (3, 12)
        assert json.loads(task["Result"]) == {}
        assert json.loads(task["Errors"]) == []
        request = json.loads(task["Request"])
        assert request["uid"] == tenant["AccountId"]
        assert request["clusterId"] == tenant["ClusterId"]
        assert request["requestId"]
    assert isinstance(body["RequestId"], str)
    assert body["RequestId"] == body["RequestId"].upper()


@pytest.mark.parametrize("kind", SDK_KINDS)
def test_archived_pages_through_history(server: LiveServer, tenant: dict[str, str], kind: str) -> None:
    """Archived=true: every task, newest first, ties stable, TotalCount counts all, pages do not overlap."""
    seen: list[int] = []
    for page in (1, 2):
        body = server.call(
            kind,
            tenant,
            "ListTasks",
            ClusterId=tenant["ClusterId"],
            Archived=True,
            PageNumber=page,
            PageSize=50,
        )
        assert body["TotalCount"] == 55
        seen += _indexes(body)
    assert seen == list(range(54, -1, -1))
    last = server.call(
        kind, tenant, "ListTasks", ClusterId=tenant["ClusterId"], Archived=True, PageNumber=999, PageSize=50
    )
    assert last["Tasks"] == []
    assert last["TotalCount"] == 55


def test_no_running_task_gives_empty_list(server: LiveServer, tenant: dict[str, str]) -> None:
    """A cluster whose tasks have all ended answers [] unless Archived=true."""
    cluster, _ = _ended_task(server, tenant, "idle", TaskStatus.FAILED, 16)
    body = server.call("tea-v3", tenant, "ListTasks", ClusterId=cluster)
    assert (body["Tasks"], body["TotalCount"]) == ([], 0)
    body = server.call("legacy", tenant, "ListTasks", ClusterId=cluster, Archived=True)
    assert body["TotalCount"] == 1


@pytest.mark.parametrize("kind", SDK_KINDS)
def test_task_id_returns_task_whatever_its_state(
    server: LiveServer, tenant: dict[str, str], kind: str
) -> None:
    """TaskId finds an ended task even with Archived=false: Archived is then ignored."""
    errors = '[{"Code":"NodeFailed","Message":"boom","InstanceId":"i-1"}]'
    cluster, task_id = _ended_task(server, tenant, "t", TaskStatus.PARTIAL_FAIL, 35, errors=errors)
    for archived in (False, True):
        body = server.call(kind, tenant, "ListTasks", ClusterId=cluster, TaskId=task_id, Archived=archived)
        assert body["TotalCount"] == 1
        tasks = body["Tasks"]
        assert isinstance(tasks, list)
        (task,) = tasks
        assert task["TaskId"] == task_id
        assert task["Status"] == "PartialFail"
        assert json.loads(task["Errors"])[0]["InstanceId"] == "i-1"
    body = server.call(kind, tenant, "ListTasks", ClusterId=cluster, TaskId="NO-SUCH-TASK")
    assert (body["Tasks"], body["TotalCount"]) == ([], 0)


@pytest.mark.parametrize(
    ("name", "value", "ok"),
    [
        ("PageSize", 0, False),
        ("PageSize", 1, True),
        ("PageSize", 50, True),
        ("PageSize", 51, False),
        ("PageNumber", 0, False),
        ("PageNumber", 1, True),
        ("PageNumber", 999, True),
        ("PageNumber", 1000, False),
    ],
)
@pytest.mark.parametrize("kind", ["tea-v3", "legacy"])
def test_paging_boundaries(
    server: LiveServer, tenant: dict[str, str], kind: str, name: str, value: int, ok: bool
) -> None:
    """PageNumber 1-999 and PageSize 1-50; outside, InvalidParams names the parameter."""
    params = {"ClusterId": tenant["ClusterId"], "Archived": True, name: value}
    if ok:
        body = server.call(kind, tenant, "ListTasks", **params)
        assert body[name] == value
        if name == "PageSize":
            assert len(body["Tasks"]) == min(value, 55)  # type: ignore[arg-type]
        return
    with pytest.raises(SdkError) as caught:
        server.call(kind, tenant, "ListTasks", **params)
    assert (caught.value.status, caught.value.code) == (400, "InvalidParams")
    assert caught.value.message == f"The specified parameter {name} is invalid."


@pytest.mark.parametrize(
    ("name", "value"),
    [("PageSize", "ten"), ("PageNumber", "1.5"), ("Archived", "yes"), ("Archived", "1"), ("ClusterId", "")],
)
def test_malformed_values(server: LiveServer, tenant: dict[str, str], name: str, value: str) -> None:
    """Non-numeric numbers, booleans other than true/false, and a missing ClusterId are InvalidParams."""
    params = {"ClusterId": tenant["ClusterId"], name: value}
    with pytest.raises(SdkError) as caught:
        server.call("legacy", tenant, "ListTasks", **params)
    assert (caught.value.status, caught.value.code) == (400, "InvalidParams")
    assert name in caught.value.message


@pytest.mark.parametrize("value", ["true", "True", "TRUE", "false", "False"])
def test_booleans_in_any_case(server: LiveServer, tenant: dict[str, str], value: str) -> None:
    body = server.call("legacy", tenant, "ListTasks", ClusterId=tenant["ClusterId"], Archived=value)
    assert body["TotalCount"] == (55 if value.lower() == "true" else 3)


def test_tenants_are_isolated(server: LiveServer, tenant: dict[str, str]) -> None:
    """Another account's cluster is ClusterNotFound, exactly like one that does not exist."""
    other = server.new_account("other-tenant")
    for cluster in (tenant["ClusterId"], "ehpc-hz-doesnotexist"):
        with pytest.raises(SdkError) as caught:
            server.call("tea-v3", other, "ListTasks", ClusterId=cluster, Archived=True)
        assert (caught.value.status, caught.value.code) == (404, "ClusterNotFound")
        assert caught.value.message == "The specified cluster does not exist."


def test_response_does_not_depend_on_the_sdk(server: LiveServer, tenant: dict[str, str]) -> None:
    """Every SDK path gets the same fields and values (but the RequestId)."""
    bodies = []
    for kind in SDK_KINDS:
        body = server.call(
            kind, tenant, "ListTasks", ClusterId=tenant["ClusterId"], Archived=True, PageSize=20
        )
        body.pop("RequestId")
        bodies.append(body)
    assert all(body == bodies[0] for body in bodies)
