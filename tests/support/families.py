"""Helpers for the tests of the issue-10 action families: servers, accounts, RAM users, waiting."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from hpcplane.services.clusters import seed_cluster
from tests.support.backends import PgDatabases
from tests.support.live import LiveServer
from tests.support.policies import Doc, document
from tests.support.sdkclients import SdkError

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
KINDS = ("tea-v3", "legacy")
TERMINAL = frozenset({"Success", "Failed", "PartialFail"})
STARTUP = 60.0
T = TypeVar("T")


def start_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, name: str, **settings: str
) -> LiveServer:
    """A started server on the module's backend (request.param) with its own home and database."""
    database_url = None
    if request.param == "postgres":
        databases: PgDatabases = request.getfixturevalue("pg_databases")
        database_url = databases.create()
    home = tmp_path_factory.mktemp(f"{name}-{request.param}")
    return LiveServer(home, database_url, **settings).start(timeout=STARTUP)


def account(server: LiveServer) -> dict[str, str]:
    """A fresh account: every test has its own, so clusters, users, templates, capacity and ClientTokens
    never collide."""
    return server.new_account(f"f-{uuid.uuid4().hex[:12]}")


def seed(server: LiveServer, key: dict[str, str], *, computes: int = 0, status: str = "running") -> str:
    """A cluster written straight into the store (manager0, login0, compute0..): a precondition."""
    services = server.services
    return seed_cluster(
        services.db,
        services.clock,
        account_id=key["AccountId"],
        region="cn-hangzhou",
        name=f"c-{uuid.uuid4().hex[:8]}",
        status=status,
        computes=computes,
    )


def ram_user(server: LiveServer, key: dict[str, str], *statements: Doc) -> dict[str, str]:
    """A RAM user of the account with an AccessKey, and a policy of these statements (if any)."""
    account_id = key["AccountId"]
    name = f"u-{uuid.uuid4().hex[:8]}"
    services = server.services
    services.accounts.create_user(account_id, name)
    issued = services.accounts.create_key(account_id, name)
    if statements:
        policy = f"p-{uuid.uuid4().hex[:8]}"
        services.ram.create_policy(account_id, policy, document(*statements))
        services.ram.attach(account_id, policy, "user", name)
    return {"AccessKeyId": issued.access_key_id, "AccessKeySecret": issued.access_key_secret}


def refused(server: LiveServer, kind: str, key: dict[str, str], action: str, **params: object) -> SdkError:
    """The error an SDK call ends with (the test fails if the call succeeds)."""
    with pytest.raises(SdkError) as caught:
        server.call(kind, key, action, **params)
    return caught.value


def poll(what: str, probe: Callable[[], T | None], *, timeout: float = 60.0, pause: float = 0.05) -> T:
    """Call `probe` until it returns something other than None; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        assert time.monotonic() < deadline, f"{what}: not reached in {timeout}s"
        time.sleep(pause)


def task_of(server: LiveServer, key: dict[str, str], cluster_id: str, task_id: str) -> dict[str, Any]:
    body = server.call("tea-v3", key, "ListTasks", ClusterId=cluster_id, TaskId=task_id)
    tasks = body["Tasks"]
    assert isinstance(tasks, list)
    assert len(tasks) == 1
    task: dict[str, Any] = tasks[0]
    return task


def wait_task(server: LiveServer, key: dict[str, str], cluster_id: str, task_id: str) -> dict[str, Any]:
    """ListTasks until the task has ended."""

    def ended() -> dict[str, Any] | None:
        task = task_of(server, key, cluster_id, task_id)
        return task if task["Status"] in TERMINAL else None

    return poll(f"task {task_id}", ended)


def cluster_info(
    server: LiveServer, key: dict[str, str], cluster_id: str, kind: str = "tea-v3"
) -> dict[str, Any]:
    info = server.call(kind, key, "DescribeCluster", ClusterId=cluster_id)["ClusterInfo"]
    assert isinstance(info, dict)
    return info
