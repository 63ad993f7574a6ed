"""The provider interface: what a task step asks of the cloud."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection

from hpcplane.domain.tasks import TaskType
from hpcplane.providers.faults import Fault
from hpcplane.providers.jobs import JobRecord, JobSubmission, JobUpdate, NodeSlot


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
    """Acts on instances. Every call carries an idempotency token made of (TaskId, step): a provider
    outside our database must treat a repeated token as the same call; the simulated one lives in
    our database and applies its effects in the step's own transaction, so they happen exactly once."""

    def call(self, conn: Connection, token: str, action: str, instance_ids: list[str]) -> None: ...

    def step_delay(self) -> float: ...

    def fault(self, task_type: TaskType) -> Fault: ...

    def node_fails(self, task_type: TaskType, hostname: str) -> bool: ...

    def capacity(self) -> int: ...
