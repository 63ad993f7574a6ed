"""PgBouncer in transaction pooling mode in front of PostgreSQL: the API, its worker and the CLI work."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support.backends import PG_ADMIN_URL, PgDatabases
from tests.support.live import LiveServer
from tests.support.pgbouncer import POOL_SIZE, pgbouncer, through

pytestmark = pytest.mark.postgres

TERMINAL = frozenset({"Success", "Failed", "PartialFail"})


@pytest.fixture(scope="module")
def bounced(
    pg_databases: PgDatabases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, str]]:
    """A server (with its in-process worker) whose every connection goes through PgBouncer."""
    with pgbouncer() as port:
        url = through(pg_databases, port)
        home: Path = tmp_path_factory.mktemp("bounced")
        server = LiveServer(
            home, url, db_transaction_pooling="true", sim_step_seconds="0", api_threads="16"
        ).start(timeout=60)
        try:
            yield server, make_url(url).database or ""
        finally:
            server.stop()


def test_tasks_run_to_their_end_through_pgbouncer(bounced: tuple[LiveServer, str]) -> None:
    """CreateCluster through PgBouncer's transaction mode: its task is claimed, stepped and ended
    (workers poll, as LISTEN does not survive a pooled transaction), and ListTasks shows Success."""
    server, _ = bounced
    key = server.new_account(f"bouncer-{uuid.uuid4().hex[:8]}")
    created = server.call(
        "tea-v3",
        key,
        "CreateCluster",
        Name="bounced",
        Password="Hpc-plane-123",
        EcsOrder={"Compute": {"Count": 1, "InstanceType": "ecs.c6.large"}},
    )
    cluster_id, task_id = str(created["ClusterId"]), str(created["TaskId"])
    deadline = time.monotonic() + 60
    while True:
        body = server.call("tea-v3", key, "ListTasks", ClusterId=cluster_id, TaskId=task_id)
        found: list[dict[str, Any]] = body["Tasks"]  # type: ignore[assignment]
        (task,) = found
        if task["Status"] in TERMINAL:
            break
        assert time.monotonic() < deadline, f"task still running: {task}"
        time.sleep(0.1)
    assert task["Status"] == "Success", task


def test_many_clients_share_a_few_server_connections(bounced: tuple[LiveServer, str]) -> None:
    """Sixteen concurrent callers all get answers while PgBouncer keeps at most its pool of server
    connections to the database (prepared statements would fail here: none are used)."""
    server, database = bounced
    key = server.new_account(f"bouncer-{uuid.uuid4().hex[:8]}")
    outcomes: list[str] = []
    sessions: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            while not stop.is_set():
                row = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)
                ).fetchone()
                sessions.append(int(row[0]) if row else 0)
                time.sleep(0.05)

    def caller() -> None:
        for _ in range(10):
            try:
                server.call("legacy", key, "ListClusters")
                outcomes.append("ok")
            except Exception as error:
                outcomes.append(repr(error))

    watcher = threading.Thread(target=watch)
    watcher.start()
    callers = [threading.Thread(target=caller) for _ in range(16)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join(120)
    stop.set()
    watcher.join(10)
    assert outcomes == ["ok"] * 160
    assert sessions
    assert max(sessions) <= POOL_SIZE
