"""A cluster's users: AddUsers, DeleteUsers, ModifyUserGroups, ModifyUserPasswords, ListUsers.

AddUsers makes each user exist where its jobs run through the provider (`ensure_user`, token-keyed by
(cluster, name), outside the transaction) and records the users only after the provider confirms
them all. A crash in between leaves accounts the store does not list; the caller's retry finds them
(same tokens) and records them. DeleteUsers and the Modify calls change our record only: a local
account stays until DeleteCluster, so the output files of its finished jobs stay readable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from hpcplane.clock import Clock
from hpcplane.domain.accounts import Principal
from hpcplane.domain.errors import ClusterNotFound, InvalidClusterStatus, InvalidParams
from hpcplane.domain.resources import ClusterStatus
from hpcplane.providers.base import JobsProvider
from hpcplane.providers.jobs import user_token
from hpcplane.services.clusters_admin import enabled, owned_cluster
from hpcplane.services.passwords import hash_password
from hpcplane.store import users as store
from hpcplane.store import views
from hpcplane.store.db import Database


@dataclass(frozen=True, slots=True)
class UserEntry:
    """One User.N of a call: its parameter name (for errors), and the fields the action uses."""

    param: str
    name: str
    group: str | None = None
    password: str | None = None


@dataclass(frozen=True, slots=True)
class UserPage:
    users: list[dict[str, Any]]
    total: int


def running_cluster(conn: Connection, who: Principal, cluster_id: str) -> dict[str, Any]:
    """The caller's cluster, locked, which must be running (users and queues change only then)."""
    cluster = owned_cluster(conn, who, cluster_id)
    if cluster["status"] != ClusterStatus.RUNNING.value:
        raise InvalidClusterStatus()
    return cluster


def visible_cluster(conn: Connection, who: Principal, cluster_id: str) -> views.ClusterView:
    enabled(conn, who)
    cluster = views.get_cluster(conn, account_id=who.account.id, cluster_id=cluster_id)
    if cluster is None:
        raise ClusterNotFound()
    return cluster


class UserService:
    def __init__(self, db: Database, clock: Clock, provider: JobsProvider) -> None:
        self._db = db
        self._clock = clock
        self._provider = provider

    def _check_new(self, conn: Connection, who: Principal, cluster_id: str, entries: list[UserEntry]) -> None:
        running_cluster(conn, who, cluster_id)
        existing = store.user_names(conn, cluster_id)
        seen: set[str] = set()
        for entry in entries:
            if entry.name in existing or entry.name in seen:
                raise InvalidParams(entry.param, "names a user that already exists")
            seen.add(entry.name)

    def add(self, who: Principal, cluster_id: str, entries: list[UserEntry]) -> None:
        hashes = [hash_password(entry.password or "") for entry in entries]  # before the lock is taken
        with self._db.write() as conn:
            self._check_new(conn, who, cluster_id, entries)
        for entry in entries:
            self._provider.ensure_user(user_token(cluster_id, entry.name), cluster_id, entry.name)
        with self._db.write() as conn:
            self._check_new(conn, who, cluster_id, entries)
            now = self._clock.now()
            store.insert_users(
                conn,
                [
                    {
                        "cluster_id": cluster_id,
                        "name": entry.name,
                        "user_group": entry.group or "users",
                        "password_hash": digest,
                        "created_at": now,
                    }
                    for entry, digest in zip(entries, hashes, strict=True)
                ],
            )

    def _existing(self, conn: Connection, cluster_id: str, entries: list[UserEntry]) -> None:
        existing = store.user_names(conn, cluster_id)
        for entry in entries:
            if entry.name not in existing:
                raise InvalidParams(entry.param, "is not a user of the cluster")

    def delete(self, who: Principal, cluster_id: str, entries: list[UserEntry]) -> None:
        with self._db.write() as conn:
            running_cluster(conn, who, cluster_id)
            self._existing(conn, cluster_id, entries)
            store.delete_users(conn, cluster_id, [entry.name for entry in entries])

    def modify_groups(self, who: Principal, cluster_id: str, entries: list[UserEntry]) -> None:
        with self._db.write() as conn:
            running_cluster(conn, who, cluster_id)
            self._existing(conn, cluster_id, entries)
            for entry in entries:
                store.update_user(conn, cluster_id, entry.name, user_group=entry.group)

    def modify_passwords(self, who: Principal, cluster_id: str, entries: list[UserEntry]) -> None:
        hashes = [hash_password(entry.password or "") for entry in entries]
        with self._db.write() as conn:
            running_cluster(conn, who, cluster_id)
            self._existing(conn, cluster_id, entries)
            for entry, digest in zip(entries, hashes, strict=True):
                store.update_user(conn, cluster_id, entry.name, password_hash=digest)

    def list(self, who: Principal, cluster_id: str, *, page_number: int, page_size: int) -> UserPage:
        with self._db.read() as conn:
            visible_cluster(conn, who, cluster_id)
            rows, total = store.users_page(
                conn, cluster_id, offset=(page_number - 1) * page_size, limit=page_size
            )
        return UserPage(rows, total)

    def exists(self, cluster_id: str, name: str) -> bool:
        with self._db.read() as conn:
            return name in store.user_names(conn, cluster_id)
