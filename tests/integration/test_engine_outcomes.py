"""What engine/steps.py records of what the provider confirmed, in process on the simulated clock: the
node step's split into done and failed nodes and its log lines, the whole call's failure, the prepare
step's failed nodes, new addresses, each end status with the cluster's and nodes' statuses, Result's
Instances and its exact bytes, the injected failure and the capacity check, RecoverCluster's columns.

The provider is a scripted SimulatedCloud (our own Provider), with a per-host answer for each node call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hpcplane import ids
from hpcplane.api.actions.operations import read_create_cluster
from hpcplane.api.params import Params
from hpcplane.domain.errors import ProviderFailed
from hpcplane.domain.plans import plan_for
from hpcplane.domain.tasks import TaskType
from hpcplane.providers.faults import Fault, parse_faults
from hpcplane.providers.nodes import NodeRef, NodesOutcome
from hpcplane.providers.simulated import SimulatedCloud
from hpcplane.store import clusters as cluster_store
from hpcplane.store.tables import cluster_logs
from hpcplane.wiring import Services
from tests.integration.conftest import START, FakeClock, services_on
from tests.integration.test_engine_steps import (
    add_task,
    cluster_row,
    cluster_task,
    hosts,
    node_task,
    principal,
    run_to_end,
    seeded,
    step_of,
    task_row,
)

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
FAILED = "failed"  # Scripted.answers: the node failed (with Scripted.reason)
UNCONFIRMED = "unconfirmed"  # Scripted.answers: the node is left out of the answer


class Scripted(SimulatedCloud):
    """The simulated cloud, answering each node call as scripted per host name."""

    def __init__(self, services: Services, spec: str = "") -> None:
        super().__init__(
            services.clock,
            db=services.db,
            step_seconds=0,
            jitter=0,
            capacity=100,
            seed=0,
            faults=parse_faults(spec),
        )
        self.answers: dict[str, str] = {}  # hostname -> FAILED, UNCONFIRMED or the IP it now has
        self.reason = "slurmd did not answer"
        self.faulted: set[str] = set()  # failed by an injected fault, never asked
        self.error: str | None = None  # every node call fails whole with this reason
        self.seen: list[tuple[str, str, dict[str, str]]] = []  # per call: the cluster's and nodes' statuses
        self.services = services

    def watch(self, action: str, cluster_id: str) -> None:
        status = cluster_row(self.services, cluster_id).status
        found = hosts(self.services, cluster_id)
        self.seen.append((action, status, {name: row.status for name, row in found.items()}))

    def node_fails(self, task_type: TaskType, hostname: str) -> bool:
        return hostname in self.faulted

    def ensure_controller(self, token: str, cluster_id: str) -> None:
        self.watch("controller", cluster_id)

    def _log(self, token: str, action: str, nodes: list[NodeRef]) -> NodesOutcome:
        if self.error is not None:
            raise ProviderFailed(what=action, reason=self.error)
        super()._log(token, action, nodes)
        return self._answer(nodes)

    def prepare_cluster(self, token: str, cluster_id: str, nodes: list[NodeRef]) -> NodesOutcome:
        self.watch("prepare", cluster_id)
        return self._answer(nodes)

    def ensure_nodes_running(
        self, token: str, cluster_id: str, nodes: list[NodeRef], *, new: bool
    ) -> NodesOutcome:
        self.watch("nodes", cluster_id)
        return super().ensure_nodes_running(token, cluster_id, nodes, new=new)

    def _answer(self, nodes: list[NodeRef]) -> NodesOutcome:
        ready, failed = {}, {}
        for node in nodes:
            answer = self.answers.get(node.hostname, node.ip)
            if answer == FAILED:
                failed[node.instance_id] = self.reason
            elif answer != UNCONFIRMED:
                ready[node.instance_id] = answer
        return NodesOutcome(ready, failed)


@pytest.fixture(params=BACKENDS)
def services(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Services]:
    with services_on(request, request.param, tmp_path, sim_capacity=100) as built:
        yield built


def scripted(services: Services, spec: str = "") -> Scripted:
    fake = Scripted(services, spec)
    services.engine.provider = fake
    return fake


def logs(services: Services, cluster_id: str) -> list[tuple[str, str]]:
    with services.db.read() as conn:
        rows = conn.execute(
            select(cluster_logs.c.level, cluster_logs.c.message)
            .where(cluster_logs.c.cluster_id == cluster_id)
            .order_by(cluster_logs.c.id)
        ).all()
    return [(row.level, row.message) for row in rows]


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def test_node_step_splits_done_failed_unconfirmed_and_faulted_nodes(services: Services) -> None:
    """StopNodes: a confirmed node is stopped; a failed one, one the provider left out and one failed by
    a fault end in exception with a NodeFailed error each; PartialFail; one log line per failed node, the
    count of nodes done, the start and the end (a warning)."""
    fake = scripted(services)
    who = principal(services)
    cluster_id = seeded(services, who, computes=5)
    found = hosts(services, cluster_id)
    fake.answers = {"compute1": FAILED, "compute2": UNCONFIRMED}
    fake.faulted = {"compute3"}
    names = ["compute0", "compute1", "compute2", "compute3"]
    node = {name: found[name].id for name in names}
    task_id = node_task(services, who, TaskType.STOP_COMPUTES, cluster_id, list(node.values()))
    assert isinstance(services.clock, FakeClock)
    services.clock.advance(5)
    run_to_end(services.engine)
    row = task_row(services, task_id)
    assert (row.status, json.loads(row.result)) == ("PartialFail", {})
    faulted = {
        "Code": "NodeFailed",
        "Message": "StopInstances failed on compute3",
        "InstanceId": node["compute3"],
    }
    errors = json.loads(row.errors)
    assert errors[0] == faulted
    assert sorted(errors[1:], key=lambda e: e["InstanceId"]) == sorted(
        [
            {
                "Code": "NodeFailed",
                "Message": "StopInstances failed on compute1: slurmd did not answer",
                "InstanceId": node["compute1"],
            },
            {
                "Code": "NodeFailed",
                "Message": "StopInstances failed on compute2: the provider did not confirm it",
                "InstanceId": node["compute2"],
            },
        ],
        key=lambda e: e["InstanceId"],
    )
    after = hosts(services, cluster_id)
    assert {n: (after[n].status, after[n].task_id) for n in [*names, "compute4"]} == {
        "compute0": ("stopped", None),
        "compute1": ("exception", None),
        "compute2": ("exception", None),
        "compute3": ("exception", None),
        "compute4": ("running", None),
    }
    moved = START + timedelta(seconds=5)
    assert {n: after[n].updated_at for n in names} == dict.fromkeys(names, moved)
    lines = logs(services, cluster_id)
    total = len(plan_for(TaskType.STOP_COMPUTES))
    assert lines[0] == ("info", f"Task {task_id} started ({total} steps).")
    assert lines[1] == ("error", f"StopInstances failed on compute3 ({node['compute3']}).")
    assert sorted(lines[2:4]) == [
        ("error", f"StopInstances failed on compute1: slurmd did not answer ({node['compute1']})."),
        ("error", f"StopInstances failed on compute2: the provider did not confirm it ({node['compute2']})."),
    ]
    assert lines[4:] == [
        ("info", "StopInstances: 1 of 4 nodes done."),
        ("warn", f"Task {task_id} ended PartialFail."),
    ]
    assert cluster_row(services, cluster_id).status == "running"


def test_every_node_failing_is_failed_and_its_end_an_error_line(services: Services) -> None:
    fake = scripted(services)
    who = principal(services)
    cluster_id = seeded(services, who, computes=2)
    found = hosts(services, cluster_id)
    fake.answers = {"compute0": FAILED, "compute1": UNCONFIRMED}
    task_id = node_task(
        services, who, TaskType.STOP_COMPUTES, cluster_id, [found["compute0"].id, found["compute1"].id]
    )
    run_to_end(services.engine)
    assert task_row(services, task_id).status == "Failed"
    lines = logs(services, cluster_id)
    assert lines[-2:] == [
        ("info", "StopInstances: 0 of 2 nodes done."),
        ("error", f"Task {task_id} ended Failed."),
    ]
    assert {hosts(services, cluster_id)[n].status for n in ("compute0", "compute1")} == {"exception"}


@pytest.mark.parametrize("release", ["true", "false"])
def test_deleting_nodes_deletes_the_done_ones_only(services: Services, release: str) -> None:
    """DeleteNodes: the node done is deleted and freed, the failed one stays, in exception; untracking
    (ReleaseInstance=false) is logged as UntrackInstances, its errors still name DeleteInstances."""
    fake = scripted(services)
    who = principal(services)
    cluster_id = seeded(services, who, computes=2)
    found = hosts(services, cluster_id)
    fake.answers = {"compute1": FAILED}
    targets = [found["compute0"].id, found["compute1"].id]
    task_id = node_task(services, who, TaskType.DELETE_COMPUTES, cluster_id, targets, ReleaseInstance=release)
    run_to_end(services.engine)
    row = task_row(services, task_id)
    assert row.status == "PartialFail"
    message = "DeleteInstances failed on compute1: slurmd did not answer"
    assert json.loads(row.errors) == [{"Code": "NodeFailed", "Message": message, "InstanceId": targets[1]}]
    action = "DeleteInstances" if release == "true" else "UntrackInstances"
    assert logs(services, cluster_id)[-3:] == [
        ("error", f"{message} ({targets[1]})."),
        ("info", f"{action}: 1 of 2 nodes done."),
        ("warn", f"Task {task_id} ended PartialFail."),
    ]
    after = hosts(services, cluster_id)
    assert (after["compute0"].deleted_at, after["compute0"].task_id) == (START, None)
    assert (after["compute1"].status, after["compute1"].deleted_at, after["compute1"].task_id) == (
        "exception",
        None,
        None,
    )


def test_new_addresses_are_recorded_and_listed_in_the_result(services: Services) -> None:
    """AddNodes: the address the provider gives a node replaces the one held, an empty one leaves it; a
    failed node is left out of Result's Instances; Result is compact JSON in its keys' order."""
    fake = scripted(services)
    who = principal(services)
    cluster_id = seeded(services, who, computes=1)
    task_id = add_task(services, who, cluster_id, 3)
    before = hosts(services, cluster_id)
    new = sorted(name for name in before if name.startswith("compute") and name != "compute0")
    assert len(new) == 3
    fake.answers = {new[0]: "10.7.0.1", new[1]: "", new[2]: FAILED}
    run_to_end(services.engine)
    row = task_row(services, task_id)
    assert row.status == "PartialFail"
    after = hosts(services, cluster_id)
    assert after[new[0]].private_ip == "10.7.0.1"
    assert after[new[1]].private_ip == before[new[1]].private_ip != ""
    assert (after[new[2]].status, after[new[2]].private_ip) == ("exception", before[new[2]].private_ip)
    result = json.loads(row.result)
    assert sorted(result["Instances"], key=lambda i: i["Hostname"]) == [
        {"InstanceId": after[n].id, "Ip": after[n].private_ip, "Hostname": n, "role": "compute"}
        for n in new[:2]
    ]
    assert row.result == compact(result)
    assert list(result["Instances"][0]) == ["InstanceId", "Ip", "Hostname", "role"]


def create(services: Services, computes: int = 1) -> tuple[str, str]:
    who = principal(services)
    raw = {"Name": "outcomes", "KeyPairName": "k", "EcsOrder.Compute.Count": str(computes)}
    accepted = services.operations.create_cluster(
        who, ids.request_id(), read_create_cluster(Params(raw)), raw
    )
    return accepted.cluster_id, accepted.task_id


def test_create_cluster_ends_running_with_every_instance_in_its_result(services: Services) -> None:
    """CreateCluster: creating until its nodes run (initing from run-instances), init from begin-init;
    at the end running, every node listed in Result with its address, host name and role."""
    fake = scripted(services)
    cluster_id, task_id = create(services)
    run_to_end(services.engine)
    assert [(action, status, sorted(set(found.values()))) for action, status, found in fake.seen] == [
        ("prepare", "creating", ["uninit"]),
        ("controller", "init", ["initing"]),
        ("nodes", "init", ["initing"]),
    ]
    row = task_row(services, task_id)
    assert row.status == "Success"
    found = hosts(services, cluster_id)
    assert {n.status for n in found.values()} == {"running"}
    result = json.loads(row.result)
    assert sorted(
        (i["Hostname"], i["role"], i["Ip"], i["InstanceId"]) for i in result["Instances"]
    ) == sorted((n.hostname, n.role, n.private_ip, n.id) for n in found.values())
    assert row.result == compact(result)
    cluster = cluster_row(services, cluster_id)
    assert (cluster.status, cluster.task_id) == ("running", None)
    assert logs(services, cluster_id)[-1] == ("info", f"Task {task_id} ended Success.")


@pytest.mark.parametrize("failing", ["manager0", "i-unknown"])
def test_a_node_failing_at_prepare_fails_create_cluster(services: Services, failing: str) -> None:
    """run-instances: a node the provider failed fails the task with NodeFailed naming its host (or its
    id, for one the store does not hold); the cluster and its nodes end in exception, none listed."""
    fake = scripted(services)
    cluster_id, task_id = create(services)
    if failing == "i-unknown":
        original = fake._answer

        def answer(nodes: list[NodeRef]) -> NodesOutcome:
            done = original(nodes)
            return NodesOutcome(done.ready, {"i-unknown": "no such instance"})

        fake.prepare_cluster = lambda token, cluster_id, nodes: answer(nodes)  # type: ignore[method-assign]
        fake.reason = "no such instance"
    else:
        fake.answers = {failing: FAILED}
        fake.reason = "no such instance"
    run_to_end(services.engine)
    row = task_row(services, task_id)
    message = f"RunInstances failed on {failing}: no such instance"
    assert (row.status, json.loads(row.errors)) == ("Failed", [{"Code": "NodeFailed", "Message": message}])
    assert row.current_step == step_of(TaskType.CREATE_CLUSTER, "run-instances")
    assert row.result == compact({"Instances": []})
    step = row.current_step
    assert logs(services, cluster_id)[-2:] == [
        ("error", f"Step {step} (run-instances): {message}"),
        ("error", f"Task {task_id} ended Failed."),
    ]
    assert (cluster_row(services, cluster_id).status, cluster_row(services, cluster_id).task_id) == (
        "exception",
        None,
    )
    assert {(n.status, n.task_id) for n in hosts(services, cluster_id).values()} == {("exception", None)}


def test_a_whole_call_failing_fails_the_task_with_its_error(services: Services) -> None:
    """StopCluster's node call raising ProviderFailed: its Errors entry, a log line naming the step, the
    cluster in exception; the nodes not at their target in exception."""
    fake = scripted(services)
    fake.error = "slurmctld is down"
    who = principal(services)
    cluster_id = seeded(services, who, computes=1)
    task_id = cluster_task(services, who, TaskType.STOP_CLUSTER, cluster_id)
    run_to_end(services.engine)
    row = task_row(services, task_id)
    step = step_of(TaskType.STOP_CLUSTER, "stop-nodes")
    [error] = json.loads(row.errors)
    assert (row.status, row.current_step, error["Code"]) == ("Failed", step, "ProviderFailed")
    assert "slurmctld is down" in error["Message"]
    assert logs(services, cluster_id)[-2:] == [
        ("error", f"Step {step} (stop-nodes): {error['Message']}"),
        ("error", f"Task {task_id} ended Failed."),
    ]
    assert cluster_row(services, cluster_id).status == "exception"
    assert {(n.status, n.task_id) for n in hosts(services, cluster_id).values()} == {("exception", None)}


def test_failing_after_the_node_step_keeps_the_nodes_at_their_target(services: Services) -> None:
    """An injected failure after StopCluster's nodes stopped: they stay stopped; the cluster is exception
    and the fault's message is logged with its step; nothing more is asked of the provider."""
    step = step_of(TaskType.STOP_CLUSTER, "stop-nodes") + 1
    scripted(services, f"StopCluster.fail_step={step}")
    who = principal(services)
    cluster_id = seeded(services, who, computes=1)
    task_id = cluster_task(services, who, TaskType.STOP_CLUSTER, cluster_id)
    run_to_end(services.engine)
    row = task_row(services, task_id)
    assert (row.status, row.current_step) == ("Failed", step)
    assert {(n.status, n.task_id) for n in hosts(services, cluster_id).values()} == {("stopped", None)}
    message = f"An error occurred while calling the ECS API operation (step {step})."
    assert logs(services, cluster_id)[-2:] == [
        ("error", f"Step {step} (wait-nodes): {message}"),
        ("error", f"Task {task_id} ended Failed."),
    ]
    assert (cluster_row(services, cluster_id).status, cluster_row(services, cluster_id).task_id) == (
        "exception",
        None,
    )


def test_delete_cluster_failing_keeps_the_cluster_and_its_nodes(services: Services) -> None:
    scripted(services, "DeleteCluster.fail_step=2")
    who = principal(services)
    cluster_id = seeded(services, who, computes=1)
    task_id = cluster_task(services, who, TaskType.DELETE_CLUSTER, cluster_id)
    run_to_end(services.engine)
    assert task_row(services, task_id).status == "Failed"
    cluster = cluster_row(services, cluster_id)
    assert (cluster.status, cluster.deleted_at, cluster.task_id) == ("exception", None, None)
    assert {(n.status, n.deleted_at) for n in hosts(services, cluster_id).values()} == {("exception", None)}


@pytest.mark.parametrize("failing", [None, "compute0"])
def test_delete_cluster_deletes_it_and_every_node(services: Services, failing: str | None) -> None:
    """DeleteCluster: the cluster and every node deleted at the end, a node that failed to release too
    (PartialFail: the cluster is gone all the same)."""
    fake = scripted(services)
    fake.answers = {} if failing is None else {failing: FAILED}
    who = principal(services)
    cluster_id = seeded(services, who, computes=2)
    task_id = cluster_task(services, who, TaskType.DELETE_CLUSTER, cluster_id)
    run_to_end(services.engine)
    assert task_row(services, task_id).status == ("Success" if failing is None else "PartialFail")
    cluster = cluster_row(services, cluster_id)
    assert (cluster.status, cluster.deleted_at, cluster.task_id) == ("releasing", START, None)
    assert {(n.deleted_at, n.task_id) for n in hosts(services, cluster_id).values()} == {(START, None)}


@pytest.mark.parametrize("fails", [False, True])
def test_recover_cluster_sets_the_columns_given_when_it_succeeds(services: Services, fails: bool) -> None:
    """RecoverCluster: init from its first step; at a success, running with the image and OS given (a
    parameter not given leaves its column); at a failure, exception with the columns as they were."""
    fake = scripted(services, "RecoverCluster.fail_step=9" if fails else "")
    assert fake.fault(TaskType.RECOVER_CLUSTER) == (Fault(fail_step=9) if fails else Fault())
    who = principal(services)
    cluster_id = seeded(services, who, computes=1, status="exception")
    before = cluster_row(services, cluster_id)
    raw = {"ImageId": "m-recovered", "OsTag": "Rocky_9", "ImageOwnerAlias": "", "ClientVersion": "2.0.1"}
    with services.db.write() as conn:
        cluster_store.update_cluster(conn, cluster_id, scheduler_type="pbs")
    task_id = services.operations.cluster_operation(
        who,
        "req-recover",
        TaskType.RECOVER_CLUSTER,
        cluster_id,
        {"Action": "RecoverCluster", "ClusterId": cluster_id, **raw},
    ).task_id
    [lease] = services.engine.claim()
    services.engine.step_once(lease)
    assert cluster_row(services, cluster_id).status == "init"
    run_to_end(services.engine)
    after = cluster_row(services, cluster_id)
    assert task_row(services, task_id).status == ("Failed" if fails else "Success")
    columns = ("image_id", "os_tag", "image_owner_alias", "client_version", "scheduler_type")
    got = tuple(getattr(after, c) for c in columns)
    if fails:
        assert after.status == "exception"
        assert got == (before.image_id, before.os_tag, before.image_owner_alias, before.client_version, "pbs")
    else:
        assert after.status == "running"
        assert got == ("m-recovered", "Rocky_9", before.image_owner_alias, "2.0.1", "pbs")
