"""Jobs in the store: our record of each job, updated with what the provider observes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from hpcplane.providers.jobs import ACTIVE, ENDED, JobRecord
from hpcplane.store.paging import counted_page
from hpcplane.store.tables import clusters, jobs


def next_seq(conn: Connection, cluster_id: str) -> int:
    """The next job number of the cluster (the caller holds the cluster's lock)."""
    last = conn.execute(select(func.max(jobs.c.seq)).where(jobs.c.cluster_id == cluster_id)).scalar_one()
    return int(last or 0) + 1


def insert_job(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(insert(jobs).values(**values))


def update_job(conn: Connection, cluster_id: str, job_id: str, **values: Any) -> None:
    conn.execute(update(jobs).where(jobs.c.cluster_id == cluster_id, jobs.c.id == job_id).values(**values))


def get_jobs(conn: Connection, cluster_id: str, job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    rows = conn.execute(
        select(jobs).where(
            jobs.c.cluster_id == cluster_id, jobs.c.id.in_(job_ids), jobs.c.deleted_at.is_(None)
        )
    ).mappings()
    return {row["id"]: dict(row) for row in rows}


def active_jobs(conn: Connection, cluster_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(jobs)
        .where(jobs.c.cluster_id == cluster_id, jobs.c.state.in_(ACTIVE), jobs.c.deleted_at.is_(None))
        .order_by(jobs.c.seq)
    ).mappings()
    return [dict(row) for row in rows]


def clusters_with_active_jobs(conn: Connection) -> list[str]:
    rows = conn.execute(
        select(jobs.c.cluster_id).where(jobs.c.state.in_(ACTIVE), jobs.c.deleted_at.is_(None)).distinct()
    )
    return [row.cluster_id for row in rows]


def page(
    conn: Connection,
    cluster_id: str,
    *,
    state: str,
    owner: str | None,
    rerunable: bool | None,
    offset: int,
    limit: int,
) -> tuple[list[dict[str, Any]], int]:
    """ListJobs: all | finished | notfinish, newest first."""
    where = [jobs.c.cluster_id == cluster_id, jobs.c.deleted_at.is_(None)]
    if state == "finished":
        where.append(jobs.c.state.in_(ENDED))
    elif state == "notfinish":
        where.append(jobs.c.state.in_(ACTIVE))
    if owner is not None:
        where.append(jobs.c.owner == owner)
    if rerunable is not None:
        where.append(jobs.c.re_runable.is_(rerunable))
    query = select(jobs).order_by(jobs.c.seq.desc())
    rows, total = counted_page(conn, jobs, where, query, offset=offset, limit=limit)
    return [dict(row) for row in rows], total


def record(row: Mapping[str, Any]) -> JobRecord:
    """The provider's view of a stored job."""
    return JobRecord(
        cluster_id=row["cluster_id"],
        job_id=row["id"],
        name=row["name"],
        owner=row["owner"],
        queue=row["queue"],
        command_line=row["command_line"],
        nodes=row["nodes"],
        cpus=row["cpus"],
        priority=row["priority"],
        re_runable=bool(row["re_runable"]),
        state=row["state"],
        node_list=tuple(h for h in str(row["node_list"]).split(",") if h),
        started_at=row["started_at"],
        ends_at=row["ends_at"],
        finished_at=row["finished_at"],
        seconds=clock_seconds(str(row["clock_time"])),
    )


def clock_seconds(text: str) -> float | None:
    """ClockTime ([[hh:]mm:]ss) in seconds; None when not given."""
    if not text:
        return None
    total = 0
    for part in text.split(":"):
        total = total * 60 + int(part)
    return float(total)


def update_job_if(conn: Connection, cluster_id: str, job_id: str, version: Any, **values: Any) -> bool:
    """Update a job only if its row is still the version read (its updated_at): a write made from what a
    provider said outside the transaction never overwrites a change made meanwhile."""
    done = conn.execute(
        update(jobs)
        .where(jobs.c.cluster_id == cluster_id, jobs.c.id == job_id, jobs.c.updated_at == version)
        .values(**values)
    )
    return bool(done.rowcount)


def confirm_submission(conn: Connection, cluster_id: str, job_id: str) -> bool:
    """The provider has the job: forget its submission. False when it was confirmed already."""
    done = conn.execute(
        update(jobs)
        .where(jobs.c.cluster_id == cluster_id, jobs.c.id == job_id, jobs.c.submission.is_not(None))
        .values(submission=None)
    )
    return bool(done.rowcount)


def round_cluster(conn: Connection, cluster_id: str, *, lock: bool) -> dict[str, Any] | None:
    """The cluster a scheduling round works on; `lock` serialises the rounds' writes for it."""
    query = select(clusters).where(clusters.c.id == cluster_id)
    row = conn.execute(query.with_for_update() if lock else query).mappings().first()
    return dict(row) if row is not None else None
