"""The provider call a step makes, outside any transaction: read the targets, ask, keep the answer.

A step that acts on the world does so in two parts: here, before its transaction opens, the provider
is asked with the step's token (a call that may take tens of seconds, while the heartbeat keeps the
lease alive); then engine/steps.py records what the provider confirmed in the step's fenced
transaction. If that transaction is lost (the worker dies, the lease is taken over), the next holder
asks again with the same token and gets the same answer: the effect happens once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hpcplane.domain.errors import DbError, HpcplaneError
from hpcplane.domain.plans import base
from hpcplane.domain.tasks import TaskType
from hpcplane.providers.base import Provider
from hpcplane.providers.nodes import NodeRef, NodesOutcome
from hpcplane.store import clusters as store
from hpcplane.store.db import Database
from hpcplane.store.engine import Lease

# The step at which each operation acts on its nodes (and at which nodes may fail).
NODE_STEP: dict[TaskType, str] = {
    TaskType.CREATE_CLUSTER: "join-nodes",
    TaskType.ADD_COMPUTES: "join-nodes",
    TaskType.START_CLUSTER: "start-nodes",
    TaskType.START_COMPUTES: "start-nodes",
    TaskType.RESET_COMPUTE: "join-nodes",
    TaskType.STOP_CLUSTER: "stop-nodes",
    TaskType.STOP_COMPUTES: "stop-nodes",
    TaskType.DELETE_CLUSTER: "release-nodes",
    TaskType.DELETE_COMPUTES: "release-nodes",
    TaskType.RECOVER_CLUSTER: "reinstall-nodes",
}

# The cloud action the node step stands for (Errors' messages, the simulated cloud's log).
NODE_ACTION: dict[TaskType, str] = {
    TaskType.CREATE_CLUSTER: "RunInstances",
    TaskType.ADD_COMPUTES: "RunInstances",
    TaskType.START_CLUSTER: "StartInstances",
    TaskType.START_COMPUTES: "StartInstances",
    TaskType.RESET_COMPUTE: "ReInitDisks",
    TaskType.STOP_CLUSTER: "StopInstances",
    TaskType.STOP_COMPUTES: "StopInstances",
    TaskType.DELETE_CLUSTER: "DeleteInstances",
    TaskType.DELETE_COMPUTES: "DeleteInstances",
    TaskType.RECOVER_CLUSTER: "ReInitDisks",
}

# CreateCluster's steps before its nodes join: the network and the manager and login nodes, then the
# scheduler (at the first of install-scheduler's repetitions).
PREPARE_STEP = "run-instances"
CONTROLLER_STEP = "install-scheduler"


@dataclass
class Outcome:
    """What the provider confirmed for one step: per node, or the whole call's failure."""

    kind: str  # "prepare", "controller" or "nodes"
    nodes: list[NodeRef] = field(default_factory=list)  # the nodes asked of the provider
    faulted: list[NodeRef] = field(default_factory=list)  # failed by an injected fault, not asked
    result: NodesOutcome = field(default_factory=NodesOutcome)
    error: dict[str, str] | None = None  # the whole call failed: an Errors entry


def releases(lease: Lease) -> bool:
    """DeleteNodes / DeleteCluster with ReleaseInstance=false leave the instances (untrack them)."""
    return str(lease.request.get("ReleaseInstance", "true")).lower() != "false"


def act(db: Database, lease: Lease, index: int, provider: Provider, token: str) -> Outcome | None:
    """Make the provider call of step `index`, if it has one (None: the step only changes the store)."""
    task_type = lease.task_type
    step = lease.plan[index - 1]
    name = base(step)
    if provider.fault(task_type).fail_step == index:
        return None  # the injected failure ends the task before it acts
    if name == "check-quota" and lease.state.get("capacity") is not None:
        return None
    if task_type is TaskType.CREATE_CLUSTER and name == PREPARE_STEP:
        kind = "prepare"
    elif task_type is TaskType.CREATE_CLUSTER and step in (CONTROLLER_STEP, f"{CONTROLLER_STEP}#1"):
        kind = "controller"
    elif name == NODE_STEP[task_type]:
        kind = "nodes"
    else:
        return None
    with db.driver() as driver:  # one statement: no transaction's BEGIN and COMMIT around it
        rows = store.node_rows(driver, lease.cluster_id, list(lease.state.get("targets", [])))
    refs = [NodeRef(r["id"], r["hostname"], r["role"], r["private_ip"]) for r in rows]
    outcome = Outcome(kind)
    if kind == "prepare":
        outcome.nodes = [n for n in refs if n.role != "compute"]
    elif kind == "nodes":
        outcome.faulted = [n for n in refs if provider.node_fails(task_type, n.hostname)]
        outcome.nodes = [n for n in refs if n not in outcome.faulted]
    try:
        outcome.result = _call(provider, kind, task_type, token, lease, outcome.nodes)
    except DbError:
        raise  # the store failed, not the provider: the step is retried (runner.py)
    except HpcplaneError as error:
        reason = getattr(error, "reason", "")
        message = f"{error.message} {reason}".strip() if reason not in error.message else error.message
        outcome.error = {"Code": error.code, "Message": message}
    return outcome


def _call(
    provider: Provider, kind: str, task_type: TaskType, token: str, lease: Lease, nodes: list[NodeRef]
) -> NodesOutcome:
    cluster_id = lease.cluster_id
    if kind == "prepare":
        return provider.prepare_cluster(token, cluster_id, nodes)
    if kind == "controller":
        provider.ensure_controller(token, cluster_id)
        return NodesOutcome()
    if task_type in (TaskType.CREATE_CLUSTER, TaskType.ADD_COMPUTES):
        return provider.ensure_nodes_running(token, cluster_id, nodes, new=True)
    if task_type is TaskType.START_COMPUTES:
        return provider.ensure_nodes_running(token, cluster_id, nodes, new=False)
    if task_type is TaskType.STOP_COMPUTES:
        return provider.ensure_nodes_stopped(token, cluster_id, nodes)
    if task_type in (TaskType.RESET_COMPUTE, TaskType.RECOVER_CLUSTER):
        return provider.reset_nodes(token, cluster_id, nodes)
    if task_type is TaskType.DELETE_COMPUTES:
        return provider.ensure_nodes_absent(token, cluster_id, nodes, release=releases(lease))
    if task_type is TaskType.STOP_CLUSTER:
        return provider.ensure_cluster_stopped(token, cluster_id, nodes)
    if task_type is TaskType.START_CLUSTER:
        return provider.ensure_cluster_running(token, cluster_id, nodes)
    return provider.destroy_cluster(token, cluster_id, nodes, release=releases(lease))
