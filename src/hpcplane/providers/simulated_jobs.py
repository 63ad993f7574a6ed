"""The simulated cloud's scheduler: jobs wait for enough free running nodes of their queue, run for their
ClockTime (or the configured simulated duration), then finish (or fail, at an injected rate decided by
the seed)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from hpcplane.providers.jobs import FAILED, FINISHED, QUEUED, RUNNING, JobRecord, JobUpdate, NodeSlot


def observe(
    jobs: list[JobRecord],
    nodes: list[NodeSlot],
    now: datetime,
    *,
    seconds: float,
    fail_rate: float,
    seed: int,
) -> list[JobUpdate]:
    up = {node.hostname for node in nodes}
    busy: set[str] = set()
    updates: list[JobUpdate] = []
    for job in (j for j in jobs if j.state == RUNNING):
        if any(host not in up for host in job.node_list):
            # A node went away (stopped, deleted, failed): a re-runnable job goes back to its queue.
            if job.re_runable:
                updates.append(JobUpdate(job.job_id, QUEUED, comment="requeued: a node left the cluster"))
            else:
                updates.append(
                    JobUpdate(
                        job.job_id,
                        FAILED,
                        job.node_list,
                        job.started_at,
                        job.ends_at,
                        now,
                        comment="a node of the job left the cluster",
                    )
                )
        elif job.ends_at is not None and job.ends_at <= now:
            fails = (
                fail_rate > 0 and random.Random(f"{seed}:{job.cluster_id}:{job.job_id}").random() < fail_rate
            )
            state, comment = (FAILED, "simulated failure (injected)") if fails else (FINISHED, "")
            updates.append(
                JobUpdate(job.job_id, state, job.node_list, job.started_at, job.ends_at, job.ends_at, comment)
            )
        else:
            busy.update(job.node_list)
    waiting = sorted((j for j in jobs if j.state == QUEUED), key=lambda j: -j.priority)
    for job in waiting:
        free = [
            n.hostname
            for n in nodes
            if n.hostname not in busy and n.queue == job.queue and n.cpus >= job.cpus
        ]
        if len(free) < job.nodes:
            continue
        chosen = tuple(free[: job.nodes])
        busy.update(chosen)
        duration = job.seconds if job.seconds is not None else seconds
        updates.append(JobUpdate(job.job_id, RUNNING, chosen, now, now + timedelta(seconds=duration)))
    return updates


def log(job: JobRecord) -> tuple[str, str]:
    hosts = ",".join(job.node_list) or "(no node yet)"
    stdout = (
        f"[hpcplane simulated cloud] This log was simulated: nothing was executed.\n"
        f"job {job.job_id} ({job.name}) of {job.owner} in queue {job.queue}: {job.state}\n"
        f"nodes: {hosts}\n"
        f"command: {job.command_line}\n"
    )
    stderr = "[hpcplane simulated cloud] simulated failure (injected)\n" if job.state == FAILED else ""
    return stdout, stderr
