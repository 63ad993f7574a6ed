"""ModifyClusterAttributes and ListClusterLogs: a cluster's attributes changed in place, its log read."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from hpcplane.clock import Clock
from hpcplane.domain.accounts import Principal
from hpcplane.domain.errors import ClusterNotFound, ConflictOpt, InvalidClusterStatus, NotEnabled
from hpcplane.domain.resources import ClusterStatus
from hpcplane.store import accounts as account_store
from hpcplane.store import cluster_logs, views
from hpcplane.store import clusters as cluster_store
from hpcplane.store.cluster_logs import LogLine
from hpcplane.store.db import Database

# The statuses in which a cluster's attributes may change (no operation is running on it).
MODIFIABLE = frozenset({ClusterStatus.RUNNING, ClusterStatus.STOPPED, ClusterStatus.EXCEPTION})


@dataclass(frozen=True, slots=True)
class ClusterChange:
    """ModifyClusterAttributes' validated parameters: new column values and new `extra` entries."""

    cluster_id: str
    columns: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LogPage:
    lines: list[LogLine]
    total: int


def enabled(conn: Connection, who: Principal) -> None:
    """NotEnabled unless the caller's account has E-HPC enabled."""
    account = account_store.get_account(conn, who.account.id)
    if account is None or not account.ehpc_enabled:
        raise NotEnabled()


def owned_cluster(conn: Connection, who: Principal, cluster_id: str) -> dict[str, Any]:
    """The caller's live cluster, row-locked; NotEnabled or ClusterNotFound otherwise."""
    enabled(conn, who)
    cluster = cluster_store.lock_cluster(conn, cluster_id, who.account.id)
    if cluster is None:
        raise ClusterNotFound()
    return cluster


class ClusterAdmin:
    """Changes a cluster's attributes; reads its operation log."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def modify(self, who: Principal, change: ClusterChange) -> None:
        """Refused with ConflictOpt while an operation runs on the cluster or one of its nodes."""
        with self._db.write() as conn:
            cluster = owned_cluster(conn, who, change.cluster_id)
            nodes = cluster_store.cluster_nodes(conn, cluster["id"])
            if cluster["task_id"] or any(node["task_id"] for node in nodes):
                raise ConflictOpt()
            if ClusterStatus(cluster["status"]) not in MODIFIABLE:
                raise InvalidClusterStatus()
            values: dict[str, Any] = dict(change.columns)
            if change.extra:
                extra = json.loads(cluster["extra"] or "{}")
                values["extra"] = json.dumps({**extra, **change.extra}, sort_keys=True)
            if values:
                cluster_store.update_cluster(conn, cluster["id"], updated_at=self._clock.now(), **values)

    def logs(self, who: Principal, cluster_id: str, *, page_number: int, page_size: int) -> LogPage:
        with self._db.read() as conn:
            enabled(conn, who)
            if views.get_cluster(conn, account_id=who.account.id, cluster_id=cluster_id) is None:
                raise ClusterNotFound()
            lines, total = cluster_logs.page(
                conn, cluster_id, offset=(page_number - 1) * page_size, limit=page_size
            )
        return LogPage(lines, total)

    def software(
        self,
        who: Principal,
        cluster_id: str,
        *,
        add: list[str] | None = None,
        remove: list[str] | None = None,
    ) -> list[str]:
        """A cluster's installed applications (its `extra` "InstalledSoftware"), changed when asked to."""
        if not add and not remove:
            with self._db.read() as conn:
                enabled(conn, who)
                cluster = views.get_cluster(conn, account_id=who.account.id, cluster_id=cluster_id)
                if cluster is None:
                    raise ClusterNotFound()
                return list(cluster.extra.get("InstalledSoftware", []))
        with self._db.write() as conn:
            cluster_row = owned_cluster(conn, who, cluster_id)
            extra = json.loads(cluster_row["extra"] or "{}")
            tags = [t for t in extra.get("InstalledSoftware", []) if t not in (remove or [])]
            tags += [t for t in add or [] if t not in tags]
            extra["InstalledSoftware"] = tags
            cluster_store.update_cluster(
                conn, cluster_id, extra=json.dumps(extra, sort_keys=True), updated_at=self._clock.now()
            )
            return tags
