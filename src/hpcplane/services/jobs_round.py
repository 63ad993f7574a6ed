"""The jobs' scheduling round, and the two ends of a submission: its confirmation and its withdrawal.

Each provider call is made between transactions. What the round writes from the provider's answer is
written only where the job's row is still the version that was shown to the provider (its updated_at),
so a StopJobs or RerunJobs recorded meanwhile is never overwritten by an older observation.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection

from hpcplane.clock import Clock
from hpcplane.domain.errors import DbError, HpcplaneError
from hpcplane.providers.base import JobsProvider
from hpcplane.providers.jobs import ACTIVE, FAILED, STOPPED, JobSubmission, NodeSlot, submit_token
from hpcplane.store import jobs as store
from hpcplane.store.db import Database

log = structlog.get_logger("hpcplane.jobs")
TICK = timedelta(microseconds=1)


def later(now: datetime, version: datetime) -> datetime:
    """A job's next version: its updated_at always moves forward, even on a clock that stands still or
    steps back, so a write conditioned on the version read never passes over a change made since."""
    return max(now, version + TICK)


Slots = Callable[[Connection, dict[str, Any]], list[NodeSlot]]


def confirm(db: Database, provider: JobsProvider, cluster_id: str, job_id: str) -> None:
    """The provider has the job. One stopped or deleted while it was being handed over must not run."""
    with db.write() as conn:
        store.confirm_submission(conn, cluster_id, job_id)
        job = store.get_jobs(conn, cluster_id, [job_id]).get(job_id)
    if job is None or job["state"] not in ACTIVE:
        provider.cancel_job(f"{cluster_id}/{job_id}/cancel/late", cluster_id, job_id)


def cancel_quietly(provider: JobsProvider, cluster_id: str, job_id: str) -> None:
    """Make sure a withdrawn job does not run; a failure is logged (the caller's error is the news)."""
    try:
        provider.cancel_job(f"{cluster_id}/{job_id}/cancel/withdrawn", cluster_id, job_id)
    except HpcplaneError as error:
        log.warning("withdrawn job not cancelled", cluster_id=cluster_id, job_id=job_id, error=error.message)


def withdraw(db: Database, clock: Clock, cluster_id: str, job_id: str) -> bool:
    """The hand-over failed and the caller is told so: the job never was. False when a round handed
    it over meanwhile (its submission confirmed), so it exists after all."""
    with db.write() as conn:
        job = store.get_jobs(conn, cluster_id, [job_id]).get(job_id)
        if job is not None and job["submission"] is None and job["state"] != STOPPED:
            return False
        now = clock.now()
        version = later(now, job["updated_at"]) if job is not None else now
        store.update_job(
            conn, cluster_id, job_id, state=FAILED, submission=None, deleted_at=now, updated_at=version
        )
    return True


def _hand_over(db: Database, clock: Clock, provider: JobsProvider, job: dict[str, Any]) -> bool:
    """A submission still pending (its caller died, or is still waiting): submitted again under the
    same token, so a provider that has it already answers without submitting it twice. True if the
    job failed (the provider refused it: it ends FAILED with the reason)."""
    cluster_id, job_id = job["cluster_id"], job["id"]
    submission = JobSubmission.from_json(job["submission"])
    try:
        provider.submit_job(submit_token(cluster_id, job_id), submission)
    except HpcplaneError as error:
        now = clock.now()
        with db.write() as conn:
            store.update_job_if(
                conn,
                cluster_id,
                job_id,
                job["updated_at"],
                state=FAILED,
                submission=None,
                finished_at=now,
                updated_at=later(now, job["updated_at"]),
                comment=f"the scheduler refused the job: {error.message}"[:256],
            )
        return True
    confirm(db, provider, cluster_id, job_id)
    return False


def _round(db: Database, clock: Clock, provider: JobsProvider, slots: Slots, cluster_id: str) -> int:
    with db.read() as conn:
        cluster = store.round_cluster(conn, cluster_id, lock=False)
        if cluster is None:
            return 0
        active = store.active_jobs(conn, cluster_id)
        nodes = slots(conn, cluster)
    failed = {job["id"] for job in active if job["submission"] and _hand_over(db, clock, provider, job)}
    shown = [job for job in active if job["id"] not in failed]
    updates = provider.observe_jobs([store.record(job) for job in shown], nodes, clock.now())
    versions = {job["id"]: job["updated_at"] for job in shown}
    changed = len(failed)
    with db.write() as conn:
        store.round_cluster(conn, cluster_id, lock=True)
        for update in updates:
            changed += store.update_job_if(
                conn,
                cluster_id,
                update.job_id,
                versions[update.job_id],
                state=update.state,
                node_list=",".join(update.node_list),
                started_at=update.started_at,
                ends_at=update.ends_at,
                finished_at=update.finished_at,
                comment=update.comment,
                updated_at=later(clock.now(), versions[update.job_id]),
            )
    return changed


def advance(db: Database, clock: Clock, provider: JobsProvider, slots: Slots) -> int:
    """One scheduling round over every cluster with active jobs; returns how many jobs changed. A
    cluster whose provider fails is logged and tried next round; the others go on."""
    with db.read() as conn:
        cluster_ids = store.clusters_with_active_jobs(conn)
    changed = 0
    for cluster_id in cluster_ids:
        try:
            changed += _round(db, clock, provider, slots, cluster_id)
        except DbError:
            raise  # the store itself: the ticker logs it and tries the whole round again
        except HpcplaneError as error:
            log.warning("jobs round failed", cluster_id=cluster_id, error=error.message)
    return changed
