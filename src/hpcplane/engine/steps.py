"""What each step does to clusters and nodes, recorded in the step's own fenced transaction.

The provider was asked before that transaction opened (engine/acts.py); a step records only what the
provider confirmed (`StepContext.outcome`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from hpcplane.domain.plans import base
from hpcplane.domain.resources import NODE_TARGET, ClusterStatus, NodeStatus
from hpcplane.domain.tasks import OPERATION_NAMES, TaskStatus, TaskType
from hpcplane.engine.acts import NODE_ACTION, NODE_STEP, Outcome
from hpcplane.providers.base import Provider
from hpcplane.store import cluster_logs
from hpcplane.store import clusters as store
from hpcplane.store.engine import Lease

__all__ = ["NODE_ACTION", "NODE_STEP", "StepContext", "apply", "finish", "result_json"]

# Cluster status while the operation runs (set at its first step) and when it ends.
CLUSTER_DURING: dict[TaskType, ClusterStatus] = {
    TaskType.CREATE_CLUSTER: ClusterStatus.CREATING,
    TaskType.START_CLUSTER: ClusterStatus.INIT,
    TaskType.DELETE_CLUSTER: ClusterStatus.RELEASING,
    TaskType.RECOVER_CLUSTER: ClusterStatus.INIT,
}
CLUSTER_AFTER: dict[TaskType, ClusterStatus] = {
    TaskType.CREATE_CLUSTER: ClusterStatus.RUNNING,
    TaskType.START_CLUSTER: ClusterStatus.RUNNING,
    TaskType.STOP_CLUSTER: ClusterStatus.STOPPED,
    TaskType.DELETE_CLUSTER: ClusterStatus.RELEASING,
    TaskType.RECOVER_CLUSTER: ClusterStatus.RUNNING,
}
# RecoverCluster's parameters and the cluster columns they set when it succeeds.
RECOVER_COLUMNS = {
    "ImageId": "image_id",
    "ImageOwnerAlias": "image_owner_alias",
    "OsTag": "os_tag",
    "SchedulerType": "scheduler_type",
    "AccountType": "account_type",
    "ClientVersion": "client_version",
}
WITH_INSTANCES = (TaskType.CREATE_CLUSTER, TaskType.ADD_COMPUTES)


@dataclass
class StepContext:
    """One step being run: where it writes, what it knows, what it reports.

    `open_conn` gives the step's transaction, begun on first use: a step with no effect of its own (most
    of them) never opens one, and its progress is one UPDATE."""

    open_conn: Callable[[], Connection]
    lease: Lease
    index: int
    now: datetime
    provider: Provider
    errors: list[dict[str, str]]
    outcome: Outcome | None = None  # what the provider confirmed for this step, asked before it
    finished: TaskStatus | None = None
    result: dict[str, Any] = field(default_factory=dict)
    state_changed: bool = False  # set_state was called: the step's UPDATE writes the task's state
    lines: list[cluster_logs.Line] = field(default_factory=list)  # its ListClusterLogs lines (log())

    def set_state(self, key: str, value: Any) -> None:
        """Change the task's state (kept with its row): steps change it only through here."""
        self.lease.state[key] = value
        self.state_changed = True

    @property
    def conn(self) -> Connection:
        return self.open_conn()

    @property
    def token(self) -> str:
        """The step's idempotency token for the provider: (TaskId, step)."""
        return f"{self.lease.task_id}:{self.index}"

    @property
    def targets(self) -> list[str]:
        return list(self.lease.state.get("targets", []))

    @property
    def failed(self) -> list[str]:
        return list(self.lease.state.get("failed", []))

    def log(self, level: str, message: str) -> None:
        """One ListClusterLogs line for this task's cluster. It opens no transaction: whoever records the
        step writes its lines in the step's own transaction, and only if the step's fence held
        (cluster_logs.append_many, one statement for a whole round's lines)."""
        operation = OPERATION_NAMES[self.lease.task_type]
        self.lines.append((self.lease.cluster_id, operation, level, message, self.now))


def apply(ctx: StepContext) -> None:
    """Run the effect of step `ctx.index`: an injected failure, a status change, the node step, or the end."""
    task_type = ctx.lease.task_type
    name = base(ctx.lease.plan[ctx.index - 1])
    fault = ctx.provider.fault(task_type)
    if ctx.index == 1:
        ctx.log("info", f"Task {ctx.lease.task_id} started ({len(ctx.lease.plan)} steps).")
    if fault.fail_step == ctx.index:
        message = f"An error occurred while calling the ECS API operation (step {ctx.index})."
        ctx.errors.append({"Code": "EcsError", "Message": message})
        ctx.log("error", f"Step {ctx.index} ({name}): {message}")
        finish(ctx, failed=True)
        return
    capacity = ctx.lease.state.get("capacity")
    if name == "check-quota" and capacity is not None:
        message = f"{capacity['available']} instances available, MinCount {capacity['minCount']}."
        ctx.errors.append({"Code": "InsufficientCapacity", "Message": message})
        ctx.log("error", f"Step {ctx.index} ({name}): {message}")
        finish(ctx, failed=True)
        return
    outcome = ctx.outcome
    if outcome is not None and outcome.error is None and outcome.kind == "prepare":
        _failed_nodes(ctx, outcome, NODE_ACTION[task_type])
    if outcome is not None and outcome.error is not None:
        ctx.errors.append(outcome.error)
        ctx.log("error", f"Step {ctx.index} ({name}): {outcome.error['Message']}")
        finish(ctx, failed=True)
        return
    if ctx.index == 1 and task_type in CLUSTER_DURING:
        store.update_cluster(
            ctx.conn, ctx.lease.cluster_id, status=CLUSTER_DURING[task_type].value, updated_at=ctx.now
        )
    if name == "run-instances":
        store.update_nodes(ctx.conn, ctx.targets, status=NodeStatus.INITING.value, updated_at=ctx.now)
        if outcome is not None:
            _addresses(ctx, outcome)
    elif name == "begin-init":
        store.update_cluster(
            ctx.conn, ctx.lease.cluster_id, status=ClusterStatus.INIT.value, updated_at=ctx.now
        )
    elif name == "begin-release":
        store.update_nodes(ctx.conn, ctx.targets, status=NodeStatus.RELEASING.value, updated_at=ctx.now)
    if name == NODE_STEP[task_type]:
        _node_step(ctx)
    if name == "finish":
        finish(ctx, failed=False)


def _failed_nodes(ctx: StepContext, outcome: Outcome, action: str) -> None:
    """A prepare step that failed on some node fails the whole task (its reasons in Errors)."""
    by_id = {n.instance_id: n for n in outcome.nodes}
    for node_id, reason in outcome.result.failed.items():
        hostname = by_id[node_id].hostname if node_id in by_id else node_id
        outcome.error = {"Code": "NodeFailed", "Message": f"{action} failed on {hostname}: {reason}"}


def _addresses(ctx: StepContext, outcome: Outcome) -> None:
    """The addresses the provider gave the nodes, where they differ from what the store holds."""
    held = {n.instance_id: n.ip for n in outcome.nodes}
    for node_id, ip in outcome.result.ready.items():
        if ip and held.get(node_id) != ip:
            store.update_nodes(ctx.conn, [node_id], private_ip=ip)


def _node_step(ctx: StepContext) -> None:
    """Record the node call's outcome: the nodes it confirmed reach their target, the others fail."""
    task_type = ctx.lease.task_type
    target = NODE_TARGET[task_type]
    outcome = ctx.outcome if ctx.outcome is not None else Outcome("nodes")
    action = NODE_ACTION[task_type]
    if target is None and str(ctx.lease.request.get("ReleaseInstance", "true")).lower() == "false":
        action = "UntrackInstances"
    failed: list[str] = []
    for node in outcome.faulted:
        failed.append(node.instance_id)
        ctx.errors.append(
            {
                "Code": "NodeFailed",
                "Message": f"{NODE_ACTION[task_type]} failed on {node.hostname}",
                "InstanceId": node.instance_id,
            }
        )
        ctx.log("error", f"{NODE_ACTION[task_type]} failed on {node.hostname} ({node.instance_id}).")
    for node in outcome.nodes:
        reason = outcome.result.failed.get(node.instance_id)
        if reason is None and node.instance_id in outcome.result.ready:
            continue
        failed.append(node.instance_id)
        reason = reason or "the provider did not confirm it"
        message = f"{NODE_ACTION[task_type]} failed on {node.hostname}: {reason}"
        ctx.errors.append({"Code": "NodeFailed", "Message": message, "InstanceId": node.instance_id})
        ctx.log("error", f"{message} ({node.instance_id}).")
    done = [n.instance_id for n in outcome.nodes if n.instance_id not in failed]
    ctx.log("info", f"{action}: {len(done)} of {len(done) + len(failed)} nodes done.")
    store.update_nodes(ctx.conn, failed, status=NodeStatus.EXCEPTION.value, updated_at=ctx.now)
    if target is None:
        store.update_nodes(ctx.conn, done, deleted_at=ctx.now, updated_at=ctx.now, task_id=None)
    else:
        store.update_nodes(ctx.conn, done, status=target.value, updated_at=ctx.now)
        _addresses(ctx, outcome)
    ctx.set_state("failed", failed)


def finish(ctx: StepContext, *, failed: bool) -> None:
    """End the task: its status, the cluster's and nodes' final statuses, Result, and release the locks."""
    task_type = ctx.lease.task_type
    targets = ctx.targets
    node_failures = ctx.failed
    if failed or (targets and len(node_failures) == len(targets)):
        status = TaskStatus.FAILED
    elif node_failures:
        status = TaskStatus.PARTIAL_FAIL
    else:
        status = TaskStatus.SUCCESS
    cluster_values: dict[str, Any] = {"updated_at": ctx.now}
    deleted = task_type is TaskType.DELETE_CLUSTER and status is not TaskStatus.FAILED
    if task_type in CLUSTER_AFTER:
        cluster_values["task_id"] = None
        cluster_values["status"] = (
            ClusterStatus.EXCEPTION.value if status is TaskStatus.FAILED else CLUSTER_AFTER[task_type].value
        )
        if deleted:
            cluster_values["deleted_at"] = ctx.now
    if task_type is TaskType.RECOVER_CLUSTER and status is not TaskStatus.FAILED:
        request = ctx.lease.request
        cluster_values.update({column: request[p] for p, column in RECOVER_COLUMNS.items() if request.get(p)})
    # The nodes read and freed, and the cluster's columns set, at once (one statement on PostgreSQL).
    live = store.release_nodes(ctx.conn, ctx.lease.cluster_id, targets, cluster=cluster_values)
    if failed:
        target = NODE_TARGET[task_type]
        unfinished = [n["id"] for n in live if target is None or n["status"] != target.value]
        store.update_nodes(ctx.conn, unfinished, status=NodeStatus.EXCEPTION.value, updated_at=ctx.now)
    if deleted:
        store.update_nodes(ctx.conn, [n["id"] for n in live], deleted_at=ctx.now)
    level = {TaskStatus.SUCCESS: "info", TaskStatus.PARTIAL_FAIL: "warn"}.get(status, "error")
    ctx.log(level, f"Task {ctx.lease.task_id} ended {status.value}.")
    if task_type in WITH_INSTANCES:
        ctx.result = {
            "Instances": [
                {"InstanceId": n["id"], "Ip": n["private_ip"], "Hostname": n["hostname"], "role": n["role"]}
                for n in store.cluster_nodes(ctx.conn, ctx.lease.cluster_id, targets)
                if n["id"] not in node_failures and n["status"] == NodeStatus.RUNNING.value
            ]
        }
    ctx.finished = status


def result_json(ctx: StepContext) -> str:
    return json.dumps(ctx.result, separators=(",", ":"))
