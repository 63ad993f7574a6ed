"""The cluster and node reads (ListClusters, DescribeCluster, ListNodes) straight from SQL."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, select

from hpcplane.store.tables import clusters, nodes


@dataclass(frozen=True, slots=True)
class ClusterView:
    """One live cluster as the reads render it; `extra` holds the other CreateCluster parameters."""

    id: str
    region_id: str
    zone_id: str
    name: str
    description: str
    status: str
    os_tag: str
    image_id: str
    image_owner_alias: str
    base_os: str
    scheduler_type: str
    deploy_mode: str
    ha_enable: bool
    account_type: str
    vpc_id: str
    vswitch_id: str
    security_group_id: str
    client_version: str
    location: str
    ecs_charge_type: str
    key_pair_name: str
    manager_instance_type: str
    login_instance_type: str
    compute_instance_type: str
    created_at: datetime
    extra: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NodeCount:
    """How many live nodes of one cluster share a role, a status and an instance type."""

    role: str
    status: str
    instance_type: str
    count: int


@dataclass(frozen=True, slots=True)
class NodeView:
    """One live node as ListNodes renders it."""

    id: str
    role: str
    hostname: str
    status: str
    instance_type: str
    private_ip: str
    public_ip: str
    zone_id: str
    image_id: str
    image_owner_alias: str
    create_mode: str
    spot_strategy: str
    instance_charge_type: str
    expired: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ClusterPage:
    """One page of clusters and the number of all of them."""

    clusters: list[ClusterView]
    total: int


@dataclass(frozen=True, slots=True)
class NodePage:
    """One page of nodes and the number of all matches."""

    nodes: list[NodeView]
    total: int


_CLUSTER_FIELDS = [f.name for f in fields(ClusterView) if f.name != "extra"]
_CLUSTER_COLUMNS = [clusters.c[name] for name in _CLUSTER_FIELDS]
_NODE_COLUMNS = [nodes.c[f.name] for f in fields(NodeView)]


def _json_object(text: str) -> dict[str, Any]:
    """The `extra` column as a dict; anything but a JSON object reads as empty."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _cluster(row: Any) -> ClusterView:
    columns = {name: row._mapping[name] for name in _CLUSTER_FIELDS}
    return ClusterView(extra=_json_object(row.extra), **columns)


def _live_cluster(account_id: str) -> ColumnElement[bool]:
    return and_(clusters.c.account_id == account_id, clusters.c.deleted_at.is_(None))


def list_clusters(conn: Connection, *, account_id: str, offset: int, limit: int) -> ClusterPage:
    """An account's clusters that are not deleted, newest first (ties by id)."""
    condition = _live_cluster(account_id)
    total = conn.execute(select(func.count()).select_from(clusters).where(condition)).scalar_one()
    rows = conn.execute(
        select(*_CLUSTER_COLUMNS, clusters.c.extra)
        .where(condition)
        .order_by(clusters.c.created_at.desc(), clusters.c.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return ClusterPage(clusters=[_cluster(row) for row in rows], total=total)


def get_cluster(conn: Connection, *, account_id: str, cluster_id: str) -> ClusterView | None:
    """The cluster when the account owns it and it is not deleted, else None."""
    row = conn.execute(
        select(*_CLUSTER_COLUMNS, clusters.c.extra).where(
            clusters.c.id == cluster_id, _live_cluster(account_id)
        )
    ).first()
    return _cluster(row) if row else None


def node_counts(conn: Connection, cluster_ids: Sequence[str]) -> dict[str, list[NodeCount]]:
    """Per cluster: its live nodes counted by role, status and instance type."""
    result: dict[str, list[NodeCount]] = {cluster_id: [] for cluster_id in cluster_ids}
    if not cluster_ids:
        return result
    rows = conn.execute(
        select(nodes.c.cluster_id, nodes.c.role, nodes.c.status, nodes.c.instance_type, func.count())
        .where(nodes.c.cluster_id.in_(cluster_ids), nodes.c.deleted_at.is_(None))
        .group_by(nodes.c.cluster_id, nodes.c.role, nodes.c.status, nodes.c.instance_type)
        .order_by(nodes.c.cluster_id, nodes.c.role, nodes.c.status, nodes.c.instance_type)
    )
    for cluster_id, role, status, instance_type, count in rows:
        result[cluster_id].append(NodeCount(role, status, instance_type, count))
    return result


def node_ids(conn: Connection, cluster_ids: Sequence[str], role: str) -> dict[str, list[str]]:
    """Per cluster: the ids of its live nodes of one role, in hostname order."""
    result: dict[str, list[str]] = {cluster_id: [] for cluster_id in cluster_ids}
    if not cluster_ids:
        return result
    rows = conn.execute(
        select(nodes.c.cluster_id, nodes.c.id)
        .where(nodes.c.cluster_id.in_(cluster_ids), nodes.c.role == role, nodes.c.deleted_at.is_(None))
        .order_by(nodes.c.cluster_id, _bytewise(conn, nodes.c.hostname), nodes.c.id)
    )
    for cluster_id, node_id in rows:
        result[cluster_id].append(node_id)
    return result


def _bytewise(conn: Connection, column: ColumnElement[str]) -> ColumnElement[str]:
    """Order strings by code point on every backend (PostgreSQL would otherwise use the locale)."""
    return column.collate("C") if conn.dialect.name == "postgresql" else column


def list_nodes(
    conn: Connection,
    *,
    cluster_id: str,
    role: str | None = None,
    hostname_contains: str | None = None,
    hostname_prefix: str | None = None,
    hostname_suffix: str | None = None,
    private_ip: str | None = None,
    status: str | None = None,
    by_hostname: bool = False,
    descending: bool = False,
    offset: int = 0,
    limit: int = 10,
) -> NodePage:
    """A cluster's live nodes matching every filter given; hostname filters ignore case.

    Sorted by hostname, or by the time they were added (ties by hostname); `descending` reverses the
    whole order, so Backward is exactly Forward read from the end.
    """
    where: list[ColumnElement[bool]] = [nodes.c.cluster_id == cluster_id, nodes.c.deleted_at.is_(None)]
    hostname = func.lower(nodes.c.hostname)
    if role is not None:
        where.append(nodes.c.role == role)
    if hostname_contains is not None:
        where.append(hostname.contains(hostname_contains.lower(), autoescape=True))
    if hostname_prefix is not None:
        where.append(hostname.startswith(hostname_prefix.lower(), autoescape=True))
    if hostname_suffix is not None:
        where.append(hostname.endswith(hostname_suffix.lower(), autoescape=True))
    if private_ip is not None:
        where.append(nodes.c.private_ip == private_ip)
    if status is not None:
        where.append(nodes.c.status == status)
    condition = and_(*where)
    total = conn.execute(select(func.count()).select_from(nodes).where(condition)).scalar_one()
    keys: list[ColumnElement[Any]] = [] if by_hostname else [nodes.c.created_at]
    keys += [_bytewise(conn, nodes.c.hostname), nodes.c.id]
    order = [key.desc() if descending else key.asc() for key in keys]
    rows = conn.execute(select(*_NODE_COLUMNS).where(condition).order_by(*order).offset(offset).limit(limit))
    views = [NodeView(**row._mapping) for row in rows]
    return NodePage(nodes=views, total=total)
