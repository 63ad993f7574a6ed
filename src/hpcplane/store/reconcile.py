"""The reconciler's SQL: the clusters a host owns, and node statuses as observed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from hpcplane.store.tables import clusters, nodes


def owned_clusters(conn: Connection, host: str, status: str) -> list[str]:
    """Ids of the live clusters bound to `host`, in `status`, with no cluster task running."""
    query = select(clusters.c.id).where(
        clusters.c.host == host,
        clusters.c.deleted_at.is_(None),
        clusters.c.status == status,
        clusters.c.task_id.is_(None),
    )
    return [row.id for row in conn.execute(query.order_by(clusters.c.created_at))]


def idle_nodes(conn: Connection, cluster_id: str) -> list[dict[str, Any]]:
    """The cluster's live nodes no task holds: id, hostname, role, private_ip, status."""
    query = select(nodes.c.id, nodes.c.hostname, nodes.c.role, nodes.c.private_ip, nodes.c.status).where(
        nodes.c.cluster_id == cluster_id, nodes.c.deleted_at.is_(None), nodes.c.task_id.is_(None)
    )
    return [dict(row) for row in conn.execute(query.order_by(nodes.c.created_at)).mappings()]


def set_observed(conn: Connection, node_id: str, was: str, status: str, now: datetime) -> bool:
    """The node's status as observed, unless a task took it or its status moved meanwhile."""
    done = conn.execute(
        update(nodes)
        .where(nodes.c.id == node_id, nodes.c.task_id.is_(None), nodes.c.status == was)
        .values(status=status, updated_at=now)
    )
    return done.rowcount == 1
