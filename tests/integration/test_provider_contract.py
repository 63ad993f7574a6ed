"""The provider contract (providers/base.py): token-keyed calls made outside the step's transaction,
whose confirmed outcome alone reaches the store; and host-bound claims (migration 0008)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from hpcplane import ids
from hpcplane.api.actions.operations import read_create_cluster
from hpcplane.api.params import Params
from hpcplane.config import Settings
from hpcplane.domain.accounts import Principal
from hpcplane.domain.errors import ProviderFailed
from hpcplane.domain.tasks import TaskType
from hpcplane.engine.runner import Engine
from hpcplane.providers.faults import Faults
from hpcplane.providers.nodes import NodeRef, NodesOutcome
from hpcplane.providers.simulated import SimulatedCloud
from hpcplane.store.tables import clusters, nodes, sim_calls, tasks
from hpcplane.wiring import Services, build_services
from tests.integration.conftest import database_url, services_on

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


class Instant(SimulatedCloud):
    """The simulated cloud on the engine's store: no step delay, no jitter, no faults, capacity 100."""

    def __init__(self, services: Services) -> None:
        super().__init__(
            services.clock,
            db=services.engine.db,
            step_seconds=0,
            jitter=0,
            capacity=100,
            seed=0,
            faults=Faults(),
        )


class Recording(Instant):
    """The simulated cloud with a scripted outcome, noting what the store held when it was called."""

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.services = services
        self.seen: list[dict[str, str]] = []
        self.fail_nodes: dict[str, str] = {}
        self.controller_error: str | None = None

    def ensure_controller(self, token: str, cluster_id: str) -> None:
        if self.controller_error is not None:
            raise ProviderFailed(what="start slurmctld", reason=self.controller_error)

    def ensure_nodes_running(
        self, token: str, cluster_id: str, nodes_: list[NodeRef], *, new: bool
    ) -> NodesOutcome:
        # Called outside the step's transaction: a write of its own gets through (SQLite has one writer).
        with self.services.engine.db.write() as conn:
            rows = conn.execute(
                select(nodes.c.hostname, nodes.c.status).where(nodes.c.cluster_id == cluster_id)
            )
            self.seen.append({row.hostname: row.status for row in rows})
        done = super().ensure_nodes_running(token, cluster_id, nodes_, new=new)
        failed = {n.instance_id: self.fail_nodes[n.hostname] for n in nodes_ if n.hostname in self.fail_nodes}
        ready = {i: f"10.9.0.{k + 3}" for k, i in enumerate(sorted(done.ready)) if i not in failed}
        return NodesOutcome(ready, failed)


@pytest.fixture(params=BACKENDS)
def services(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Services]:
    with services_on(request, request.param, tmp_path) as built:
        yield built


def principal(services: Services) -> Principal:
    issued = services.accounts.create_account("contract")
    return Principal(services.accounts.find(issued.account_id), issued.access_key_id)


def create(services: Services, who: Principal, computes: int = 2) -> tuple[str, str]:
    raw = {"Name": "contract", "KeyPairName": "k", "EcsOrder.Compute.Count": str(computes)}
    accepted = services.operations.create_cluster(
        who, ids.request_id(), read_create_cluster(Params(raw)), raw
    )
    return accepted.cluster_id, accepted.task_id


def run_to_end(engine: Engine) -> None:
    while leases := engine.claim(4):
        for lease in leases:
            engine.run(lease)


def task(services: Services, task_id: str) -> tuple[str, list[dict[str, str]], dict[str, object]]:
    with services.db.read() as conn:
        row = conn.execute(select(tasks).where(tasks.c.task_id == task_id)).one()
    return row.status, json.loads(row.errors), json.loads(row.result)


def statuses(services: Services, cluster_id: str) -> dict[str, tuple[str, str]]:
    with services.db.read() as conn:
        rows = conn.execute(select(nodes).where(nodes.c.cluster_id == cluster_id)).all()
    return {row.hostname: (row.status, row.private_ip) for row in rows}


def test_a_repeated_token_is_the_same_call(services: Services) -> None:
    """The simulated cloud logs a token once and confirms the same nodes every time it is asked."""
    cloud = services.engine.provider
    refs = [NodeRef("i-1", "compute0", "compute", "192.168.0.10")]
    first = cloud.ensure_nodes_stopped("T-1:3", "c-1", refs)
    again = cloud.ensure_nodes_stopped("T-1:3", "c-1", refs)
    assert first == again == NodesOutcome({"i-1": "192.168.0.10"}, {})
    with services.db.read() as conn:
        rows = conn.execute(
            select(sim_calls.c.action, sim_calls.c.instance_ids).where(sim_calls.c.token == "T-1:3")
        )
        assert [(r.action, json.loads(r.instance_ids)) for r in rows] == [("StopInstances", ["i-1"])]


def test_the_store_changes_only_after_the_provider_confirms(services: Services) -> None:
    """At the node step the provider sees the nodes still initing; afterwards the store holds its answer:
    the confirmed nodes running with the addresses it gave, the failed one in exception with its reason."""
    fake = Recording(services)
    fake.fail_nodes = {"compute1": "slurmd on compute1 did not register in time"}
    services.engine.provider = fake
    who = principal(services)
    cluster_id, task_id = create(services, who)
    run_to_end(services.engine)
    assert fake.seen == [{h: "initing" for h in ("compute0", "compute1", "login0", "manager0")}]
    status, errors, result = task(services, task_id)
    assert status == "PartialFail"
    failed = statuses(services, cluster_id)
    assert failed["compute1"][0] == "exception"
    assert [e["Message"] for e in errors] == [
        "RunInstances failed on compute1: slurmd on compute1 did not register in time"
    ]
    running = {h: ip for h, (s, ip) in failed.items() if s == "running"}
    assert sorted(running) == ["compute0", "login0", "manager0"]
    assert all(ip.startswith("10.9.0.") for ip in running.values())
    listed = {i["Hostname"]: i["Ip"] for i in result["Instances"]}  # type: ignore[attr-defined]
    assert listed == running


def test_a_scheduler_that_does_not_start_fails_the_task(services: Services) -> None:
    fake = Recording(services)
    fake.controller_error = "fatal: slurm_init_msg_engine_port error Address already in use"
    services.engine.provider = fake
    cluster_id, task_id = create(services, principal(services))
    run_to_end(services.engine)
    status, errors, _ = task(services, task_id)
    assert status == "Failed"
    assert errors[-1]["Code"] == "ProviderFailed"
    assert "Address already in use" in errors[-1]["Message"]
    assert fake.seen == []  # the nodes never joined
    with services.db.read() as conn:
        assert (
            conn.execute(select(clusters.c.status).where(clusters.c.id == cluster_id)).scalar_one()
            == "exception"
        )


def test_tasks_of_a_cluster_bound_to_another_host_are_not_claimed(services: Services) -> None:
    """A task copies its cluster's host at creation; a worker claims only unbound tasks and its host's."""
    who = principal(services)
    cluster_id, _ = create(services, who)
    run_to_end(services.engine)
    with services.db.write() as conn:
        conn.execute(
            update(clusters).where(clusters.c.id == cluster_id).values(host="elsewhere", provider="local")
        )
    theirs = services.operations.cluster_operation(
        who,
        ids.request_id(),
        TaskType.STOP_CLUSTER,
        cluster_id,
        {"Action": "StopCluster", "ClusterId": cluster_id},
    ).task_id
    assert services.engine.claim(4) == []
    services.engine.host = "elsewhere"
    [lease] = services.engine.claim(4)
    assert lease.task_id == theirs


class Slow(Instant):
    """A provider whose node call takes longer than the lease (a real slurmd registering)."""

    def __init__(self, services: Services, seconds: float) -> None:
        super().__init__(services)
        self.seconds = seconds

    def ensure_nodes_running(
        self, token: str, cluster_id: str, nodes_: list[NodeRef], *, new: bool
    ) -> NodesOutcome:
        time.sleep(self.seconds)
        return super().ensure_nodes_running(token, cluster_id, nodes_, new=new)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_long_provider_call_keeps_its_lease(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A call twice as long as the lease: the heartbeat keeps the lease, the task is never taken over.

    The lease is 3 s, so a heartbeat may come up to 1.7 s late (2.7 s, the holder's 90%, less its 1 s
    interval) before the holder gives the task up: with a 1.5 s lease (0.85 s) CI once saw a heartbeat's
    commit on a loaded PostgreSQL take the task away, as the engine should when its lease is in doubt."""
    url = database_url(request, backend, tmp_path)
    settings = Settings(
        home=tmp_path / "home", database_url=url, redis_url=None, sim_step_seconds=0.0, lease_seconds=3.0
    )
    services = build_services(settings)
    try:
        services.engine.provider = Slow(services, seconds=6.0)
        _, task_id = create(services, principal(services))
        services.start_worker()
        deadline = time.monotonic() + 60
        while task(services, task_id)[0] == "Processing" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert task(services, task_id)[0] == "Success"
        with services.db.read() as conn:
            lost = conn.execute(select(tasks.c.lost_attempts).where(tasks.c.task_id == task_id)).scalar_one()
            calls = conn.execute(
                select(sim_calls.c.token).where(sim_calls.c.token.like(f"{task_id}:%"))
            ).all()
        assert lost == 0
        assert len(calls) == 1
    finally:
        services.close()
