"""Clusters and nodes in the store."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, func, insert, select

from hpcplane.store.db import Driver
from hpcplane.store.tables import clusters, nodes
from hpcplane.store.types import UtcDateTime


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


# The engine's steps read and write nodes and clusters on every effect: these statements go straight to
# the driver (Driver.within: in the caller's transaction), as building a SQLAlchemy statement and its result
# costs more than running them. Column names are checked against the tables; values are always bound.
_NODE_COLUMNS = tuple(nodes.c.keys())
_NODE_TIMES = frozenset(name for name in _NODE_COLUMNS if isinstance(nodes.c[name].type, UtcDateTime))
_NODES_SQL = f"SELECT {', '.join(_NODE_COLUMNS)} FROM nodes WHERE cluster_id = ? AND deleted_at IS NULL"  # noqa: S608 (constant names)
_NODES_ORDER = " ORDER BY created_at, hostname"
_RELEASE_SQL = "UPDATE nodes SET task_id = NULL WHERE cluster_id = ? AND deleted_at IS NULL"


def cluster_nodes(
    conn: Connection, cluster_id: str, node_ids: list[str] | None = None
) -> list[dict[str, Any]]:
    """The live nodes of a cluster (or those of `node_ids`), in creation order."""
    return node_rows(Driver.within(conn), cluster_id, node_ids)


def node_rows(driver: Driver, cluster_id: str, node_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """`cluster_nodes` on a bare driver (`Database.driver()`: one statement, no transaction around it)."""
    if node_ids is not None and not node_ids:
        return []
    sql, params = _NODES_SQL, [cluster_id]
    if node_ids is not None:
        sql = f"{sql} AND {_id_match(driver.is_sqlite, len(node_ids))}"
        params += _ids(driver, node_ids)
    return _nodes(driver.rows(sql + _NODES_ORDER, params))


def _nodes(rows: list[Any]) -> list[dict[str, Any]]:
    found = []
    for row in rows:
        node = dict(zip(_NODE_COLUMNS, row, strict=True))
        for name in _NODE_TIMES:
            node[name] = Driver.time(node[name])
        node["expired"] = bool(node["expired"])
        found.append(node)
    return found


def release_nodes(
    conn: Connection,
    cluster_id: str,
    node_ids: list[str] | None = None,
    *,
    cluster: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """`cluster_nodes`, their task lock released (task_id cleared) in the same statement: an operation's
    end reads the nodes it held and frees them in one round trip. The rows as they are after it.

    `cluster`: columns of the cluster to set as well, in the same statement on PostgreSQL (a
    data-modifying WITH), in a second one on SQLite (in-process: no round trip to save)."""
    driver = Driver.within(conn)
    none_asked = node_ids is not None and not node_ids
    if cluster and (driver.is_sqlite or none_asked):
        update_cluster(conn, cluster_id, **cluster)
        cluster = None
    if none_asked:
        return []
    sql, params = _RELEASE_SQL, [cluster_id]
    if node_ids is not None:
        sql = f"{sql} AND {_id_match(driver.is_sqlite, len(node_ids))}"
        params += _ids(driver, node_ids)
    if cluster:
        sql = f"WITH c AS ({_update_sql('clusters', tuple(cluster))} WHERE id = ?) {sql}"
        params = [*cluster.values(), cluster_id, *params]
    found = _nodes(driver.rows(f"{sql} RETURNING {', '.join(_NODE_COLUMNS)}", params))
    return sorted(found, key=lambda node: (node["created_at"], node["hostname"]))


def update_cluster(conn: Connection, cluster_id: str, **values: Any) -> None:
    sql = f"{_update_sql('clusters', tuple(values))} WHERE id = ?"
    Driver.within(conn).execute(sql, [*values.values(), cluster_id])


def update_nodes(conn: Connection, node_ids: list[str], **values: Any) -> None:
    if node_ids:
        driver = Driver.within(conn)
        sql = f"{_update_sql('nodes', tuple(values))} WHERE {_id_match(driver.is_sqlite, len(node_ids))}"
        driver.execute(sql, [*values.values(), *_ids(driver, node_ids)])


@lru_cache(maxsize=128)
def _update_sql(table: str, columns: tuple[str, ...]) -> str:
    """UPDATE <table> SET <columns> (the caller adds the WHERE)."""
    unknown = set(columns) - set((clusters if table == "clusters" else nodes).c.keys())
    if unknown or not columns:
        raise ValueError(f"not columns of {table}: {sorted(unknown)}")
    return f"UPDATE {table} SET {', '.join(f'{name} = ?' for name in columns)}"  # noqa: S608 (names checked above)


@lru_cache(maxsize=64)
def _id_match(is_sqlite: bool, count: int) -> str:
    """The node ids condition: one mark each on SQLite (IN), one array on PostgreSQL (= ANY)."""
    return f"id IN ({', '.join('?' * count)})" if is_sqlite else "id = ANY(?)"


def _ids(driver: Driver, node_ids: list[str]) -> list[Any]:
    return list(node_ids) if driver.is_sqlite else [list(node_ids)]


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
