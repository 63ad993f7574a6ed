"""ModifyClusterAttributes, RecoverCluster and ListClusterLogs through both official SDKs.

The server injects a failure into every CreateCluster (step 4), so a created cluster ends in `exception`
as Terraform expects to see it, and RecoverCluster has something to recover.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update

from hpcplane.store.tables import clusters
from tests.support.families import (
    BACKENDS,
    KINDS,
    account,
    cluster_info,
    ram_user,
    refused,
    seed,
    start_server,
    wait_task,
)
from tests.support.live import LiveServer
from tests.support.policies import allow

PASSWORD = "Hpc-plane-123"
ECS = {
    "Manager": {"Count": 1, "InstanceType": "ecs.g6.large"},
    "Login": {"Count": 1, "InstanceType": "ecs.g6.large"},
    "Compute": {"Count": 2, "InstanceType": "ecs.c6.large"},
}


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(
        request,
        tmp_path_factory,
        "admin",
        sim_step_seconds="0.005",
        sim_jitter="0",
        sim_faults="CreateCluster.fail_step=4",
    )
    yield live
    live.stop()


def logs(server: LiveServer, key: dict[str, str], cluster_id: str, kind: str = "tea-v3", **page: int) -> Any:
    return server.call(kind, key, "ListClusterLogs", ClusterId=cluster_id, **page)


@pytest.mark.parametrize("kind", KINDS)
def test_modify_shows_in_describe_and_list(server: LiveServer, kind: str) -> None:
    """Name, Description, ImageId, ImageOwnerAlias and RamRoleName change; the reads show the new values."""
    key = account(server)
    cluster_id = seed(server, key)
    body = server.call(
        kind,
        key,
        "ModifyClusterAttributes",
        ClusterId=cluster_id,
        Name="renamed",
        Description="a new description",
        ImageId="m-custom-image",
        ImageOwnerAlias="self",
        RamRoleName="AliyunECSInstanceForEHPCRole",
    )
    assert set(body) == {"RequestId"}
    info = cluster_info(server, key, cluster_id, kind)
    assert (info["Name"], info["Description"]) == ("renamed", "a new description")
    assert (info["ImageId"], info["ImageOwnerAlias"]) == ("m-custom-image", "self")
    assert info["RamRoleName"] == "AliyunECSInstanceForEHPCRole"
    assert info["Status"] == "running"
    (listed,) = server.call(kind, key, "ListClusters")["Clusters"]["ClusterInfoSimple"]  # type: ignore[index]
    assert (listed["Name"], listed["ImageId"]) == ("renamed", "m-custom-image")


def test_modify_refusals(server: LiveServer) -> None:
    """ConflictOpt while an operation runs; InvalidParams names the parameter; other tenants see nothing."""
    key = account(server)
    cluster_id = seed(server, key)
    with server.services.db.write() as conn:
        conn.execute(update(clusters).where(clusters.c.id == cluster_id).values(task_id="T-RUNNING"))
    busy = refused(server, "tea-v3", key, "ModifyClusterAttributes", ClusterId=cluster_id, Name="busy")
    assert (busy.status, busy.code) == (403, "ConflictOpt")
    with server.services.db.write() as conn:
        conn.execute(update(clusters).where(clusters.c.id == cluster_id).values(task_id=None))
    for params, name in (
        ({"Name": "x"}, "Name"),
        ({"ImageOwnerAlias": "public"}, "ImageOwnerAlias"),
        ({"Description": "https://x"}, "Description"),
        ({"Description": "d" * 257}, "Description"),
    ):
        error = refused(server, "legacy", key, "ModifyClusterAttributes", ClusterId=cluster_id, **params)
        assert (error.code, error.message) == ("InvalidParams", f"The specified parameter {name} is invalid.")
    other = account(server)
    for action in ("ModifyClusterAttributes", "ListClusterLogs", "RecoverCluster"):
        assert refused(server, "tea-v3", other, action, ClusterId=cluster_id).code == "ClusterNotFound"
    assert cluster_info(server, key, cluster_id)["Name"].startswith("c-")


def test_failed_create_leaves_exception_then_recover(server: LiveServer) -> None:
    """CreateCluster failing ends the cluster in `exception`, logged; RecoverCluster is a task that brings
    it back to `running` with the image it names; RecoverCluster on a running cluster is refused."""
    key = account(server)
    created = server.call(
        "tea-v3", key, "CreateCluster", Name="tf-like", Password=PASSWORD, OsTag="CentOS_7.6_64", EcsOrder=ECS
    )
    cluster_id, task_id = str(created["ClusterId"]), str(created["TaskId"])
    assert wait_task(server, key, cluster_id, task_id)["Status"] == "Failed"
    assert cluster_info(server, key, cluster_id)["Status"] == "exception"
    lines = logs(server, key, cluster_id)["Logs"]["LogInfo"]
    assert {line["Operation"] for line in lines} == {"CreateCluster"}
    assert lines[0]["Level"] == "error"
    assert "Failed" in lines[0]["Message"]
    assert any(line["Level"] == "error" and "step 4" in line["Message"] for line in lines)

    body = server.call(
        "legacy", key, "RecoverCluster", ClusterId=cluster_id, ImageId="m-recovered", OsTag="CentOS_7.9_64"
    )
    assert set(body) == {"RequestId", "TaskId"}
    task = wait_task(server, key, cluster_id, str(body["TaskId"]))
    assert (task["TaskType"], task["Status"]) == ("RecoverCluster", "Success")
    info = cluster_info(server, key, cluster_id)
    assert (info["Status"], info["ImageId"], info["OsTag"]) == ("running", "m-recovered", "CentOS_7.9_64")
    nodes = server.call("tea-v3", key, "ListNodes", ClusterId=cluster_id, PageSize=100)["Nodes"]["NodeInfo"]  # type: ignore[index]
    assert {node["Status"] for node in nodes} == {"running"}
    newest = logs(server, key, cluster_id, PageSize=1)["Logs"]["LogInfo"][0]
    assert (newest["Operation"], newest["Level"]) == ("RecoverCluster", "info")
    again = refused(server, "tea-v3", key, "RecoverCluster", ClusterId=cluster_id)
    assert (again.status, again.code) == (403, "InvalidClusterStatus")


def test_cluster_logs_are_paged_newest_first(server: LiveServer) -> None:
    """Every step that acts writes a line; pages are disjoint, cover TotalCount and keep their order."""
    key = account(server)
    cluster_id = seed(server, key, computes=1)
    started = server.call("tea-v3", key, "StopCluster", ClusterId=cluster_id)
    wait_task(server, key, cluster_id, str(started["TaskId"]))
    first = logs(server, key, cluster_id, PageSize=2, PageNumber=1)
    total = first["TotalCount"]
    assert total >= 3
    assert first["PageSize"] == 2
    assert first["ClusterId"] == cluster_id
    every = logs(server, key, cluster_id, "legacy", PageSize=100)["Logs"]["LogInfo"]
    assert len(every) == total
    assert first["Logs"]["LogInfo"] == every[:2]
    assert [line["CreateTime"] for line in every] == sorted(
        (line["CreateTime"] for line in every), reverse=True
    )
    assert {line["Operation"] for line in every} == {"StopCluster"}
    assert every[-1]["Message"].startswith("Task ")
    assert every[0]["Message"].endswith("ended Success.")
    assert refused(server, "tea-v3", key, "ListClusterLogs", ClusterId=cluster_id, PageSize=101).code == (
        "InvalidParams"
    )


def test_ram_refusals(server: LiveServer) -> None:
    """A RAM user needs ehpc:<Action> on the cluster; with it, the call goes through."""
    key = account(server)
    cluster_id = seed(server, key)
    nobody = ram_user(server, key)
    for action in ("ModifyClusterAttributes", "RecoverCluster", "ListClusterLogs"):
        error = refused(server, "tea-v3", nobody, action, ClusterId=cluster_id)
        assert (error.status, error.code) == (407, "NotAuthorized")
    arn = f"acs:ehpc:cn-hangzhou:{key['AccountId']}:cluster/{cluster_id}"
    reader = ram_user(server, key, allow(Action="ehpc:ListClusterLogs", Resource=arn))
    assert logs(server, reader, cluster_id)["TotalCount"] == 0
    assert refused(server, "legacy", reader, "ModifyClusterAttributes", ClusterId=cluster_id).code == (
        "NotAuthorized"
    )
