"""The ListClusters, DescribeCluster and ListNodes read side, after the account and cluster checks."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from sqlalchemy import Connection

from hpcplane.clock import Clock
from hpcplane.domain.accounts import Account, Principal
from hpcplane.domain.errors import ClusterNotFound, NotEnabled
from hpcplane.domain.resources import NodeStatus
from hpcplane.store import accounts as account_store
from hpcplane.store import views
from hpcplane.store.db import Database
from hpcplane.store.views import ClusterView, NodeCount, NodePage

# Node statuses as ListNodes documents them (and as the nodes table stores them).
NODE_STATUSES = tuple(status.value for status in NodeStatus)
# Statuses ListClusters counts as OperatingCount: being installed, initialized or released.
OPERATING_STATUSES = frozenset(
    {NodeStatus.UNINIT.value, NodeStatus.INITING.value, NodeStatus.RELEASING.value}
)


class NodeSort(enum.StrEnum):
    """SortBy of ListNodes."""

    ADDED_TIME = "AddedTime"
    HOST_NAME = "HostName"


@dataclass(frozen=True, slots=True)
class ClusterListQuery:
    """The validated parameters of one ListClusters call."""

    page_number: int = 1
    page_size: int = 10


@dataclass(frozen=True, slots=True)
class NodeQuery:
    """The validated parameters of one ListNodes call; `role` is the stored (lower-case) role."""

    cluster_id: str
    role: str | None = None
    host_name: str | None = None
    host_name_prefix: str | None = None
    host_name_suffix: str | None = None
    private_ip_address: str | None = None
    status: str | None = None
    sort_by: NodeSort = NodeSort.ADDED_TIME
    backward: bool = False
    page_number: int = 1
    page_size: int = 10


@dataclass(frozen=True, slots=True)
class RoleCounts:
    """The nodes of one role, counted as ListClusters reports them."""

    total: int = 0
    normal: int = 0
    exception: int = 0
    operating: int = 0
    stopped: int = 0


@dataclass(frozen=True, slots=True)
class Resources:
    """vCPUs, GPUs and memory (MiB)."""

    cpu: int = 0
    gpu: int = 0
    memory_mib: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu + other.cpu, self.gpu + other.gpu, self.memory_mib + other.memory_mib)

    def times(self, n: int) -> Resources:
        return Resources(self.cpu * n, self.gpu * n, self.memory_mib * n)


@dataclass(frozen=True, slots=True)
class ClusterSummary:
    """A cluster with its live nodes counted: what ListClusters and DescribeCluster render."""

    cluster: ClusterView
    counts: list[NodeCount]
    login_node_ids: list[str]

    def role(self, role: str) -> RoleCounts:
        mine = [c for c in self.counts if c.role == role]
        return RoleCounts(
            total=sum(c.count for c in mine),
            normal=sum(c.count for c in mine if c.status == "running"),
            exception=sum(c.count for c in mine if c.status == "exception"),
            operating=sum(c.count for c in mine if c.status in OPERATING_STATUSES),
            stopped=sum(c.count for c in mine if c.status == "stopped"),
        )

    def compute_resources(self) -> Resources:
        """What the compute nodes offer together, from their instance types."""
        total = Resources()
        for c in self.counts:
            if c.role == "compute":
                total += instance_resources(c.instance_type).times(c.count)
        return total


@dataclass(frozen=True, slots=True)
class ClusterList:
    """One page of ListClusters and the number of all the account's clusters."""

    clusters: list[ClusterSummary]
    total: int


@dataclass(frozen=True, slots=True)
class NodeList:
    """One page of ListNodes, with the cluster the nodes belong to."""

    cluster: ClusterView
    page: NodePage


class ClusterReader:
    """Answers ListClusters, DescribeCluster and ListNodes straight from SQL."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def list_clusters(self, principal: Principal, query: ClusterListQuery) -> ClusterList:
        with self._db.read() as conn:
            account = _enabled_account(conn, principal)
            page = views.list_clusters(
                conn,
                account_id=account.id,
                offset=(query.page_number - 1) * query.page_size,
                limit=query.page_size,
            )
            ids = [cluster.id for cluster in page.clusters]
            counts = views.node_counts(conn, ids)
            logins = views.node_ids(conn, ids, "login")
        summaries = [ClusterSummary(c, counts[c.id], logins[c.id]) for c in page.clusters]
        return ClusterList(clusters=summaries, total=page.total)

    def describe_cluster(self, principal: Principal, cluster_id: str) -> ClusterSummary:
        with self._db.read() as conn:
            cluster = _owned_cluster(conn, principal, cluster_id)
            counts = views.node_counts(conn, [cluster.id])[cluster.id]
            logins = views.node_ids(conn, [cluster.id], "login")[cluster.id]
        return ClusterSummary(cluster, counts, logins)

    def list_nodes(self, principal: Principal, query: NodeQuery) -> NodeList:
        with self._db.read() as conn:
            cluster = _owned_cluster(conn, principal, query.cluster_id)
            page = views.list_nodes(
                conn,
                cluster_id=cluster.id,
                role=query.role,
                hostname_contains=query.host_name,
                hostname_prefix=query.host_name_prefix,
                hostname_suffix=query.host_name_suffix,
                private_ip=query.private_ip_address,
                status=query.status,
                by_hostname=query.sort_by is NodeSort.HOST_NAME,
                descending=query.backward,
                offset=(query.page_number - 1) * query.page_size,
                limit=query.page_size,
            )
        return NodeList(cluster=cluster, page=page)


def _enabled_account(conn: Connection, principal: Principal) -> Account:
    account = account_store.get_account(conn, principal.account.id)
    if account is None or not account.ehpc_enabled:
        raise NotEnabled()
    return account


def _owned_cluster(conn: Connection, principal: Principal, cluster_id: str) -> ClusterView:
    account = _enabled_account(conn, principal)
    cluster = views.get_cluster(conn, account_id=account.id, cluster_id=cluster_id)
    if cluster is None:
        raise ClusterNotFound()
    return cluster


# --- What we do not store, estimated from what we do ---------------------------------------------

_FAMILY = re.compile(r"^ecs\.([a-z]+)[0-9a-z-]*\.(\d*)(xlarge|large|medium|small|tiny)$")
_SIZE_VCPUS = {"tiny": 1, "small": 1, "medium": 2, "large": 2, "xlarge": 4}


def instance_resources(instance_type: str) -> Resources:
    """An estimate of what an ECS instance type offers, from its name (ecs.<family>.<size>).

    vCPUs follow the size (large 2, xlarge 4, Nxlarge 4N); memory per vCPU follows the family's class
    (compute c 2 GiB, general g 4 GiB, memory r 8 GiB); GPU families (gn, vgn, ebmgn) get one GPU per
    8 vCPUs. An unknown name offers nothing.
    """
    match = _FAMILY.match(instance_type)
    if match is None:
        return Resources()
    family, multiple, size = match.groups()
    vcpus = _SIZE_VCPUS[size] * (int(multiple) if multiple and size == "xlarge" else 1)
    gib_per_vcpu = 2 if family.endswith("c") else 8 if family.endswith("r") else 4
    gpus = max(1, vcpus // 8) if "gn" in family else 0
    return Resources(cpu=vcpus, gpu=gpus, memory_mib=vcpus * gib_per_vcpu * 1024)


_SCHEDULER_VERSIONS = {"pbs": "19.1.1", "slurm": "20.02", "opengridscheduler": "2011.11", "deadline": "10.1"}


def scheduler_version(scheduler_type: str) -> str:
    """The version E-HPC installs of each scheduler."""
    return _SCHEDULER_VERSIONS.get(scheduler_type, "")


def node_roles(role: str, deploy_mode: str) -> list[str]:
    """The service roles a node plays (ListNodes Roles.Role) for its stored role."""
    if role == "manager":
        roles = ["Scheduler", "Account"]
        return [*roles, "Login"] if deploy_mode == "Tiny" else roles
    return ["Login"] if role == "login" else ["Compute"]


def state_in_sched(role: str, status: str, scheduler_type: str) -> str:
    """A compute node's state as its scheduler shows it; other nodes are not in the scheduler."""
    if role != "compute":
        return ""
    if status != "running":
        return "down"
    return "idle" if scheduler_type == "slurm" else "free"
