"""Crash tests: `hpcplane worker` processes SIGKILLed mid-run, and a step hanging past its lease."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import case, func, select

from hpcplane import ids
from hpcplane.config import Settings
from hpcplane.domain.accounts import Principal
from hpcplane.domain.plans import base, plan_for
from hpcplane.domain.resources import NODE_TARGET, ClusterStatus, NodeStatus, Role
from hpcplane.domain.tasks import TaskStatus, TaskType
from hpcplane.engine.steps import NODE_ACTION, NODE_STEP
from hpcplane.services.clusters import seed_cluster
from hpcplane.services.operations import AddSpec
from hpcplane.store import clusters as cluster_store
from hpcplane.store.tables import clusters, nodes, sim_calls, tasks
from hpcplane.wiring import Services, build_services
from tests.integration.conftest import database_url

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

STEP_SECONDS = 0.01
# A holder gives a task up when its heartbeat (every lease/3) is more than 0.9 x lease - lease/3 late: 1.7 s
# at 3 s. At 1.5 s (0.85 s) the full suite's load on CI's PostgreSQL (other test files' commits and
# CREATE DATABASEs) made the survivors give up leases too, and tasks were lost with no kill at all.
LEASE_SECONDS = 3.0
KILLS = 4
DEADLINE = 95.0  # seconds for the whole crash run of one backend, workers' start-up included
NODE_CLUSTERS = 4  # clusters that get node operations and AddNodes
COMPUTES = 40  # compute nodes seeded in each of them


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend."""
    return database_url(request, request.param, tmp_path)


def settings_for(home: Path, url: str, **values: Any) -> Settings:
    """Settings of this process's services, the same as the workers' environment gives them."""
    return Settings(**{"home": home, "database_url": url, "redis_url": None, "sim_faults": "", **values})


Build = Callable[..., Services]


@pytest.fixture
def services_for(tmp_path: Path) -> Iterator[Build]:
    """Build services on a database (migrating it) and close them at the end of the test."""
    opened: list[Services] = []

    def build(url: str, **values: Any) -> Services:
        services = build_services(settings_for(tmp_path / "home", url, **values))
        opened.append(services)
        return services

    yield build
    for services in opened:
        services.close()


def principal(services: Services, name: str) -> Principal:
    """A new account with E-HPC enabled, as the principal its own AccessKey acts as."""
    issued = services.accounts.create_account(name)
    return Principal(services.accounts.find(issued.account_id), issued.access_key_id)


# --- worker processes ----------------------------------------------------------------------------


class WorkerProcess:
    """One `hpcplane worker` subprocess, its stdout and stderr in one log file."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hpcplane", "worker"],
                env=dict(env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ready(self) -> bool:
        """True once the worker's threads run (it printed its banner)."""
        return "hpcplane worker" in self.log()

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup, no lease released, whatever transaction was open is lost."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if the worker does not stop in time."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def worker_env(home: Path, url: str, **settings: str) -> dict[str, str]:
    """The environment of a worker process: no HPCPLANE_* of ours leaks in but what is given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPCPLANE_")}
    env.update(
        HPCPLANE_HOME=str(home),
        HPCPLANE_DATABASE_URL=url,
        HPCPLANE_LOG_FORMAT="json",
        **{f"HPCPLANE_{k.upper()}": v for k, v in settings.items()},
    )
    return env


# --- the workload --------------------------------------------------------------------------------


@dataclass
class Expected:
    """One accepted operation and what it acts on."""

    task_id: str
    task_type: TaskType
    cluster_id: str
    targets: list[str]
    count: int = 0


@dataclass
class Workload:
    """Every task enqueued, the clusters they act on, and the nodes seeded before any task ran."""

    tasks: list[Expected] = field(default_factory=list)
    node_clusters: list[str] = field(default_factory=list)
    cluster_ops: dict[str, TaskType] = field(default_factory=dict)
    seeded: dict[str, set[str]] = field(default_factory=dict)


def _instances(node_ids: list[str]) -> list[tuple[str, str]]:
    return [(f"Instance.{i + 1}.Id", node_id) for i, node_id in enumerate(node_ids)]


def enqueue_workload(services: Services, who: Principal, rng: random.Random) -> Workload:
    """Seed clusters and accept a shuffled mix of 200+ operations that the conflict rules allow together."""
    db, clock, region, account = services.db, services.clock, services.settings.region, who.account.id
    work = Workload()
    calls: list[Any] = []
    for n in range(NODE_CLUSTERS):
        cluster_id = seed_cluster(
            db, clock, account_id=account, region=region, name=f"nodes{n}", computes=COMPUTES
        )
        work.node_clusters.append(cluster_id)
        with db.read() as conn:
            seeded = cluster_store.cluster_nodes(conn, cluster_id)
        work.seeded[cluster_id] = {node["id"] for node in seeded}
        computes = [node["id"] for node in seeded if node["role"] == Role.COMPUTE.value]
        stopping, starting, resetting, deleting = (
            computes[:15],
            computes[15:30],
            computes[30:35],
            computes[35:40],
        )
        with db.write() as conn:
            cluster_store.update_nodes(conn, starting, status=NodeStatus.STOPPED.value)
        for node_id in stopping:
            calls.append((TaskType.STOP_COMPUTES, cluster_id, [node_id]))
        for node_id in starting:
            calls.append((TaskType.START_COMPUTES, cluster_id, [node_id]))
        for node_id in resetting:
            calls.append((TaskType.RESET_COMPUTE, cluster_id, [node_id]))
        for node_id in deleting:
            calls.append((TaskType.DELETE_COMPUTES, cluster_id, [node_id]))
        for k in range(15):
            calls.append((TaskType.ADD_COMPUTES, cluster_id, rng.randint(1, 3), f"crash-{n}-{k}"))
    for task_type, status, count in (
        (TaskType.STOP_CLUSTER, "running", 3),
        (TaskType.START_CLUSTER, "stopped", 2),
        (TaskType.DELETE_CLUSTER, "running", 2),
    ):
        for k in range(count):
            cluster_id = seed_cluster(
                db,
                clock,
                account_id=account,
                region=region,
                name=f"{task_type}{k}",
                status=status,
                computes=3,
            )
            with db.read() as conn:
                work.seeded[cluster_id] = {
                    node["id"] for node in cluster_store.cluster_nodes(conn, cluster_id)
                }
            work.cluster_ops[cluster_id] = task_type
            calls.append((task_type, cluster_id, None))
    rng.shuffle(calls)
    operations = services.operations
    for call in calls:
        task_type, cluster_id = call[0], call[1]
        request_id = ids.request_id()
        if task_type is TaskType.ADD_COMPUTES:
            count, token = call[2], call[3]
            raw = {"Action": "AddNodes", "ClusterId": cluster_id, "Count": str(count), "ClientToken": token}
            spec = AddSpec(cluster_id, count, count, None, "", "", None, "manual", token, False)
            accepted = operations.add_nodes(who, request_id, spec, raw)
            assert len(accepted.instance_ids) == count
            work.tasks.append(Expected(accepted.task_id, task_type, cluster_id, accepted.instance_ids, count))
        elif call[2] is None:
            raw = {"Action": task_type.value, "ClusterId": cluster_id}
            accepted = operations.cluster_operation(who, request_id, task_type, cluster_id, raw)
            targets = sorted(work.seeded[cluster_id])
            work.tasks.append(Expected(accepted.task_id, task_type, cluster_id, targets))
        else:
            instances = _instances(call[2])
            raw = {"Action": task_type.value, "ClusterId": cluster_id, **dict(instances)}
            accepted = operations.node_operation(
                who, request_id, task_type, cluster_id, instances, Role.COMPUTE, raw
            )
            work.tasks.append(Expected(accepted.task_id, task_type, cluster_id, call[2]))
    return work


def progress(services: Services) -> tuple[int, int]:
    """(tasks not yet ended, steps completed over all tasks)."""
    with services.db.read() as conn:
        left, done = conn.execute(
            select(
                func.coalesce(func.sum(case((tasks.c.finished_at.is_(None), 1), else_=0)), 0),
                func.coalesce(func.sum(tasks.c.current_step), 0),
            )
        ).one()
    return int(left), int(done)


def leases_held(services: Services, pid: int) -> int:
    """How many tasks the worker process `pid` holds a lease on now (its owner is host:pid:nonce)."""
    with services.db.read() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(tasks)
                .where(tasks.c.finished_at.is_(None), tasks.c.lease_owner.like(f"%:{pid}:%"))
            ).scalar_one()
        )


# --- the checks ----------------------------------------------------------------------------------


def node_step(task_type: TaskType) -> int:
    """The 1-based index of the step at which the operation calls the provider for its nodes."""
    return [base(step) for step in plan_for(task_type)].index(NODE_STEP[task_type]) + 1


def check_outcome(services: Services, work: Workload, context: str) -> Counter[str]:
    """Every invariant the crash run must keep; returns how many tasks ended in each status."""
    with services.db.read() as conn:
        task_rows = {row.task_id: row for row in conn.execute(select(tasks))}
        node_rows = {row.id: row for row in conn.execute(select(nodes))}
        cluster_rows = {row.id: row for row in conn.execute(select(clusters))}
        call_rows = list(conn.execute(select(sim_calls)))
    assert set(task_rows) == {t.task_id for t in work.tasks}, context

    # Every task ended, released its lease, and a Success ran every step of its plan.
    statuses: Counter[str] = Counter()
    for expected in work.tasks:
        row = task_rows[expected.task_id]
        statuses[row.status] += 1
        where = f"{expected.task_type} {expected.task_id} {context}"
        assert row.status != TaskStatus.PROCESSING.value, where
        assert row.finished_at is not None, where
        assert row.lease_owner is None, where
        errors = json.loads(row.errors)
        if row.status == TaskStatus.SUCCESS.value:
            assert row.current_step == row.total_steps == len(plan_for(expected.task_type)), where
            assert errors == [], where
        else:
            # No fault is injected: the only way to fail is to lose the worker max_attempts times.
            assert row.status == TaskStatus.FAILED.value, where
            assert [e["Code"] for e in errors] == ["TaskLost"], where
            assert row.lost_attempts >= row.lost_streak >= 3, where

    # No step's effect was applied twice: each (TaskId, step) token once, from a known task.
    tokens = Counter(row.token for row in call_rows)
    assert [t for t, n in tokens.items() if n > 1] == [], context
    for expected in work.tasks:
        row = task_rows[expected.task_id]
        index = node_step(expected.task_type)
        mine = [c for c in call_rows if c.token.startswith(f"{expected.task_id}:")]
        where = f"{expected.task_type} {expected.task_id} {context}"
        if row.current_step >= index:
            assert [c.token for c in mine] == [f"{expected.task_id}:{index}"], where
            assert mine[0].action == NODE_ACTION[expected.task_type], where
            assert sorted(json.loads(mine[0].instance_ids)) == sorted(expected.targets), where
        elif mine:
            # Killed between the provider's answer and its record (the call is made outside the step's
            # transaction, decision 0044), then lost until it failed before it could ask again: the call
            # stands, once, under that step's token. A task that did not fail never called early.
            assert row.status == TaskStatus.FAILED.value, where
            assert row.current_step == index - 1, where
            assert [c.token for c in mine] == [f"{expected.task_id}:{index}"], where
    assert len(call_rows) == sum(1 for c in call_rows if c.token.split(":")[0] in task_rows), context

    # No node was created twice: each cluster holds its seeded nodes and exactly what AddNodes accepted.
    for cluster_id in [*work.node_clusters, *work.cluster_ops]:
        added = {n for t in work.tasks if t.cluster_id == cluster_id and t.count for n in t.targets}
        assert sum(t.count for t in work.tasks if t.cluster_id == cluster_id) == len(added), context
        held = {node_id for node_id, row in node_rows.items() if row.cluster_id == cluster_id}
        assert held == work.seeded[cluster_id] | added, context

    # Node and cluster statuses follow the outcome of the one task that acted on them.
    touched: set[str] = set()
    for expected in work.tasks:
        row = task_rows[expected.task_id]
        target = NODE_TARGET[expected.task_type]
        for node_id in expected.targets:
            touched.add(node_id)
            node = node_rows[node_id]
            where = f"node {node_id} of {expected.task_type} {expected.task_id} {row.status} {context}"
            gone = node.deleted_at is not None
            done = gone if target is None else (not gone and node.status == target.value)
            if row.status == TaskStatus.SUCCESS.value:
                assert done, where
            else:
                assert done or (not gone and node.status == NodeStatus.EXCEPTION.value), where
    for node_id, node in node_rows.items():
        assert node.task_id is None, f"node {node_id} keeps lock {node.task_id} {context}"
        if node_id not in touched:
            assert (node.status, node.deleted_at) == (NodeStatus.RUNNING.value, None), context
    after = {
        TaskType.STOP_CLUSTER: ClusterStatus.STOPPED,
        TaskType.START_CLUSTER: ClusterStatus.RUNNING,
        TaskType.DELETE_CLUSTER: ClusterStatus.RELEASING,
    }
    for cluster_id, cluster in cluster_rows.items():
        where = f"cluster {cluster_id} {context}"
        assert cluster.task_id is None, where
        task_type = work.cluster_ops.get(cluster_id)
        if task_type is None:
            assert (cluster.status, cluster.deleted_at) == (ClusterStatus.RUNNING.value, None), where
            continue
        [expected] = [t for t in work.tasks if t.cluster_id == cluster_id]
        if task_rows[expected.task_id].status == TaskStatus.SUCCESS.value:
            assert cluster.status == after[task_type].value, where
            assert (cluster.deleted_at is not None) == (task_type is TaskType.DELETE_CLUSTER), where
        else:
            assert (cluster.status, cluster.deleted_at) == (ClusterStatus.EXCEPTION.value, None), where

    # AddComputes that succeeded list exactly the instances the call answered with.
    for expected in work.tasks:
        row = task_rows[expected.task_id]
        if expected.task_type is TaskType.ADD_COMPUTES and row.status == TaskStatus.SUCCESS.value:
            listed = [i["InstanceId"] for i in json.loads(row.result)["Instances"]]
            assert sorted(listed) == sorted(expected.targets), context
    return statuses


# --- the tests -----------------------------------------------------------------------------------


def test_sigkilled_workers_lose_no_task_and_repeat_no_effect(
    database: str, services_for: Build, tmp_path: Path
) -> None:
    """Two workers, one SIGKILLed at random moments and replaced: every task ends, no effect twice."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    services = services_for(database)
    work = enqueue_workload(services, principal(services, "crash"), rng)
    assert len(work.tasks) >= 200
    env = worker_env(
        tmp_path / "home",
        database,
        sim_step_seconds=str(STEP_SECONDS),
        lease_seconds=str(LEASE_SECONDS),
        max_attempts="3",
        worker_concurrency="4",
        poll_interval="0.05",
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    spawned = 0

    def spawn() -> WorkerProcess:
        nonlocal spawned
        spawned += 1
        return WorkerProcess(env, logs / f"worker{spawned}.log")

    workers = [spawn(), spawn()]
    start = time.monotonic()
    deadline = start + DEADLINE
    total = sum(len(plan_for(t.task_type)) for t in work.tasks)
    # Kill at random points of progress (not of time, so a faster machine gets as many kills), each
    # time a worker that holds a lease right now, so that the kill interrupts a step in flight.
    thresholds = sorted(rng.uniform(0.05, 0.8) for _ in range(KILLS))
    kills: list[tuple[float, float, int]] = []
    try:
        for threshold in thresholds:
            while time.monotonic() < deadline:
                left, done = progress(services)
                if left == 0 or done >= threshold * total:
                    break
                time.sleep(0.02)
            ready = [i for i, worker in enumerate(workers) if worker.ready()]
            while left and not ready and time.monotonic() < deadline:
                time.sleep(0.05)
                ready = [i for i, worker in enumerate(workers) if worker.ready()]
                left, _ = progress(services)
            if left == 0 or not ready:
                break
            victim = rng.choice(ready)
            until = time.monotonic() + 2.0
            while not leases_held(services, workers[victim].process.pid) and time.monotonic() < until:
                time.sleep(0.002)
            held = leases_held(services, workers[victim].process.pid)
            workers[victim].kill()
            kills.append((round(time.monotonic() - start, 2), round(done / total, 2), held))
            workers[victim] = spawn()
        while progress(services)[0] and time.monotonic() < deadline:
            for worker in workers:
                assert worker.alive(), worker.log()
            time.sleep(0.2)
    finally:
        for worker in workers:
            worker.stop()
    elapsed = time.monotonic() - start
    context = f"(seed {seed}, kills at (s, progress, leases held) {kills}, {elapsed:.1f}s)"
    assert progress(services)[0] == 0, f"tasks still running after {DEADLINE}s {context}"
    assert len(kills) >= 2, f"the run ended before the workers were killed twice {context}"
    statuses = check_outcome(services, work, context)
    # Only a task lost max_attempts times with no step of it recorded in between may fail: each kill
    # costs the tasks it interrupts one lease, not an attempt of their budget (decision 0063). Counting
    # every lease lost in a task's life, 5 of 10 runs on a loaded machine (two CPU-bound processes beside,
    # 1.5 s leases) failed 3-42 of these 227 tasks; 0 of 10 since.
    assert statuses[TaskStatus.SUCCESS.value] >= len(work.tasks) * 0.9, f"{statuses} {context}"
    with services.db.read() as conn:
        recovered = sum(conn.execute(select(tasks.c.lost_attempts)).scalars())
    # Each kill took down a worker while it held leases, and those tasks were taken over.
    assert sum(held for _, _, held in kills) > 0, f"no kill interrupted a held lease {context}"
    assert recovered > 0, f"no lease was ever taken over {context}"
    print(f"{statuses} {recovered} leases recovered {context}")


def test_step_hanging_past_its_lease_fails_the_task_after_max_attempts(
    database: str, services_for: Build
) -> None:
    """A StopNodes step that hangs past its lease is reclaimed twice more, then the task ends Failed."""
    services = services_for(
        database,
        sim_step_seconds=0.0,
        lease_seconds=1.0,
        max_attempts=3,
        worker_concurrency=4,
        poll_interval=0.05,
        sim_faults="StopNodes.hang_step=2;StopNodes.hang_seconds=3",
    )
    who = principal(services, "hang")
    cluster_id = seed_cluster(
        services.db,
        services.clock,
        account_id=who.account.id,
        region=services.settings.region,
        name="hang",
        computes=2,
    )
    with services.db.read() as conn:
        node_ids = [n["id"] for n in cluster_store.cluster_nodes(conn, cluster_id) if n["role"] == "compute"]
    instances = _instances(node_ids[:1])
    accepted = services.operations.node_operation(
        who,
        ids.request_id(),
        TaskType.STOP_COMPUTES,
        cluster_id,
        instances,
        Role.COMPUTE,
        {"Action": "StopNodes", "ClusterId": cluster_id, **dict(instances)},
    )
    deadline = time.monotonic() + 60
    services.start_worker()
    while time.monotonic() < deadline:
        with services.db.read() as conn:
            row = conn.execute(select(tasks).where(tasks.c.task_id == accepted.task_id)).one()
        if row.finished_at is not None:
            break
        time.sleep(0.05)
    # Three leases of 1 s expire one after another (counted in lost_attempts, not timed: the machine may
    # be loaded); the fourth claim finds the attempts used up.
    assert row.status == TaskStatus.FAILED.value, row
    assert row.lost_attempts == 3
    assert row.current_step == 1
    assert row.lease_owner is None
    [error] = json.loads(row.errors)
    assert error["Code"] == "TaskLost"
    assert "3 times" in error["Message"]
    with services.db.read() as conn:
        node = conn.execute(select(nodes).where(nodes.c.id == node_ids[0])).one()
        other = conn.execute(select(nodes).where(nodes.c.id == node_ids[1])).one()
        calls = list(conn.execute(select(sim_calls)))
    assert (node.status, node.task_id) == (NodeStatus.EXCEPTION.value, None)
    assert (other.status, other.task_id) == (NodeStatus.RUNNING.value, None)
    assert calls == []
