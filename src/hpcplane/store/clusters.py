"""Clusters and nodes in the store."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from hpcplane.store.tables import clusters, nodes


def insert_cluster(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(insert(clusters).values(**values))


def insert_nodes(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(nodes), rows)


def cluster_owner(conn: Connection, cluster_id: str) -> str | None:
    """The account owning a cluster that has not been deleted, or None."""
    return conn.execute(
        select(clusters.c.account_id).where(clusters.c.id == cluster_id, clusters.c.deleted_at.is_(None))
    ).scalar_one_or_none()


def cluster_visible_since(conn: Connection, cluster_id: str, account_id: str, since: datetime) -> bool:
    """True when the account owns the cluster and it was not deleted before `since`."""
    row = conn.execute(
        select(clusters.c.deleted_at).where(clusters.c.id == cluster_id, clusters.c.account_id == account_id)
    ).first()
    return row is not None and (row.deleted_at is None or row.deleted_at >= since)
