"""The nine asynchronous operations: each checks state, writes its effect and its task in one transaction."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, exc

from hpcplane import ids
from hpcplane.clock import Clock
from hpcplane.domain.accounts import Principal
from hpcplane.domain.errors import (
    ClusterNotFound,
    ConflictOpt,
    IdempotentParameterMismatch,
    InvalidParams,
    NotEnabled,
)
from hpcplane.domain.plans import plan_for
from hpcplane.domain.resources import ClusterStatus, NodeStatus, Role, check_cluster, check_node
from hpcplane.domain.tasks import TaskType
from hpcplane.providers.base import Provider
from hpcplane.providers.nodes import NodeRef
from hpcplane.services.tasks import request_json
from hpcplane.store import accounts as account_store
from hpcplane.store import clusters as cluster_store
from hpcplane.store import engine as engine_store
from hpcplane.store import tasks as task_store
from hpcplane.store.db import Database
from hpcplane.store.tasks import NewTask
from hpcplane.store.users import queue_exists

# Parameters of the envelope and the signature, and secrets: never part of a task's Request.
_NOT_OPERATION = frozenset(
    {
        "Action",
        "Version",
        "Format",
        "AccessKeyId",
        "Signature",
        "SignatureMethod",
        "SignatureVersion",
        "SignatureNonce",
        "SignatureType",
        "Timestamp",
        "SecurityToken",
        "RegionId",
    }
)
SECRET_PARAMETERS = frozenset({"Password"})
_SUBNET = ipaddress.IPv4Network("192.168.0.0/16")


def operation_params(raw: Mapping[str, str]) -> dict[str, str]:
    """The call's own parameters: no envelope, no signature, no secrets."""
    return {k: v for k, v in sorted(raw.items()) if k not in _NOT_OPERATION and k not in SECRET_PARAMETERS}


def params_hash(raw: Mapping[str, str], key: bytes) -> str:
    """What ClientToken idempotency compares: every parameter but the token, secrets as a keyed hash."""
    params = {k: v for k, v in operation_params(raw).items() if k != "ClientToken"}
    secrets = {k: v for k, v in raw.items() if k in SECRET_PARAMETERS}
    material = json.dumps(params, sort_keys=True)
    sealed = hmac.new(key, json.dumps(secrets, sort_keys=True).encode(), hashlib.sha256).hexdigest()
    return hashlib.sha256(f"{material}\n{sealed}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Submission:
    """One call as a task records it: its RequestId, its parameters, their digest, its ClientToken."""

    request_id: str
    params: dict[str, str]
    digest: str
    client_token: str | None = None


@dataclass(frozen=True, slots=True)
class Accepted:
    """What an operation answers at once."""

    task_id: str
    cluster_id: str
    instance_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class NewNode:
    role: Role
    hostname: str
    instance_type: str


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """CreateCluster's validated parameters."""

    values: dict[str, Any]
    nodes: list[NewNode]
    client_token: str | None


@dataclass(frozen=True, slots=True)
class AddSpec:
    """AddNodes' validated parameters."""

    cluster_id: str
    count: int
    min_count: int
    instance_type: str | None
    prefix: str
    suffix: str
    zone_id: str | None
    create_mode: str
    client_token: str | None
    sync: bool
    job_queue: str | None = None


class Operations:
    """Accepts operations; the engine carries them out."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        provider: Provider,
        *,
        region: str,
        wake: Callable[[], None],
        hash_key: bytes,
    ) -> None:
        self._hash_key = hash_key
        self._db = db
        self._clock = clock
        self._provider = provider
        self._region = region
        self._wake = wake

    # --- cluster operations ---------------------------------------------------------------------

    def submission(self, request_id: str, raw: Mapping[str, str], token: str | None = None) -> Submission:
        return Submission(request_id, operation_params(raw), params_hash(raw, self._hash_key), token)

    def create_cluster(
        self, who: Principal, request_id: str, spec: ClusterSpec, raw: Mapping[str, str]
    ) -> Accepted:
        call = self.submission(request_id, raw, spec.client_token)
        return self._with_token(
            who, TaskType.CREATE_CLUSTER, call, lambda conn: self._create(conn, who, call, spec)
        )

    def _create(self, conn: Connection, who: Principal, call: Submission, spec: ClusterSpec) -> Accepted:
        now = self._clock.now()
        cluster_id = ids.cluster_id(self._region)
        task_id = ids.task_id()
        values = {
            **spec.values,
            "id": cluster_id,
            "account_id": who.account.id,
            "region_id": self._region,
            "status": ClusterStatus.UNINIT.value,
            "provider": self._provider.name,
            "host": self._provider.owner_host,
            "client_token": spec.client_token,
            "task_id": task_id,
            "created_at": now,
            "updated_at": now,
        }
        computes = sum(node.role is Role.COMPUTE for node in spec.nodes)
        available = self._available(conn, who)
        cluster_store.insert_cluster(conn, values)
        node_ids = self._insert_nodes(conn, who, cluster_id, values["zone_id"], spec.nodes, task_id, now)
        state = {"capacity": {"available": available, "minCount": computes}} if computes > available else {}
        self._enqueue(conn, who, call, TaskType.CREATE_CLUSTER, cluster_id, task_id, node_ids, state)
        return Accepted(task_id, cluster_id, node_ids)

    def cluster_operation(
        self, who: Principal, request_id: str, task_type: TaskType, cluster_id: str, raw: Mapping[str, str]
    ) -> Accepted:
        """StartCluster, StopCluster or DeleteCluster: every node of the cluster is a target."""
        call = self.submission(request_id, raw)
        with self._db.write() as conn:
            self._check_enabled(conn, who)
            cluster = self._lock(conn, who, cluster_id)
            nodes = cluster_store.cluster_nodes(conn, cluster_id)
            if cluster["task_id"] or any(n["task_id"] for n in nodes):
                raise ConflictOpt()
            check_cluster(task_type, cluster["status"])
            task_id = ids.task_id()
            node_ids = [n["id"] for n in nodes]
            cluster_store.update_cluster(conn, cluster_id, task_id=task_id, updated_at=self._clock.now())
            cluster_store.update_nodes(conn, node_ids, task_id=task_id)
            self._enqueue(conn, who, call, task_type, cluster_id, task_id, node_ids)
        self._wake()
        return Accepted(task_id, cluster_id)

    # --- node operations ------------------------------------------------------------------------

    def add_nodes(self, who: Principal, request_id: str, spec: AddSpec, raw: Mapping[str, str]) -> Accepted:
        call = self.submission(request_id, raw, spec.client_token)
        return self._with_token(
            who, TaskType.ADD_COMPUTES, call, lambda conn: self._add(conn, who, call, spec)
        )

    def _available(self, conn: Connection, who: Principal) -> int:
        """Compute instances the account may still get from the (simulated) cloud."""
        return max(0, self._provider.capacity() - cluster_store.count_compute_nodes(conn, who.account.id))

    def _add(self, conn: Connection, who: Principal, call: Submission, spec: AddSpec) -> Accepted:
        cluster = self._lock(conn, who, spec.cluster_id)
        if cluster["task_id"]:
            raise ConflictOpt()
        check_cluster(TaskType.ADD_COMPUTES, cluster["status"])
        if spec.job_queue is not None and not queue_exists(conn, cluster, spec.job_queue):
            raise InvalidParams("JobQueue", "is not a queue of the cluster")
        available = self._available(conn, who)
        count = spec.count if available >= spec.count else (available if available >= spec.min_count else 0)
        used_names, _ = cluster_store.used_hostnames_and_ips(conn, spec.cluster_id)
        instance_type = spec.instance_type or cluster["compute_instance_type"] or "ecs.c6.large"
        names = _hostnames(spec.prefix or "compute", spec.suffix, used_names, count)
        now = self._clock.now()
        task_id = ids.task_id()
        node_ids = self._insert_nodes(
            conn,
            who,
            spec.cluster_id,
            spec.zone_id or cluster["zone_id"],
            [NewNode(Role.COMPUTE, name, instance_type) for name in names],
            task_id,
            now,
            create_mode=spec.create_mode,
            extra=json.dumps({"queue": spec.job_queue}) if spec.job_queue else "{}",
        )
        state: dict[str, Any] = {}
        if count == 0:
            state["capacity"] = {"available": available, "minCount": spec.min_count}
        self._enqueue(conn, who, call, TaskType.ADD_COMPUTES, spec.cluster_id, task_id, node_ids, state)
        return Accepted(task_id, spec.cluster_id, node_ids)

    def node_operation(
        self,
        who: Principal,
        request_id: str,
        task_type: TaskType,
        cluster_id: str,
        instances: list[tuple[str, str]],
        role: Role,
        raw: Mapping[str, str],
    ) -> Accepted:
        """StartNodes, StopNodes, ResetNodes or DeleteNodes on the named instances."""
        call = self.submission(request_id, raw)
        with self._db.write() as conn:
            self._check_enabled(conn, who)
            node_ids = self._lock_nodes(conn, who, task_type, cluster_id, instances, role)
            task_id = ids.task_id()
            cluster_store.update_nodes(conn, node_ids, task_id=task_id)
            self._enqueue(conn, who, call, task_type, cluster_id, task_id, node_ids)
        self._wake()
        return Accepted(task_id, cluster_id, node_ids)

    def delete_nodes_now(
        self,
        who: Principal,
        request_id: str,
        cluster_id: str,
        instances: list[tuple[str, str]],
        release: bool,
    ) -> None:
        """DeleteNodes with Sync=true: the nodes leave the cluster within the call, and no task is made."""
        with self._db.write() as conn:
            self._check_enabled(conn, who)
            node_ids = self._lock_nodes(
                conn, who, TaskType.DELETE_COMPUTES, cluster_id, instances, Role.COMPUTE
            )
            refs = [
                NodeRef(n["id"], n["hostname"], n["role"], n["private_ip"])
                for n in cluster_store.cluster_nodes(conn, cluster_id, node_ids)
            ]
        # The provider acts outside the transaction; the store records what it confirmed.
        outcome = self._provider.ensure_nodes_absent(f"{request_id}:sync", cluster_id, refs, release=release)
        with self._db.write() as conn:
            now = self._clock.now()
            cluster_store.update_nodes(
                conn, list(outcome.ready), status=NodeStatus.RELEASING.value, deleted_at=now, updated_at=now
            )
            cluster_store.update_nodes(
                conn, list(outcome.failed), status=NodeStatus.EXCEPTION.value, updated_at=now
            )

    # --- shared ---------------------------------------------------------------------------------

    def _lock_nodes(
        self,
        conn: Connection,
        who: Principal,
        task_type: TaskType,
        cluster_id: str,
        instances: list[tuple[str, str]],
        role: Role,
    ) -> list[str]:
        cluster = self._lock(conn, who, cluster_id)
        if cluster["task_id"]:
            raise ConflictOpt()
        check_cluster(task_type, cluster["status"])
        wanted = list(dict.fromkeys(value for _, value in instances))
        found = {n["id"]: n for n in cluster_store.cluster_nodes(conn, cluster_id, wanted)}
        for name, value in instances:
            node = found.get(value)
            if node is None:
                raise InvalidParams(name, "is not a node of the cluster")
            if node["role"] != role.value:
                raise InvalidParams(name, f"is not a {role.api_name} node")
        if any(found[node_id]["task_id"] for node_id in wanted):
            raise ConflictOpt()
        for node_id in wanted:
            check_node(task_type, found[node_id]["status"])
        return wanted

    def _lock(self, conn: Connection, who: Principal, cluster_id: str) -> dict[str, Any]:
        cluster = cluster_store.lock_cluster(conn, cluster_id, who.account.id)
        if cluster is None:
            raise ClusterNotFound()
        return cluster

    @staticmethod
    def _check_enabled(conn: Connection, who: Principal) -> None:
        account = account_store.get_account(conn, who.account.id)
        if account is None or not account.ehpc_enabled:
            raise NotEnabled()

    def _with_token(
        self,
        who: Principal,
        task_type: TaskType,
        call: Submission,
        create: Callable[[Connection], Accepted],
    ) -> Accepted:
        """Run `create` once per ClientToken: a repeat with the same parameters gets the first answer."""
        token = call.client_token
        for attempt in range(2):
            try:
                with self._db.write() as conn:
                    self._check_enabled(conn, who)
                    if token is not None:
                        hit = task_store.find_by_client_token(conn, who.account.id, task_type, token)
                        if hit is not None:
                            if hit.params_hash != call.digest:
                                raise IdempotentParameterMismatch()
                            targets = json.loads(hit.state).get("targets", [])
                            return Accepted(hit.task_id, hit.cluster_id, targets)
                    accepted = create(conn)
                self._wake()
                return accepted
            except exc.IntegrityError:
                if token is None or attempt == 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _insert_nodes(
        self,
        conn: Connection,
        who: Principal,
        cluster_id: str,
        zone_id: str,
        new: list[NewNode],
        task_id: str,
        now: datetime,
        *,
        create_mode: str = "manual",
        extra: str = "{}",
    ) -> list[str]:
        _, used_ips = cluster_store.used_hostnames_and_ips(conn, cluster_id)
        free_ips = (str(ip) for ip in _SUBNET.hosts() if ip.packed[-1] >= 10 and str(ip) not in used_ips)
        rows = [
            {
                "id": ids.instance_id(),
                "cluster_id": cluster_id,
                "account_id": who.account.id,
                "role": node.role.value,
                "hostname": node.hostname,
                "status": NodeStatus.UNINIT.value,
                "instance_type": node.instance_type,
                "private_ip": next(free_ips),
                "zone_id": zone_id,
                "create_mode": create_mode,
                "extra": extra,
                "task_id": task_id,
                "created_at": now,
                "updated_at": now,
            }
            for node in new
        ]
        cluster_store.insert_nodes(conn, rows)
        return [str(row["id"]) for row in rows]

    def _enqueue(
        self,
        conn: Connection,
        who: Principal,
        call: Submission,
        task_type: TaskType,
        cluster_id: str,
        task_id: str,
        targets: list[str],
        state: dict[str, Any] | None = None,
    ) -> None:
        """Write the task in the caller's transaction; on PostgreSQL, NOTIFY idle workers at commit."""
        now = self._clock.now()
        plan = plan_for(task_type)
        task_store.insert_task(
            conn,
            NewTask(
                task_id=task_id,
                account_id=who.account.id,
                cluster_id=cluster_id,
                task_type=task_type,
                total_steps=len(plan),
                request=request_json(call.request_id, who.account.id, cluster_id, call.params),
                plan=json.dumps(plan),
                state=json.dumps({"targets": targets, "failed": [], **(state or {})}),
                run_after=now,
                client_token=call.client_token,
                params_hash=call.digest,
            ),
            now,
        )
        if self._db.is_postgres:
            engine_store.notify(conn)


def _hostnames(prefix: str, suffix: str, used: set[str], count: int) -> list[str]:
    """The first `count` names prefix<N>suffix not given before in the cluster, N from 0."""
    names: list[str] = []
    number = 0
    while len(names) < count:
        name = f"{prefix}{number}{suffix}"
        if name not in used:
            names.append(name)
        number += 1
    return names
