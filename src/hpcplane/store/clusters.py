"""Clusters and nodes in the store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from hpcplane.store.tables import clusters, nodes


def insert_cluster(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(insert(clusters).values(**values))


def insert_nodes(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(nodes), rows)


def lock_cluster(conn: Connection, cluster_id: str, account_id: str) -> dict[str, Any] | None:
    """The account's live cluster, row-locked until the transaction ends (SQLite: already serialised)."""
    row = (
        conn.execute(
            select(clusters)
            .where(
                clusters.c.id == cluster_id,
                clusters.c.account_id == account_id,
                clusters.c.deleted_at.is_(None),
            )
            .with_for_update()
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def cluster_nodes(
    conn: Connection, cluster_id: str, node_ids: list[str] | None = None
) -> list[dict[str, Any]]:
    """The live nodes of a cluster (or those of `node_ids`), in creation order."""
    query = select(nodes).where(nodes.c.cluster_id == cluster_id, nodes.c.deleted_at.is_(None))
    if node_ids is not None:
        query = query.where(nodes.c.id.in_(node_ids))
    return [
        dict(row) for row in conn.execute(query.order_by(nodes.c.created_at, nodes.c.hostname)).mappings()
    ]


def update_cluster(conn: Connection, cluster_id: str, **values: Any) -> None:
    conn.execute(update(clusters).where(clusters.c.id == cluster_id).values(**values))


def update_nodes(conn: Connection, node_ids: list[str], **values: Any) -> None:
    if node_ids:
        conn.execute(update(nodes).where(nodes.c.id.in_(node_ids)).values(**values))


def count_compute_nodes(conn: Connection, account_id: str) -> int:
    """Compute instances the account holds across its clusters (the simulated capacity counts these)."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(nodes)
            .where(nodes.c.account_id == account_id, nodes.c.role == "compute", nodes.c.deleted_at.is_(None))
        ).scalar_one()
    )


def used_hostnames_and_ips(conn: Connection, cluster_id: str) -> tuple[set[str], set[str]]:
    """Hostnames and private IPs ever given in the cluster (deleted nodes' too, so none is reused)."""
    rows = conn.execute(
        select(nodes.c.hostname, nodes.c.private_ip).where(nodes.c.cluster_id == cluster_id)
    ).all()
    return {row.hostname for row in rows}, {row.private_ip for row in rows}
