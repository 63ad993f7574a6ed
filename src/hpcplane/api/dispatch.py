"""ACTIONS: each implemented E-HPC action, its parameter reader, permission and handler, in one table."""

from __future__ import annotations

from hpcplane.api.action import Action
from hpcplane.api.actions import clusters, operations, tasks

ACTIONS: dict[str, Action] = {
    action.name: action
    for action in (
        tasks.LIST_TASKS,
        clusters.LIST_CLUSTERS,
        clusters.DESCRIBE_CLUSTER,
        clusters.LIST_NODES,
        *operations.OPERATIONS,
    )
}
