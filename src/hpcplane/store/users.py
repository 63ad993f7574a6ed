"""A cluster's users and queues in the store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from hpcplane.store.paging import counted_page
from hpcplane.store.tables import cluster_queues, cluster_users


def user_names(conn: Connection, cluster_id: str) -> set[str]:
    rows = conn.execute(select(cluster_users.c.name).where(cluster_users.c.cluster_id == cluster_id))
    return {row.name for row in rows}


def insert_users(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(cluster_users), rows)


def update_user(conn: Connection, cluster_id: str, name: str, **values: Any) -> None:
    conn.execute(
        update(cluster_users)
        .where(cluster_users.c.cluster_id == cluster_id, cluster_users.c.name == name)
        .values(**values)
    )


def delete_users(conn: Connection, cluster_id: str, names: list[str]) -> None:
    conn.execute(
        delete(cluster_users).where(cluster_users.c.cluster_id == cluster_id, cluster_users.c.name.in_(names))
    )


def users_page(
    conn: Connection, cluster_id: str, *, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """One page of the cluster's users in the order they were added (ties by name)."""
    query = select(cluster_users.c.name, cluster_users.c.user_group, cluster_users.c.created_at).order_by(
        cluster_users.c.created_at, cluster_users.c.name
    )
    where = [cluster_users.c.cluster_id == cluster_id]
    rows, total = counted_page(conn, cluster_users, where, query, offset=offset, limit=limit)
    return [dict(row) for row in rows], total


def queues(conn: Connection, cluster_id: str) -> list[dict[str, Any]]:
    """The queues added to the cluster, in the order they were added."""
    rows = conn.execute(
        select(cluster_queues)
        .where(cluster_queues.c.cluster_id == cluster_id)
        .order_by(cluster_queues.c.created_at, cluster_queues.c.name)
    ).mappings()
    return [dict(row) for row in rows]


def insert_queue(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(insert(cluster_queues).values(**values))


def update_queue(conn: Connection, cluster_id: str, name: str, values: Mapping[str, Any]) -> None:
    conn.execute(
        update(cluster_queues)
        .where(cluster_queues.c.cluster_id == cluster_id, cluster_queues.c.name == name)
        .values(**values)
    )


def delete_queue(conn: Connection, cluster_id: str, name: str) -> None:
    conn.execute(
        delete(cluster_queues).where(cluster_queues.c.cluster_id == cluster_id, cluster_queues.c.name == name)
    )


_DEFAULT_QUEUES = {"pbs": "workq", "slurm": "comp", "opengridscheduler": "all.q", "deadline": "default"}


def default_queue(scheduler_type: str) -> str:
    """The queue a scheduler is installed with (pbs19 is pbs, slurm22 is slurm, ...)."""
    for prefix, name in _DEFAULT_QUEUES.items():
        if scheduler_type.startswith(prefix):
            return name
    return "workq"


def queue_exists(conn: Connection, cluster: Mapping[str, Any], name: str) -> bool:
    """Whether the cluster has this queue: its default one, or one added to it."""
    if name == default_queue(cluster["scheduler_type"]):
        return True
    return any(queue["name"] == name for queue in queues(conn, cluster["id"]))
