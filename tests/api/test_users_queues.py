"""Cluster users and queues through both official SDKs: lifecycles, hashing, errors, tenancy, RAM."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from hpcplane.services.passwords import verify_password
from hpcplane.store.tables import cluster_users
from tests.support.families import (
    BACKENDS,
    KINDS,
    account,
    ram_user,
    refused,
    seed,
    start_server,
    wait_task,
)
from tests.support.live import LiveServer
from tests.support.policies import allow

SECRET = "Sup3r-secret-pw"


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(request, tmp_path_factory, "users", sim_step_seconds="0.005", sim_jitter="0")
    yield live
    live.stop()


def users_of(server: LiveServer, kind: str, key: dict[str, str], cluster_id: str, **page: int) -> Any:
    return server.call(kind, key, "ListUsers", ClusterId=cluster_id, **page)


def invalid(error: Any, name: str) -> None:
    assert (error.status, error.code, error.message) == (
        400,
        "InvalidParams",
        f"The specified parameter {name} is invalid.",
    )


@pytest.mark.parametrize("kind", KINDS)
def test_user_lifecycle(server: LiveServer, kind: str) -> None:
    """AddUsers, ListUsers (never a password), ModifyUserGroups, ModifyUserPasswords, DeleteUsers."""
    key = account(server)
    cluster_id = seed(server, key)
    users = [
        {"Name": "alice.hpc", "Group": "wheel", "Password": SECRET},
        {"Name": "bobby01", "Password": SECRET},
    ]
    assert set(server.call(kind, key, "AddUsers", ClusterId=cluster_id, User=users)) == {"RequestId"}
    body = users_of(server, kind, key, cluster_id)
    assert body["TotalCount"] == 2
    listed = body["Users"]["UserInfo"]
    assert [(u["Name"], u["Group"]) for u in listed] == [("alice.hpc", "wheel"), ("bobby01", "users")]
    assert all(u["AddTime"].endswith("Z") for u in listed)
    assert SECRET not in str(body)
    server.call(
        kind, key, "ModifyUserGroups", ClusterId=cluster_id, User=[{"Name": "bobby01", "Group": "wheel"}]
    )
    new = "An0ther-secret"
    server.call(
        kind, key, "ModifyUserPasswords", ClusterId=cluster_id, User=[{"Name": "alice.hpc", "Password": new}]
    )
    with server.services.db.read() as conn:
        rows = {
            r.name: r
            for r in conn.execute(select(cluster_users).where(cluster_users.c.cluster_id == cluster_id))
        }
    assert rows["bobby01"].user_group == "wheel"
    assert verify_password(new, rows["alice.hpc"].password_hash)
    assert not verify_password(SECRET, rows["alice.hpc"].password_hash)
    assert verify_password(SECRET, rows["bobby01"].password_hash)
    page = users_of(server, kind, key, cluster_id, PageSize=1, PageNumber=2)
    assert [u["Name"] for u in page["Users"]["UserInfo"]] == ["bobby01"]
    server.call(kind, key, "DeleteUsers", ClusterId=cluster_id, User=[{"Name": "alice.hpc"}])
    assert [u["Name"] for u in users_of(server, kind, key, cluster_id)["Users"]["UserInfo"]] == ["bobby01"]


def test_passwords_are_salted_hashes_and_never_logged(server: LiveServer) -> None:
    """Two users with one password get different hashes; neither the password nor a hash is in the log."""
    key = account(server)
    cluster_id = seed(server, key)
    users = [{"Name": "carol.one", "Password": SECRET}, {"Name": "carol.two", "Password": SECRET}]
    server.call("tea-v3", key, "AddUsers", ClusterId=cluster_id, User=users)
    with server.services.db.read() as conn:
        hashes = [
            r.password_hash
            for r in conn.execute(select(cluster_users).where(cluster_users.c.cluster_id == cluster_id))
        ]
    assert len(set(hashes)) == 2
    assert all(h.startswith("scrypt$") and SECRET not in h for h in hashes)
    log = server.log()
    assert SECRET not in log
    assert not any(h.split("$")[-1] in log for h in hashes)


def test_user_refusals(server: LiveServer) -> None:
    """Duplicates, bad names, weak passwords, unknown users, a stopped cluster, another tenant, RAM."""
    key = account(server)
    cluster_id = seed(server, key)
    server.call(
        "tea-v3", key, "AddUsers", ClusterId=cluster_id, User=[{"Name": "dave.user", "Password": SECRET}]
    )
    cases: list[tuple[str, list[dict[str, str]], str]] = [
        ("AddUsers", [{"Name": "dave.user", "Password": SECRET}], "User.1.Name"),
        ("AddUsers", [{"Name": "1digit", "Password": SECRET}], "User.1.Name"),
        ("AddUsers", [{"Name": "short", "Password": SECRET}], "User.1.Name"),
        ("AddUsers", [{"Name": "erin.user", "Password": "weakweak"}], "User.1.Password"),
        ("AddUsers", [{"Name": "erin.user"}], "User.1.Password"),
        ("AddUsers", [{"Name": "erin.user", "Group": "root", "Password": SECRET}], "User.1.Group"),
        ("DeleteUsers", [{"Name": "nobody.here"}], "User.1.Name"),
        ("ModifyUserGroups", [{"Name": "dave.user"}], "User.1.Group"),
        ("ModifyUserPasswords", [{"Name": "nobody.here", "Password": SECRET}], "User.1.Name"),
    ]
    for action, users, name in cases:
        invalid(refused(server, "legacy", key, action, ClusterId=cluster_id, User=users), name)
    stopped = seed(server, key, status="stopped")
    error = refused(
        server,
        "tea-v3",
        key,
        "AddUsers",
        ClusterId=stopped,
        User=[{"Name": "frank.user", "Password": SECRET}],
    )
    assert (error.status, error.code) == (403, "InvalidClusterStatus")
    other = account(server)
    assert refused(server, "tea-v3", other, "ListUsers", ClusterId=cluster_id).code == "ClusterNotFound"
    nobody = ram_user(server, key)
    assert refused(server, "tea-v3", nobody, "ListUsers", ClusterId=cluster_id).code == "NotAuthorized"
    reader = ram_user(server, key, allow(Action="ehpc:ListUsers"))
    assert users_of(server, "legacy", reader, cluster_id)["TotalCount"] == 1
    denied = refused(
        server, "tea-v3", reader, "DeleteUsers", ClusterId=cluster_id, User=[{"Name": "dave.user"}]
    )
    assert denied.code == "NotAuthorized"
    assert users_of(server, "tea-v3", key, cluster_id)["TotalCount"] == 1


def queue_names(server: LiveServer, kind: str, key: dict[str, str], cluster_id: str) -> list[str]:
    body = server.call(kind, key, "ListQueues", ClusterId=cluster_id)
    return [q["QueueName"] for q in body["Queues"]["QueueInfo"]]  # type: ignore[index]


def queue_hosts(
    server: LiveServer, key: dict[str, str], cluster_id: str, queue: str, kind: str = "tea-v3"
) -> list[str]:
    body = server.call(kind, key, "ListNodesByQueue", ClusterId=cluster_id, QueueName=queue)
    hosts = [n["HostName"] for n in body["Nodes"]["NodeInfo"]]  # type: ignore[index]
    assert body["TotalCount"] == len(hosts)
    return hosts


@pytest.mark.parametrize("kind", KINDS)
def test_queue_lifecycle(server: LiveServer, kind: str) -> None:
    """The scheduler's default queue exists; AddQueue, UpdateQueueConfig; AddNodes into a queue;
    ListNodesByQueue; a queue with nodes, and the default queue, cannot be deleted; an empty one can."""
    key = account(server)
    cluster_id = seed(server, key, computes=1)
    assert queue_names(server, kind, key, cluster_id) == ["workq"]
    server.call(
        kind,
        key,
        "AddQueue",
        ClusterId=cluster_id,
        QueueName="gpu_q",
        NetworkInterfaceTrafficMode="HighPerformance",
    )
    server.call(
        kind,
        key,
        "UpdateQueueConfig",
        ClusterId=cluster_id,
        QueueName="gpu_q",
        ComputeInstanceType="ecs.gn6i-c4g1.xlarge",
    )
    body = server.call(kind, key, "ListQueues", ClusterId=cluster_id)
    queues = {q["QueueName"]: q for q in body["Queues"]["QueueInfo"]}  # type: ignore[index]
    assert list(queues) == ["workq", "gpu_q"]
    assert queues["gpu_q"]["ComputeInstanceType"]["InstanceType"] == ["ecs.gn6i-c4g1.xlarge"]
    assert queues["gpu_q"]["NetworkInterfaceTrafficMode"] == "HighPerformance"
    assert queues["workq"]["ComputeInstanceType"]["InstanceType"] == ["ecs.c6.large"]
    added = server.call("tea-v3", key, "AddNodes", ClusterId=cluster_id, Count=1, JobQueue="gpu_q")
    assert wait_task(server, key, cluster_id, str(added["TaskId"]))["Status"] == "Success"
    assert queue_hosts(server, key, cluster_id, "gpu_q", kind) == ["compute1"]
    assert queue_hosts(server, key, cluster_id, "workq", kind) == ["compute0"]
    invalid(refused(server, kind, key, "DeleteQueue", ClusterId=cluster_id, QueueName="gpu_q"), "QueueName")
    invalid(refused(server, kind, key, "DeleteQueue", ClusterId=cluster_id, QueueName="workq"), "QueueName")
    server.call(kind, key, "AddQueue", ClusterId=cluster_id, QueueName="empty_q")
    server.call(kind, key, "DeleteQueue", ClusterId=cluster_id, QueueName="empty_q")
    assert queue_names(server, kind, key, cluster_id) == ["workq", "gpu_q"]


def test_queue_refusals(server: LiveServer) -> None:
    """Bad and duplicate names, unknown queues (also in AddNodes' JobQueue), another tenant, RAM."""
    key = account(server)
    cluster_id = seed(server, key)
    invalid(refused(server, "tea-v3", key, "AddQueue", ClusterId=cluster_id, QueueName="workq"), "QueueName")
    invalid(refused(server, "legacy", key, "AddQueue", ClusterId=cluster_id, QueueName="9lives"), "QueueName")
    invalid(
        refused(
            server,
            "legacy",
            key,
            "AddQueue",
            ClusterId=cluster_id,
            QueueName="q",
            NetworkInterfaceTrafficMode="Fast",
        ),
        "NetworkInterfaceTrafficMode",
    )
    invalid(
        refused(server, "tea-v3", key, "UpdateQueueConfig", ClusterId=cluster_id, QueueName="nope"),
        "QueueName",
    )
    invalid(
        refused(server, "tea-v3", key, "ListNodesByQueue", ClusterId=cluster_id, QueueName="nope"),
        "QueueName",
    )
    invalid(
        refused(server, "tea-v3", key, "AddNodes", ClusterId=cluster_id, Count=1, JobQueue="nope"), "JobQueue"
    )
    other = account(server)
    assert refused(server, "tea-v3", other, "ListQueues", ClusterId=cluster_id).code == "ClusterNotFound"
    nobody = ram_user(server, key)
    assert (
        refused(server, "legacy", nobody, "AddQueue", ClusterId=cluster_id, QueueName="q").code
        == "NotAuthorized"
    )
    assert queue_names(server, "tea-v3", key, cluster_id) == ["workq"]
