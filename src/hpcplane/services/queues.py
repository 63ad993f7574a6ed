"""A cluster's queues: its scheduler's default queue, and those added with AddQueue.

A compute node belongs to the queue AddNodes named in JobQueue (kept in the node's `extra`), else to
the default queue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from hpcplane.clock import Clock
from hpcplane.domain.accounts import Principal
from hpcplane.domain.errors import InvalidParams
from hpcplane.services.users import running_cluster, visible_cluster
from hpcplane.store import clusters as cluster_store
from hpcplane.store import users as store
from hpcplane.store import views
from hpcplane.store.db import Database
from hpcplane.store.users import default_queue
from hpcplane.store.views import ClusterView, NodeView


def node_queue(extra: str | dict[str, Any] | None, default: str) -> str:
    """The queue of a compute node, from its `extra` column."""
    value = json.loads(extra) if isinstance(extra, str) else extra or {}
    queue = value.get("queue") if isinstance(value, dict) else None
    return queue if isinstance(queue, str) and queue else default


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """AddQueue's and UpdateQueueConfig's validated parameters (None: leave as is)."""

    cluster_id: str
    name: str
    compute_instance_type: str | None = None
    deployment_set_id: str | None = None
    network_interface_traffic_mode: str | None = None
    resource_group_id: str | None = None
    use_ess: bool | None = None

    def values(self) -> dict[str, Any]:
        fields = {
            "compute_instance_type": self.compute_instance_type,
            "deployment_set_id": self.deployment_set_id,
            "network_interface_traffic_mode": self.network_interface_traffic_mode,
            "resource_group_id": self.resource_group_id,
            "use_ess": self.use_ess,
        }
        return {k: v for k, v in fields.items() if v is not None}


@dataclass(frozen=True, slots=True)
class QueueNodes:
    cluster: ClusterView
    nodes: list[NodeView]
    total: int


class QueueService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def list(self, who: Principal, cluster_id: str) -> tuple[ClusterView, list[dict[str, Any]]]:
        """The default queue first, then the added ones."""
        with self._db.read() as conn:
            cluster = visible_cluster(conn, who, cluster_id)
            added = store.queues(conn, cluster_id)
        default = {
            "name": default_queue(cluster.scheduler_type),
            "compute_instance_type": cluster.compute_instance_type,
            "deployment_set_id": "",
            "network_interface_traffic_mode": "Standard",
            "resource_group_id": str(cluster.extra.get("ResourceGroupId", "")),
            "use_ess": False,
        }
        return cluster, [default, *added]

    def _names(self, conn: Connection, cluster: dict[str, Any]) -> tuple[str, set[str]]:
        default = default_queue(cluster["scheduler_type"])
        return default, {q["name"] for q in store.queues(conn, cluster["id"])}

    def add(self, who: Principal, settings: QueueSettings) -> None:
        with self._db.write() as conn:
            cluster = running_cluster(conn, who, settings.cluster_id)
            default, added = self._names(conn, cluster)
            if settings.name == default or settings.name in added:
                raise InvalidParams("QueueName", "names a queue that already exists")
            values = {"compute_instance_type": cluster["compute_instance_type"], **settings.values()}
            store.insert_queue(
                conn,
                {
                    **values,
                    "cluster_id": cluster["id"],
                    "name": settings.name,
                    "created_at": self._clock.now(),
                },
            )

    def update(self, who: Principal, settings: QueueSettings) -> None:
        with self._db.write() as conn:
            cluster = running_cluster(conn, who, settings.cluster_id)
            default, added = self._names(conn, cluster)
            if settings.name == default:
                raise InvalidParams("QueueName", "is the default queue, configured by the cluster itself")
            if settings.name not in added:
                raise InvalidParams("QueueName", "is not a queue of the cluster")
            if settings.values():
                store.update_queue(conn, cluster["id"], settings.name, settings.values())

    def delete(self, who: Principal, cluster_id: str, name: str) -> None:
        """Only an added queue with no nodes may be deleted."""
        with self._db.write() as conn:
            cluster = running_cluster(conn, who, cluster_id)
            default, added = self._names(conn, cluster)
            if name == default:
                raise InvalidParams("QueueName", "is the default queue")
            if name not in added:
                raise InvalidParams("QueueName", "is not a queue of the cluster")
            nodes = cluster_store.cluster_nodes(conn, cluster_id)
            if any(n["role"] == "compute" and node_queue(n["extra"], default) == name for n in nodes):
                raise InvalidParams("QueueName", "still has nodes")
            store.delete_queue(conn, cluster_id, name)

    def nodes(
        self, who: Principal, cluster_id: str, name: str, *, page_number: int, page_size: int
    ) -> QueueNodes:
        with self._db.read() as conn:
            cluster = visible_cluster(conn, who, cluster_id)
            default = default_queue(cluster.scheduler_type)
            if name != default and name not in {q["name"] for q in store.queues(conn, cluster_id)}:
                raise InvalidParams("QueueName", "is not a queue of the cluster")
            extras = {n["id"]: n["extra"] for n in cluster_store.cluster_nodes(conn, cluster_id)}
            every = views.list_nodes(conn, cluster_id=cluster_id, role="compute", limit=10_000).nodes
        mine = [node for node in every if node_queue(extras.get(node.id), default) == name]
        start = (page_number - 1) * page_size
        return QueueNodes(cluster, mine[start : start + page_size], len(mine))
