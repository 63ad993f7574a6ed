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

from hpcplane.domain.tasks import TaskType
from hpcplane.providers.faults import Fault
from hpcplane.providers.jobs import JobRecord, JobSubmission, JobUpdate, NodeSlot
from hpcplane.providers.nodes import NodeRef, NodesOutcome, NodeState


class JobsProvider(Protocol):
    """Jobs and users: the scheduler of the cluster and its accounts, reached only through the provider
    (JobService and UserService need only this half; providers/local/jobs_provider.py implements it)."""

    # Every call below takes no database connection: the services make it outside their transactions and
    # record its effect only after it returns. Each "make it so" call is keyed by a token
    # (providers/jobs.py: submit_token, job_token, user_token); a call repeated with a token already done
    # returns what it did the first time without acting again, so a retry after a crash converges.

    def check_job(self, job: JobSubmission) -> None:
        """Refuse (InvalidParams naming the parameter) what this provider cannot run as asked, before
        anything is recorded; no effect."""
        ...

    def submit_job(self, token: str, job: JobSubmission) -> str:
        """Hand a job to the cluster's scheduler, once per token; returns the scheduler's id for it."""
        ...

    def cancel_job(self, token: str, cluster_id: str, job_id: str) -> None:
        """Make sure a job does not run (StopJobs, DeleteJobs); one that already ended is cancelled enough."""
        ...

    def requeue_job(self, token: str, cluster_id: str, job_id: str) -> None:
        """Put a job back in its queue (RerunJobs), once per token."""
        ...

    def observe_jobs(self, jobs: list[JobRecord], nodes: list[NodeSlot], now: datetime) -> list[JobUpdate]:
        """One cluster's active jobs as the scheduler sees them now, given its running compute nodes;
        only the jobs whose state changed are returned."""
        ...

    def job_log(self, job: JobRecord) -> tuple[str, str]:
        """(stdout, stderr) of a job."""
        ...

    def write_job_file(self, token: str, cluster_id: str, owner: str, path: str, content: bytes) -> None:
        """Write a job file on the cluster as the cluster user `owner` (CreateJobFile); rewriting it with
        the same content is the same call."""
        ...

    def ensure_user(self, token: str, cluster_id: str, name: str) -> None:
        """Make sure the cluster user `name` exists where its jobs run (AddUsers)."""
        ...


class Provider(JobsProvider, Protocol):
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
