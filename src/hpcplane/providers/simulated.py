"""The simulated cloud: instances are rows of our own store, timing and faults come from settings."""

from __future__ import annotations

import json
import random
import threading
from datetime import datetime

from sqlalchemy import Connection, insert, select

from hpcplane.clock import Clock
from hpcplane.domain.tasks import TaskType
from hpcplane.providers import simulated_jobs
from hpcplane.providers.faults import Fault, Faults
from hpcplane.providers.jobs import JobRecord, JobSubmission, JobUpdate, NodeSlot
from hpcplane.providers.nodes import NodeRef, NodesOutcome, NodeState
from hpcplane.store import simcalls
from hpcplane.store.db import Database
from hpcplane.store.tables import sim_calls


class SimulatedCloud:
    """Step durations with jitter, a capacity limit, and injected faults; deterministic for a seed.

    Its instances are the store's own node rows: a node call only logs what it was asked (a sim_calls
    row, in its own transaction, once per token) and confirms every node it was given."""

    name = "simulated"
    owner_host: str | None = None

    def __init__(
        self,
        clock: Clock,
        *,
        db: Database | None = None,
        step_seconds: float,
        jitter: float,
        capacity: int,
        seed: int,
        faults: Faults,
        job_seconds: float = 30.0,
        job_fail_rate: float = 0.0,
    ) -> None:
        self._db = db
        self._job_seconds = job_seconds
        self._job_fail_rate = job_fail_rate
        self._clock = clock
        self._step_seconds = step_seconds
        self._jitter = jitter
        self._capacity = capacity
        self._seed = seed
        self._faults = faults
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._journal: Database | None = None
        self.job_calls: list[tuple[str, str]] = []  # (token, action) when no journal is attached

    def retune(self, faults: Faults, step_seconds: float, jitter: float) -> None:
        """New faults and step timing at runtime (the control API's tuning)."""
        with self._lock:
            self._faults, self._step_seconds, self._jitter = faults, step_seconds, jitter

    def call(self, conn: Connection, token: str, action: str, instance_ids: list[str]) -> None:
        """Log the call: the simulated cloud's record of what it was asked, under which token."""
        now: datetime = self._clock.now()
        conn.execute(
            insert(sim_calls).values(
                token=token, action=action, instance_ids=json.dumps(instance_ids), at=now
            )
        )

    # --- Clusters and nodes: the contract of providers/base.py --------------------------------------

    def prepare_cluster(self, token: str, cluster_id: str, nodes: list[NodeRef]) -> NodesOutcome:
        return NodesOutcome.all_ready(nodes)  # the network and the nodes' rows exist with the cluster

    def ensure_controller(self, token: str, cluster_id: str) -> None:
        return None  # the simulated scheduler needs nothing started

    def ensure_nodes_running(
        self, token: str, cluster_id: str, nodes: list[NodeRef], *, new: bool
    ) -> NodesOutcome:
        return self._log(token, "RunInstances" if new else "StartInstances", nodes)

    def ensure_nodes_stopped(self, token: str, cluster_id: str, nodes: list[NodeRef]) -> NodesOutcome:
        return self._log(token, "StopInstances", nodes)

    def reset_nodes(self, token: str, cluster_id: str, nodes: list[NodeRef]) -> NodesOutcome:
        return self._log(token, "ReInitDisks", nodes)

    def ensure_nodes_absent(
        self, token: str, cluster_id: str, nodes: list[NodeRef], *, release: bool
    ) -> NodesOutcome:
        return self._log(token, "DeleteInstances" if release else "UntrackInstances", nodes)

    def ensure_cluster_stopped(self, token: str, cluster_id: str, nodes: list[NodeRef]) -> NodesOutcome:
        return self._log(token, "StopInstances", nodes)

    def ensure_cluster_running(self, token: str, cluster_id: str, nodes: list[NodeRef]) -> NodesOutcome:
        return self._log(token, "StartInstances", nodes)

    def destroy_cluster(
        self, token: str, cluster_id: str, nodes: list[NodeRef], *, release: bool
    ) -> NodesOutcome:
        return self._log(token, "DeleteInstances" if release else "UntrackInstances", nodes)

    def observe_nodes(self, cluster_id: str) -> list[NodeState] | None:
        return None  # the store's rows are the simulated cloud's truth

    def _log(self, token: str, action: str, nodes: list[NodeRef]) -> NodesOutcome:
        """One sim_calls row per token, in its own transaction (one round trip on PostgreSQL); a repeated
        token confirms the same."""
        if self._db is None:
            raise RuntimeError("the simulated cloud needs its store to act on nodes")
        with self._db.driver(write=True) as driver:
            simcalls.record_once(driver, token, action, [n.instance_id for n in nodes], self._clock.now())
        return NodesOutcome.all_ready(nodes)

    def step_delay(self) -> float:
        if self._step_seconds == 0:
            return 0.0
        with self._lock:
            spread = self._rng.uniform(-self._jitter, self._jitter)
        return max(0.0, self._step_seconds * (1 + spread))

    def fault(self, task_type: TaskType) -> Fault:
        return self._faults.for_type(task_type)

    def node_fails(self, task_type: TaskType, hostname: str) -> bool:
        """Whether this node fails in this operation: the same answer for the same seed, every time."""
        rate = self._faults.for_type(task_type).node_fail_rate
        if rate <= 0:
            return False
        return random.Random(f"{self._seed}:{task_type.value}:{hostname}").random() < rate

    def capacity(self) -> int:
        return self._capacity

    # --- Jobs and users: the simulated scheduler (providers/simulated_jobs.py) ------------------------
    # Nothing runs: each effect is a line of the call log (sim_calls), written in the log's own
    # transaction (never the caller's) and once per token, so a retried call leaves one line.

    def attach_journal(self, db: Database) -> None:
        """Where job and user calls are logged; without one they are kept in memory (tests' own clouds)."""
        self._journal = db

    def _log_once(self, token: str, action: str, *, once: bool = True) -> None:
        token = token[:128]
        journal = self._journal or self._db
        if journal is None:
            with self._lock:
                if not once or (token, action) not in self.job_calls:
                    self.job_calls.append((token, action))
            return
        with journal.write() as conn:
            seen = conn.execute(
                select(sim_calls.c.id).where(sim_calls.c.token == token, sim_calls.c.action == action)
            ).first()
            if not once or seen is None:
                self.call(conn, token, action, [])

    def check_job(self, job: JobSubmission) -> None:
        """The simulated cloud can pretend to run anything the API accepts."""

    def submit_job(self, token: str, job: JobSubmission) -> str:
        self._log_once(token, "SubmitJob")
        return job.job_id

    def cancel_job(self, token: str, cluster_id: str, job_id: str) -> None:
        self._log_once(token, "CancelJob")

    def requeue_job(self, token: str, cluster_id: str, job_id: str) -> None:
        self._log_once(token, "RequeueJob")

    def observe_jobs(self, jobs: list[JobRecord], nodes: list[NodeSlot], now: datetime) -> list[JobUpdate]:
        return simulated_jobs.observe(
            jobs, nodes, now, seconds=self._job_seconds, fail_rate=self._job_fail_rate, seed=self._seed
        )

    def job_log(self, job: JobRecord) -> tuple[str, str]:
        return simulated_jobs.log(job)

    def write_job_file(self, token: str, cluster_id: str, owner: str, path: str, content: bytes) -> None:
        """Nothing is written anywhere: the call (not the content) is logged, every time."""
        self._log_once(token, "CreateJobFile", once=False)

    def ensure_user(self, token: str, cluster_id: str, name: str) -> None:
        self._log_once(token, "AddUser")
