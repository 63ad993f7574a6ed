"""Jobs: SubmitJob and the calls that read and steer them; `advance` applies what the provider observes.

Jobs reach nodes only through the provider: the service records a job and hands it over; every round
(engine/ticker.py) the provider is shown the cluster's active jobs and running compute nodes and says
which jobs changed state. A stopped cluster has no running nodes, so it runs no jobs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from hpcplane.clock import Clock
from hpcplane.domain.accounts import Principal
from hpcplane.domain.errors import InvalidParams
from hpcplane.domain.resources import ClusterStatus, NodeStatus
from hpcplane.providers.base import Provider
from hpcplane.providers.jobs import ACTIVE, QUEUED, STOPPED, NodeSlot
from hpcplane.services.clusters_admin import owned_cluster
from hpcplane.services.clusters_read import instance_resources
from hpcplane.services.queues import node_queue
from hpcplane.services.users import running_cluster, visible_cluster
from hpcplane.store import clusters as cluster_store
from hpcplane.store import jobs as store
from hpcplane.store import users as user_store
from hpcplane.store.db import Database
from hpcplane.store.tables import clusters


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
    def __init__(self, db: Database, clock: Clock, provider: Provider) -> None:
        self._db = db
        self._clock = clock
        self._provider = provider

    def submit(self, who: Principal, spec: JobSpec) -> str:
        with self._db.write() as conn:
            cluster = running_cluster(conn, who, spec.cluster_id)
            if spec.owner not in user_store.user_names(conn, cluster["id"]):
                raise InvalidParams("RunasUser", "is not a user of the cluster")
            queue = spec.queue or user_store.default_queue(cluster["scheduler_type"])
            if not user_store.queue_exists(conn, cluster, queue):
                raise InvalidParams("JobQueue", "is not a queue of the cluster")
            seq = store.next_seq(conn, cluster["id"])
            job_id = f"{seq}.manager"
            now = self._clock.now()
            values = {
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
            }
            store.insert_job(conn, values)
            self._provider.submit_job(
                conn,
                store.record(
                    {**values, "node_list": "", "started_at": None, "ends_at": None, "finished_at": None}
                ),
            )
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
            self._provider.write_job_file(conn, cluster["id"], owner, path, content)

    def log(self, who: Principal, cluster_id: str, job_id: str) -> tuple[str, str]:
        return self._provider.job_log(store.record(self.get(who, cluster_id, job_id)))

    def stop(self, who: Principal, cluster_id: str, job_ids: list[str], *, delete: bool = False) -> None:
        """StopJobs (and DeleteJobs): an active job is cancelled and ends STOPPED; a deleted job is gone."""
        with self._db.write() as conn:
            owned_cluster(conn, who, cluster_id)
            found = _known(conn, cluster_id, job_ids)
            now = self._clock.now()
            for job_id, job in found.items():
                values: dict[str, Any] = {"updated_at": now}
                if job["state"] in ACTIVE:
                    self._provider.cancel_job(conn, cluster_id, job_id)
                    values.update(state=STOPPED, finished_at=now, comment="stopped by StopJobs")
                if delete:
                    values["deleted_at"] = now
                store.update_job(conn, cluster_id, job_id, **values)

    def rerun(self, who: Principal, cluster_id: str, job_ids: list[str]) -> None:
        """RerunJobs: a re-runnable job goes back to its queue, whatever its state."""
        with self._db.write() as conn:
            owned_cluster(conn, who, cluster_id)
            found = _known(conn, cluster_id, job_ids)
            if any(not job["re_runable"] for job in found.values()):
                raise InvalidParams("Jobs", "names a job that is not re-runnable")
            now = self._clock.now()
            for job_id in found:
                self._provider.requeue_job(conn, cluster_id, job_id)
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
                    updated_at=now,
                )

    def advance(self) -> int:
        """One scheduling round over every cluster with active jobs; returns how many jobs changed."""
        with self._db.read() as conn:
            cluster_ids = store.clusters_with_active_jobs(conn)
        changed = 0
        for cluster_id in cluster_ids:
            with self._db.write() as conn:
                cluster = (
                    conn.execute(select(clusters).where(clusters.c.id == cluster_id).with_for_update())
                    .mappings()
                    .first()
                )
                if cluster is None:
                    continue
                active = store.active_jobs(conn, cluster_id)
                updates = self._provider.observe_jobs(
                    [store.record(row) for row in active],
                    compute_slots(conn, dict(cluster)),
                    self._clock.now(),
                )
                for update in updates:
                    store.update_job(
                        conn,
                        cluster_id,
                        update.job_id,
                        state=update.state,
                        node_list=",".join(update.node_list),
                        started_at=update.started_at,
                        ends_at=update.ends_at,
                        finished_at=update.finished_at,
                        comment=update.comment,
                        updated_at=self._clock.now(),
                    )
                changed += len(updates)
        return changed


def _known(conn: Connection, cluster_id: str, job_ids: list[str]) -> dict[str, dict[str, Any]]:
    found = store.get_jobs(conn, cluster_id, job_ids)
    if len(found) != len(job_ids):
        raise InvalidParams("Jobs", "names a job that is not in the cluster")
    return found


def job_info(job: dict[str, Any]) -> str:
    """DescribeJob's Message.JobInfo: the job as a JSON string."""
    fields = ("id", "name", "owner", "queue", "state", "nodes", "cpus", "priority", "node_list", "comment")
    return json.dumps({key: job[key] for key in fields}, separators=(",", ":"))
