"""The provider interface: what a task step asks of the cloud."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection

from hpcplane.domain.tasks import TaskType
from hpcplane.providers.faults import Fault
from hpcplane.providers.jobs import JobRecord, JobUpdate, NodeSlot


class Provider(Protocol):
    """Acts on instances. Every call carries an idempotency token made of (TaskId, step): a provider
    outside our database must treat a repeated token as the same call; the simulated one lives in
    our database and applies its effects in the step's own transaction, so they happen exactly once."""

    def call(self, conn: Connection, token: str, action: str, instance_ids: list[str]) -> None: ...

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
