"""What the engine tells a provider about jobs and nodes, and what the provider reports back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


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


# Job states: the three ListJobs documents, and the ends a job may also come to.
QUEUED, RUNNING, FINISHED, FAILED, STOPPED = "QUEUED", "RUNNING", "FINISHED", "FAILED", "STOPPED"
ACTIVE = (QUEUED, RUNNING)
ENDED = (FINISHED, FAILED, STOPPED)
