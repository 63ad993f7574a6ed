"""The provider interface: what a task step asks of the cloud, and what it observes.

Clusters and nodes (this part): idempotent, token-keyed "make it so" calls that take no database
connection. The engine calls them outside any transaction of its own, with the step's token (TaskId,
step), and records the effect only after the provider confirms it (`NodesOutcome`). A provider must
treat a repeated token as the same call and return what it returned the first time. A call may take
long (a real daemon registering): the engine keeps the task's lease alive meanwhile. A failure of the
whole call is a typed error (`ProviderFailed`, `InvalidParams`); a failure of one node is its entry in
`NodesOutcome.failed`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection

from hpcplane.domain.tasks import TaskType
from hpcplane.providers.faults import Fault
from hpcplane.providers.jobs import JobRecord, JobUpdate, NodeSlot
from hpcplane.providers.nodes import NodeRef, NodesOutcome, NodeState


class Provider(Protocol):
    """Acts on clusters, nodes and jobs; engine, services and API never know which one is behind it."""

    @property
    def name(self) -> str:
        """What the cluster's `provider` column records (simulated, local)."""
        ...

    @property
    def owner_host(self) -> str | None:
        """The machine whose workers alone may act on this provider's clusters; None: any worker."""
        ...

    # --- Clusters and nodes ----------------------------------------------------------------------

    def prepare_cluster(self, token: str, cluster_id: str, nodes: list[NodeRef]) -> NodesOutcome:
        """The cluster's network and its manager and login nodes exist (CreateCluster run-instances)."""
        ...

    def ensure_controller(self, token: str, cluster_id: str) -> None:
        """The cluster's scheduler runs (CreateCluster install-scheduler); raises when it cannot."""
        ...

    def ensure_nodes_running(
        self, token: str, cluster_id: str, nodes: list[NodeRef], *, new: bool
    ) -> NodesOutcome:
        """These nodes exist, run and are registered with the scheduler; `new`: just created
        (CreateCluster, AddNodes), else started again (StartNodes)."""
        ...

    def ensure_nodes_stopped(self, token: str, cluster_id: str, nodes: list[NodeRef]) -> NodesOutcome:
        """These nodes are drained and stopped (StopNodes)."""
        ...

    def reset_nodes(self, token: str, cluster_id: str, nodes: list[NodeRef]) -> NodesOutcome:
        """These nodes' state wiped and started clean, once per token (ResetNodes, RecoverCluster)."""
        ...

    def ensure_nodes_absent(
        self, token: str, cluster_id: str, nodes: list[NodeRef], *, release: bool
    ) -> NodesOutcome:
        """These nodes are out of the cluster; `release`: their instances are gone too (DeleteNodes)."""
        ...

    def ensure_cluster_stopped(self, token: str, cluster_id: str, nodes: list[NodeRef]) -> NodesOutcome:
        """Every daemon of the cluster stopped (StopCluster)."""
        ...

    def ensure_cluster_running(self, token: str, cluster_id: str, nodes: list[NodeRef]) -> NodesOutcome:
        """Every daemon the cluster wants runs again (StartCluster, recovery after a reboot)."""
        ...

    def destroy_cluster(
        self, token: str, cluster_id: str, nodes: list[NodeRef], *, release: bool
    ) -> NodesOutcome:
        """Nothing of the cluster is left (DeleteCluster)."""
        ...

    def observe_nodes(self, cluster_id: str) -> list[NodeState] | None:
        """The cluster's nodes as they are now; None when the provider has nothing to observe."""
        ...

    # --- The simulated cloud's knobs (a real provider: no delay, no injected fault) --------------

    def step_delay(self) -> float: ...

    def fault(self, task_type: TaskType) -> Fault: ...

    def node_fails(self, task_type: TaskType, hostname: str) -> bool: ...

    def capacity(self) -> int: ...

    # --- Jobs: the scheduler of the cluster, reached only through the provider ----------------------

    def submit_job(self, conn: Connection, job: JobRecord) -> None:
        """Hand a new job to the cluster's scheduler."""
        ...

    def cancel_job(self, conn: Connection, cluster_id: str, job_id: str) -> None:
        """Stop a queued or running job (StopJobs, DeleteJobs)."""
        ...

    def requeue_job(self, conn: Connection, cluster_id: str, job_id: str) -> None:
        """Put a job back in its queue (RerunJobs)."""
        ...

    def observe_jobs(self, jobs: list[JobRecord], nodes: list[NodeSlot], now: datetime) -> list[JobUpdate]:
        """The cluster's active jobs as the scheduler sees them now, given its running compute nodes;
        only the jobs whose state changed are returned."""
        ...

    def job_log(self, job: JobRecord) -> tuple[str, str]:
        """(stdout, stderr) of a job."""
        ...

    def write_job_file(
        self, conn: Connection, cluster_id: str, owner: str, path: str, content: bytes
    ) -> None:
        """Write a job file on the cluster as `owner` (CreateJobFile)."""
        ...
