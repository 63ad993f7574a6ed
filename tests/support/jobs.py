"""Jobs written straight into the store for the jobs tests: what a crash leaves behind."""

from __future__ import annotations

from datetime import datetime

from hpcplane.api.actions.jobs import read_submit
from hpcplane.api.params import Params
from hpcplane.providers.jobs import JobSubmission
from hpcplane.store import jobs as job_store
from hpcplane.store.db import Database


def record_pending(
    db: Database, cluster_id: str, account_id: str, command_line: str, now: datetime
) -> JobSubmission:
    """A job as a crash between its record and the provider's confirmation leaves it: QUEUED, its
    submission kept (alice.hpc's, in workq, the default queue); returns that submission."""
    params = {"ClusterId": cluster_id, "RunasUser": "alice.hpc", "CommandLine": command_line}
    spec = read_submit(Params(params))
    with db.write() as conn:
        seq = job_store.next_seq(conn, cluster_id)
        submission = spec.submission(f"{seq}.manager", "workq", True)
        job_store.insert_job(
            conn,
            {
                "cluster_id": cluster_id,
                "id": submission.job_id,
                "seq": seq,
                "account_id": account_id,
                "name": command_line,
                "owner": "alice.hpc",
                "queue": "workq",
                "command_line": command_line,
                "nodes": 1,
                "cpus": 1,
                "state": "QUEUED",
                "submitted_at": now,
                "updated_at": now,
                "submission": submission.to_json(),
            },
        )
    return submission
