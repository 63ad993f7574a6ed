"""Clusters and nodes: their statuses, and which operation each status allows."""

from __future__ import annotations

import enum

from hpcplane.domain.errors import InvalidClusterStatus, InvalidNodeStatus
from hpcplane.domain.tasks import TaskType


class ClusterStatus(enum.StrEnum):
    """Cluster statuses as the SDK's DescribeCluster/ListClusters models list them, plus stopped."""

    UNINIT = "uninit"
    CREATING = "creating"
    INIT = "init"
    RUNNING = "running"
    EXCEPTION = "exception"
    RELEASING = "releasing"
    STOPPED = "stopped"


class NodeStatus(enum.StrEnum):
    """Node statuses as the SDK's ListNodes model lists them."""

    UNINIT = "uninit"
    INITING = "initing"
    RUNNING = "running"
    STOPPED = "stopped"
    EXCEPTION = "exception"
    RELEASING = "releasing"
    UNTRACKING = "untracking"


class Role(enum.StrEnum):
    """Node roles; the API spells them Manager, Login, Compute."""

    MANAGER = "manager"
    LOGIN = "login"
    COMPUTE = "compute"

    @property
    def api_name(self) -> str:
        return self.value.capitalize()


# Which cluster statuses each operation starts from; anything else is InvalidClusterStatus.
CLUSTER_ALLOWS: dict[TaskType, frozenset[ClusterStatus]] = {
    TaskType.START_CLUSTER: frozenset({ClusterStatus.STOPPED, ClusterStatus.EXCEPTION}),
    TaskType.STOP_CLUSTER: frozenset({ClusterStatus.RUNNING, ClusterStatus.EXCEPTION}),
    TaskType.DELETE_CLUSTER: frozenset(
        {ClusterStatus.RUNNING, ClusterStatus.STOPPED, ClusterStatus.EXCEPTION, ClusterStatus.UNINIT}
    ),
    TaskType.ADD_COMPUTES: frozenset({ClusterStatus.RUNNING}),
    TaskType.START_COMPUTES: frozenset({ClusterStatus.RUNNING, ClusterStatus.EXCEPTION}),
    TaskType.STOP_COMPUTES: frozenset({ClusterStatus.RUNNING, ClusterStatus.EXCEPTION}),
    TaskType.RESET_COMPUTE: frozenset({ClusterStatus.RUNNING, ClusterStatus.EXCEPTION}),
    TaskType.DELETE_COMPUTES: frozenset(
        {ClusterStatus.RUNNING, ClusterStatus.EXCEPTION, ClusterStatus.STOPPED}
    ),
    TaskType.RECOVER_CLUSTER: frozenset({ClusterStatus.EXCEPTION}),
}

# Which node statuses each node operation starts from; anything else is InvalidNodeStatus.
NODE_ALLOWS: dict[TaskType, frozenset[NodeStatus]] = {
    TaskType.START_COMPUTES: frozenset({NodeStatus.STOPPED, NodeStatus.EXCEPTION}),
    TaskType.STOP_COMPUTES: frozenset({NodeStatus.RUNNING, NodeStatus.EXCEPTION}),
    TaskType.RESET_COMPUTE: frozenset({NodeStatus.RUNNING, NodeStatus.STOPPED, NodeStatus.EXCEPTION}),
    TaskType.DELETE_COMPUTES: frozenset(
        {
            NodeStatus.RUNNING,
            NodeStatus.STOPPED,
            NodeStatus.EXCEPTION,
            NodeStatus.UNINIT,
            NodeStatus.UNTRACKING,
        }
    ),
}

# The status a node ends in when its operation succeeds (None: the node is gone).
NODE_TARGET: dict[TaskType, NodeStatus | None] = {
    TaskType.CREATE_CLUSTER: NodeStatus.RUNNING,
    TaskType.ADD_COMPUTES: NodeStatus.RUNNING,
    TaskType.START_CLUSTER: NodeStatus.RUNNING,
    TaskType.START_COMPUTES: NodeStatus.RUNNING,
    TaskType.RESET_COMPUTE: NodeStatus.RUNNING,
    TaskType.STOP_CLUSTER: NodeStatus.STOPPED,
    TaskType.STOP_COMPUTES: NodeStatus.STOPPED,
    TaskType.DELETE_CLUSTER: None,
    TaskType.DELETE_COMPUTES: None,
    TaskType.RECOVER_CLUSTER: NodeStatus.RUNNING,
}


def check_cluster(operation: TaskType, status: str) -> None:
    """Raise InvalidClusterStatus unless the cluster's status allows the operation."""
    if ClusterStatus(status) not in CLUSTER_ALLOWS[operation]:
        raise InvalidClusterStatus()


def check_node(operation: TaskType, status: str) -> None:
    """Raise InvalidNodeStatus unless the node's status allows the operation."""
    if NodeStatus(status) not in NODE_ALLOWS[operation]:
        raise InvalidNodeStatus()
