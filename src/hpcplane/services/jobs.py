"""Jobs: SubmitJob and the calls that read and steer them; `advance` applies what the provider observes.

Jobs reach nodes only through the provider, and every provider call is made outside our transactions:
the service records the job with its submission pending, hands it to the provider under the job's
token (providers/jobs.py: submit_token), and only after the provider confirms it forgets the pending
submission. Every round (engine/ticker.py, services/jobs_round.py) hands any submission still pending
to the provider again, with the same token, then shows the provider the cluster's active jobs and
running compute nodes and applies which jobs changed state. A stopped cluster has no running nodes,
so on the simulated cloud it runs no jobs.

What a crash leaves, and how it converges (docs/providers.md, "Jobs and users: the contract"):
- between recording the job and the provider's confirmation: the job is QUEUED with its submission
  pending; the next round submits it (a provider that had it already returns it: same token);
- between a cancel or requeue and its record: the job keeps its state until the round observes the
  scheduler's (a local job shows STOPPED or QUEUED); a retried call has the same token (the row's
  version), so a requeue is never done twice for one call.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from hpcplane.clock import Clock
from hpcplane.domain.accounts import Principal
from hpcplane.domain.errors import HpcplaneError, InvalidParams
from hpcplane.domain.resources import ClusterStatus, NodeStatus
from hpcplane.providers.base import JobsProvider
from hpcplane.providers.jobs import ACTIVE, QUEUED, STOPPED, JobSubmission, NodeSlot, job_token, submit_token
from hpcplane.services import jobs_round
from hpcplane.services.clusters_admin import owned_cluster
from hpcplane.services.clusters_read import instance_resources
from hpcplane.services.queues import node_queue
from hpcplane.services.users import running_cluster, visible_cluster
from hpcplane.store import clusters as cluster_store
from hpcplane.store import jobs as store
from hpcplane.store import users as user_store
from hpcplane.store.db import Database


@dataclass(frozen=True, slots=True)
class JobSpec:
    """SubmitJob's validated parameters."""

    cluster_id: str
    name: str
    command_line: str
    owner: str
    queue: str | None
    nodes: int
    cpus: int
    priority: int
    re_runable: bool
    stdout_path: str
    stderr_path: str
    package_path: str
    variables: str
    array_request: str
    clock_time: str = ""
    # The SDK parameters as given (None: not given), which reach the provider in the JobSubmission.
    given_name: str | None = None  # `name` is the display name, the command's first word by default
    task: int | None = None
    thread: int | None = None
    cpu: int | None = None
    mem: str | None = None
    gpu: int | None = None
    input_file_url: str | None = None
    unzip_cmd: str | None = None
    post_cmd_line: str | None = None
    job_retry_count: int | None = None
    job_retry_priority: int | None = None
    job_retry_on_exit_code: int | None = None

    def submission(self, job_id: str, queue: str, default_queue: bool) -> JobSubmission:
        return JobSubmission(
            cluster_id=self.cluster_id,
            job_id=job_id,
            command_line=self.command_line,
            runas_user=self.owner,
            queue=queue,
            default_queue=default_queue,
            name=self.given_name,
            node=self.nodes,
            task=self.task,
            thread=self.thread,
            cpu=self.cpu,
            mem=self.mem,
            gpu=self.gpu,
            clock_time=self.clock_time or None,
            priority=self.priority,
            variables=self.variables or None,
            stdout_redirect_path=self.stdout_path or None,
            stderr_redirect_path=self.stderr_path or None,
            array_request=self.array_request or None,
            re_runable=self.re_runable,
            package_path=self.package_path or None,
            input_file_url=self.input_file_url,
            unzip_cmd=self.unzip_cmd,
            post_cmd_line=self.post_cmd_line,
            job_retry_count=self.job_retry_count,
            job_retry_priority=self.job_retry_priority,
            job_retry_on_exit_code=self.job_retry_on_exit_code,
        )


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[dict[str, Any]]
    total: int


def compute_slots(conn: Connection, cluster: dict[str, Any]) -> list[NodeSlot]:
    """The running compute nodes of a running cluster, with their queues and vCPUs."""
    if cluster["status"] != ClusterStatus.RUNNING.value:
        return []
    default = user_store.default_queue(cluster["scheduler_type"])
    return [
        NodeSlot(
            n["hostname"], node_queue(n["extra"], default), max(1, instance_resources(n["instance_type"]).cpu)
        )
        for n in cluster_store.cluster_nodes(conn, cluster["id"])
        if n["role"] == "compute" and n["status"] == NodeStatus.RUNNING.value
    ]


class JobService:
    def __init__(self, db: Database, clock: Clock, provider: JobsProvider) -> None:
        self._db = db
        self._clock = clock
        self._provider = provider

    def _resolve(self, conn: Connection, who: Principal, spec: JobSpec) -> tuple[dict[str, Any], str, bool]:
        cluster = running_cluster(conn, who, spec.cluster_id)
        if spec.owner not in user_store.user_names(conn, cluster["id"]):
            raise InvalidParams("RunasUser", "is not a user of the cluster")
        default = user_store.default_queue(cluster["scheduler_type"])
        queue = spec.queue or default
        if not user_store.queue_exists(conn, cluster, queue):
            raise InvalidParams("JobQueue", "is not a queue of the cluster")
        return cluster, queue, queue == default

    def submit(self, who: Principal, spec: JobSpec) -> str:
        """Validated (the API's checks, then the provider's) before anything is recorded; recorded with
        the submission pending; handed to the provider; confirmed. A refused or failed hand-over leaves
        no job (the caller is told why), unless a round confirmed it meanwhile."""
        with self._db.write() as conn:
            _, queue, default = self._resolve(conn, who, spec)
        self._provider.check_job(spec.submission("", queue, default))
        with self._db.write() as conn:
            cluster, queue, default = self._resolve(conn, who, spec)
            seq = store.next_seq(conn, cluster["id"])
            job_id = f"{seq}.manager"
            submission = spec.submission(job_id, queue, default)
            now = self._clock.now()
            store.insert_job(
                conn,
                {
                    "cluster_id": cluster["id"],
                    "id": job_id,
                    "seq": seq,
                    "account_id": who.account.id,
                    "name": spec.name,
                    "owner": spec.owner,
                    "queue": queue,
                    "command_line": spec.command_line,
                    "nodes": spec.nodes,
                    "cpus": spec.cpus,
                    "priority": spec.priority,
                    "re_runable": spec.re_runable,
                    "state": QUEUED,
                    "stdout_path": spec.stdout_path,
                    "stderr_path": spec.stderr_path,
                    "package_path": spec.package_path,
                    "variables": spec.variables,
                    "array_request": spec.array_request,
                    "clock_time": spec.clock_time,
                    "submitted_at": now,
                    "updated_at": now,
                    "submission": submission.to_json(),
                },
            )
        try:
            self._provider.submit_job(submit_token(cluster["id"], job_id), submission)
        except HpcplaneError:
            if jobs_round.withdraw(self._db, self._clock, cluster["id"], job_id):
                # The job is gone for the caller: one the scheduler took anyway (an sbatch that answered
                # after its timeout) must not run unseen.
                jobs_round.cancel_quietly(self._provider, cluster["id"], job_id)
                raise
            return job_id  # a round handed it over meanwhile: the job exists
        jobs_round.confirm(self._db, self._provider, cluster["id"], job_id)
        return job_id

    def list_jobs(
        self,
        who: Principal,
        cluster_id: str,
        *,
        state: str,
        owner: str | None,
        rerunable: bool | None,
        page_number: int,
        page_size: int,
    ) -> JobPage:
        with self._db.read() as conn:
            visible_cluster(conn, who, cluster_id)
            rows, total = store.page(
                conn,
                cluster_id,
                state=state,
                owner=owner,
                rerunable=rerunable,
                offset=(page_number - 1) * page_size,
                limit=page_size,
            )
        return JobPage(rows, total)

    def get(self, who: Principal, cluster_id: str, job_id: str) -> dict[str, Any]:
        with self._db.read() as conn:
            visible_cluster(conn, who, cluster_id)
            found = store.get_jobs(conn, cluster_id, [job_id])
        if job_id not in found:
            raise InvalidParams("JobId", "is not a job of the cluster")
        return found[job_id]

    def create_file(self, who: Principal, cluster_id: str, owner: str, path: str, content: bytes) -> None:
        """CreateJobFile: the file is written through the provider, as the cluster user `owner`."""
        with self._db.write() as conn:
            cluster = running_cluster(conn, who, cluster_id)
            if owner not in user_store.user_names(conn, cluster["id"]):
                raise InvalidParams("RunasUser", "is not a user of the cluster")
        token = f"{cluster_id}:{owner}:file:{len(content)}:{path}"
        self._provider.write_job_file(token, cluster_id, owner, path, content)

    def log(self, who: Principal, cluster_id: str, job_id: str) -> tuple[str, str]:
        return self._provider.job_log(store.record(self.get(who, cluster_id, job_id)))

    def stop(self, who: Principal, cluster_id: str, job_ids: list[str], *, delete: bool = False) -> None:
        """StopJobs (and DeleteJobs): an active job is cancelled and ends STOPPED; a deleted job is gone.
        If the provider fails on one job, the jobs it did cancel are recorded before the error is raised."""
        with self._db.write() as conn:
            owned_cluster(conn, who, cluster_id)
            found = _known(conn, cluster_id, job_ids)
        done, failure = self._each(found, "cancel", lambda job: job["state"] in ACTIVE)
        with self._db.write() as conn:
            owned_cluster(conn, who, cluster_id)
            now = self._clock.now()
            for job_id, job in store.get_jobs(conn, cluster_id, done).items():
                values: dict[str, Any] = {"updated_at": jobs_round.later(now, job["updated_at"])}
                if job["state"] in ACTIVE and found[job_id]["state"] in ACTIVE:
                    values.update(
                        state=STOPPED, finished_at=now, comment="stopped by StopJobs", submission=None
                    )
                if delete:
                    values["deleted_at"] = now
                store.update_job(conn, cluster_id, job_id, **values)
        if failure is not None:
            raise failure

    def rerun(self, who: Principal, cluster_id: str, job_ids: list[str]) -> None:
        """RerunJobs: a re-runnable job goes back to its queue, whatever its state. If the provider fails
        on one job, the jobs it did requeue are recorded before the error is raised."""
        with self._db.write() as conn:
            owned_cluster(conn, who, cluster_id)
            found = _known(conn, cluster_id, job_ids)
            if any(not job["re_runable"] for job in found.values()):
                raise InvalidParams("Jobs", "names a job that is not re-runnable")
        done, failure = self._each(found, "requeue", lambda job: True)
        with self._db.write() as conn:
            owned_cluster(conn, who, cluster_id)
            now = self._clock.now()
            for job_id, job in store.get_jobs(conn, cluster_id, done).items():
                store.update_job(
                    conn,
                    cluster_id,
                    job_id,
                    state=QUEUED,
                    node_list="",
                    started_at=None,
                    ends_at=None,
                    finished_at=None,
                    comment="requeued by RerunJobs",
                    updated_at=jobs_round.later(now, job["updated_at"]),
                )
        if failure is not None:
            raise failure

    def _each(
        self, found: dict[str, dict[str, Any]], op: str, acts: Callable[[dict[str, Any]], bool]
    ) -> tuple[list[str], HpcplaneError | None]:
        """`op` (cancel or requeue) through the provider for each job, in order, until one fails: the
        jobs done (those it need not act on included) and the failure, if any."""
        done: list[str] = []
        for job_id, job in found.items():
            if acts(job):
                token = job_token(job["cluster_id"], job_id, op, job["updated_at"])
                call = self._provider.cancel_job if op == "cancel" else self._provider.requeue_job
                try:
                    call(token, job["cluster_id"], job_id)
                except HpcplaneError as error:
                    return done, error
            done.append(job_id)
        return done, None

    def advance(self) -> int:
        """One scheduling round over every cluster with active jobs; returns how many jobs changed."""
        return jobs_round.advance(self._db, self._clock, self._provider, compute_slots)


def _known(conn: Connection, cluster_id: str, job_ids: list[str]) -> dict[str, dict[str, Any]]:
    found = store.get_jobs(conn, cluster_id, job_ids)
    if len(found) != len(job_ids):
        raise InvalidParams("Jobs", "names a job that is not in the cluster")
    return found


def job_info(job: dict[str, Any]) -> str:
    """DescribeJob's Message.JobInfo: the job as a JSON string."""
    fields = ("id", "name", "owner", "queue", "state", "nodes", "cpus", "priority", "node_list", "comment")
    return json.dumps({key: job[key] for key in fields}, separators=(",", ":"))
