"""What the engine tells a provider about jobs and nodes, and what the provider reports back."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job as our store knows it (QUEUED or RUNNING when observed)."""

    cluster_id: str
    job_id: str
    name: str
    owner: str
    queue: str
    command_line: str
    nodes: int
    cpus: int
    priority: int
    re_runable: bool
    state: str
    node_list: tuple[str, ...] = ()
    started_at: datetime | None = None
    ends_at: datetime | None = None
    finished_at: datetime | None = None
    seconds: float | None = None  # how long the job may run (its ClockTime), when it said


@dataclass(frozen=True, slots=True)
class NodeSlot:
    """A running compute node a job may run on: its hostname, queue and vCPUs."""

    hostname: str
    queue: str
    cpus: int


@dataclass(frozen=True, slots=True)
class JobUpdate:
    """A job's new state as the provider observed it."""

    job_id: str
    state: str
    node_list: tuple[str, ...] = ()
    started_at: datetime | None = None
    ends_at: datetime | None = None
    finished_at: datetime | None = None
    comment: str = ""


@dataclass(frozen=True, slots=True)
class JobSubmission:
    """Everything of a SubmitJob that may reach a scheduler: the job's identity, its resolved queue, and
    each SDK parameter as the caller gave it (None when not given), so that a provider maps or refuses
    every one of them and none is silently dropped. Stored (as JSON) until the provider confirms it."""

    cluster_id: str
    job_id: str
    command_line: str
    runas_user: str
    queue: str
    default_queue: bool  # the queue is the one the cluster's scheduler was installed with
    name: str | None = None
    node: int | None = None
    task: int | None = None
    thread: int | None = None
    cpu: int | None = None
    mem: str | None = None
    gpu: int | None = None
    clock_time: str | None = None
    priority: int | None = None
    variables: str | None = None
    stdout_redirect_path: str | None = None
    stderr_redirect_path: str | None = None
    array_request: str | None = None
    re_runable: bool | None = None
    package_path: str | None = None
    input_file_url: str | None = None
    unzip_cmd: str | None = None
    post_cmd_line: str | None = None
    job_retry_count: int | None = None
    job_retry_priority: int | None = None
    job_retry_on_exit_code: int | None = None

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> JobSubmission:
        data: dict[str, Any] = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def submit_token(cluster_id: str, job_id: str) -> str:
    """The idempotency token of a job's submission: one per (cluster, seq), whoever retries it."""
    return f"{cluster_id}/{job_id}/submit"


def job_token(cluster_id: str, job_id: str, op: str, version: datetime) -> str:
    """The token of a cancel or requeue: keyed by the job's row version (its updated_at), so a retry of
    a call whose effect was never recorded is the same call, and a later call is a new one."""
    return f"{cluster_id}/{job_id}/{op}/{version.isoformat()}"


def user_token(cluster_id: str, name: str) -> str:
    """The token of AddUsers' effect for one user: the account is made once per (cluster, name)."""
    return f"{cluster_id}/user/{name}"


# Job states: the three ListJobs documents, and the ends a job may also come to.
QUEUED, RUNNING, FINISHED, FAILED, STOPPED = "QUEUED", "RUNNING", "FINISHED", "FAILED", "STOPPED"
ACTIVE = (QUEUED, RUNNING)
ENDED = (FINISHED, FAILED, STOPPED)
