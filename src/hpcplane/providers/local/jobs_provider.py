"""Jobs and users of the Provider contract on real local Slurm clusters (a mixin over LocalClusters).

`LocalJobs` needs only `self.clusters`, a `LocalClusters`: the provider that inherits it sets that
attribute (or calls `LocalJobs.__init__`). Our job `<seq>.manager` is found in Slurm through its submit
token (providers/jobs.py: submit_token): the token is the Slurm job's comment and, once sbatch answered,
the key of the cluster record's memo holding the Slurm job id, so no column of ours holds Slurm's id.

API user names (6-30 letters, digits and `.`) become machine-account names (`local_user_name`): a name
that is already lowercase letters and digits, at most 23 characters, is kept; any other is lowercased,
its dots made `_`, cut to 16 characters and given `-` and six hex digits of its SHA-256. API names have
no `-`, so a kept name and a changed one never meet. The account is `<prefix><tag>-<that name>`.
"""

from __future__ import annotations

import hashlib
import pwd
import subprocess
from dataclasses import replace
from datetime import datetime
from pathlib import PurePosixPath

from hpcplane.domain.errors import InvalidParams, ProviderFailed
from hpcplane.providers.jobs import (
    FAILED,
    FINISHED,
    QUEUED,
    RUNNING,
    STOPPED,
    JobRecord,
    JobSubmission,
    JobUpdate,
    NodeSlot,
    submit_token,
)
from hpcplane.providers.local.commands import BASE_ENV
from hpcplane.providers.local.facade import LocalClusters
from hpcplane.providers.local.records import USER_NAME, ClusterRecord
from hpcplane.providers.local.sbatch import build_sbatch, output_path
from hpcplane.providers.local.slurmstate import SlurmJob

MAX_JOB_FILE = 64 * 1024
FORGOTTEN = "Slurm no longer knows it (it ended more than MinJobAge ago)"


def local_user_name(name: str) -> str:
    """The machine-side name of API user `name` (see the module's docstring); injective."""
    if USER_NAME.match(name) and "_" not in name and "-" not in name:
        return name
    cleaned = name.lower().replace(".", "_")[:16]
    return f"{cleaned}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"


def local_submission(job: JobSubmission) -> JobSubmission:
    """The submission as the facade takes it, its RunasUser the machine-side name; a queue other than
    the default is refused (sbatch.py refuses, by name, whatever else a local cluster cannot do)."""
    if not job.default_queue:
        raise InvalidParams("JobQueue", "a local cluster runs every job in its one Slurm partition")
    return replace(job, runas_user=local_user_name(job.runas_user))


def job_state(tasks: list[SlurmJob]) -> tuple[str, str] | None:
    """Our state of a Slurm job (every task of an array) and a comment saying why, from Slurm's; None
    while it is only COMPLETING (ending, or being requeued: what comes next says which)."""
    if any(task.is_running and task.state != "COMPLETING" for task in tasks):
        return RUNNING, ""
    if any(task.state == "COMPLETING" for task in tasks):
        return None
    if any(task.is_pending or not task.is_finished for task in tasks):
        reason = next((t.reason for t in tasks if t.reason not in ("", "None")), "")
        return QUEUED, f"pending: {reason}" if reason else ""
    if all(task.state == "COMPLETED" for task in tasks):
        return FINISHED, ""
    if any(task.state == "CANCELLED" for task in tasks):
        return STOPPED, "cancelled in Slurm"
    ended = next(task for task in tasks if task.state != "COMPLETED")
    return FAILED, f"{ended.state} (exit code {ended.exit_code})"


class LocalJobs:
    """SubmitJob, StopJobs, RerunJobs, ListJobs' observation, GetJobLog, CreateJobFile, AddUsers."""

    clusters: LocalClusters

    def __init__(self, clusters: LocalClusters) -> None:
        self.clusters = clusters

    # --- helpers ---------------------------------------------------------------------------------

    def _record(self, cluster_id: str) -> ClusterRecord:
        return self.clusters.store.load(cluster_id)

    def _home(self, record: ClusterRecord, api_name: str) -> PurePosixPath:
        account = record.names.user(local_user_name(api_name))
        return PurePosixPath(self.clusters.store.paths(record.cluster_id).user_home(account))

    def _account(self, record: ClusterRecord, api_name: str) -> str:
        account = record.users.get(local_user_name(api_name))
        if account is None:
            raise InvalidParams("RunasUser", "has no account on the local cluster")
        return account

    def slurm_id(self, cluster_id: str, job_id: str) -> str | None:
        """Slurm's id of our job: the submit token's memo once sbatch has answered, else the Slurm job
        whose comment is the token (an sbatch that answered too late to be recorded), else None."""
        token = submit_token(cluster_id, job_id)
        done = self._record(cluster_id).tokens.get(token)
        if done is not None and done.get("op") == "submit_job":
            return str(done["result"])
        answered = self.clusters.slurm_jobs_answered(cluster_id) or []
        found = [job for job in answered if job.comment == f"hpcplane:{token}"]
        return (found[0].array_job_id or found[0].job_id) if found else None

    # --- the contract --------------------------------------------------------------------------

    def check_job(self, job: JobSubmission) -> None:
        record = self._record(job.cluster_id)
        build_sbatch(local_submission(job), self._home(record, job.runas_user), "check")

    def submit_job(self, token: str, job: JobSubmission) -> str:
        """sbatch as the user's account; the directories of its output files and working directory are
        made first, as the user (Slurm fails a job whose output it cannot open: JobLaunchFailure)."""
        self.check_job(job)
        record = self._record(job.cluster_id)
        account, home = self._account(record, job.runas_user), self._home(record, job.runas_user)
        directories = [
            str(PurePosixPath(output_path(name, path, home)).parent)
            for name, path in (
                ("StdoutRedirectPath", job.stdout_redirect_path),
                ("StderrRedirectPath", job.stderr_redirect_path),
            )
            if path
        ]
        if job.package_path:
            directories.append(output_path("PackagePath", job.package_path, home))
        if directories:
            what = f"make the job's directories as {job.runas_user}"
            _as_user(account, home, 'mkdir -p -- "$@"', directories, b"", what)
        return self.clusters.submit_job(token, local_submission(job))

    def cancel_job(self, token: str, cluster_id: str, job_id: str) -> None:
        """scancel; nothing to do for a job sbatch never took, or one Slurm has forgotten (it ended)."""
        slurm_id = self.slurm_id(cluster_id, job_id)
        if slurm_id is None or not self.clusters.observe_jobs(cluster_id, slurm_id):
            return
        try:
            self.clusters.cancel_job(token, cluster_id, slurm_id)
        except InvalidParams:  # ended and forgotten between the two looks
            return

    def requeue_job(self, token: str, cluster_id: str, job_id: str) -> None:
        """scontrol requeue of a started or ended job; one still pending (or not yet taken) is queued."""
        slurm_id = self.slurm_id(cluster_id, job_id)
        if slurm_id is None:
            return
        tasks = self.clusters.observe_jobs(cluster_id, slurm_id)
        if not tasks:
            raise ProviderFailed(what=f"requeue job {job_id}", reason=FORGOTTEN)
        if all(task.is_pending for task in tasks):
            return
        self.clusters.requeue_job(token, cluster_id, slurm_id)

    def observe_jobs(self, jobs: list[JobRecord], nodes: list[NodeSlot], now: datetime) -> list[JobUpdate]:
        """Slurm's state and NodeList of each job (Slurm schedules: `nodes` is not needed here). Nothing
        changes while slurmctld does not answer (the cluster stopped, or deleted): jobs wait, as on the
        simulated cloud a stopped cluster's jobs do."""
        if not jobs:
            return []
        cluster_id = jobs[0].cluster_id
        answered = self.clusters.slurm_jobs_answered(cluster_id)
        if answered is None:
            return []
        record = self._record(cluster_id)
        by_id: dict[str, list[SlurmJob]] = {}
        for task in answered:
            by_id.setdefault(task.array_job_id or task.job_id, []).append(task)
        updates: list[JobUpdate] = []
        for job in jobs:
            done = record.tokens.get(submit_token(cluster_id, job.job_id))
            if done is None:
                continue  # not taken by sbatch yet: the round hands it over first
            tasks = by_id.get(str(done["result"]))
            if not tasks:
                state, comment, hosts = FAILED, "Slurm no longer knows the job", job.node_list
            else:
                seen = job_state(tasks)
                if seen is None:
                    continue
                state, comment = seen
                hosts = tuple(dict.fromkeys(h for task in tasks for h in task.node_list))
            if state == job.state and hosts == job.node_list:
                continue
            started = job.started_at if job.state == RUNNING else None
            if state == RUNNING:
                updates.append(JobUpdate(job.job_id, state, hosts, started or now, None, None, comment))
            elif state == QUEUED:
                updates.append(JobUpdate(job.job_id, state, (), None, None, None, comment))
            else:
                updates.append(JobUpdate(job.job_id, state, hosts, started, None, now, comment))
        return updates

    def job_log(self, job: JobRecord) -> tuple[str, str]:
        """The job's real stdout and stderr, read from its files in the cluster's directory."""
        slurm_id = self.slurm_id(job.cluster_id, job.job_id)
        if slurm_id is None:
            return "", ""
        try:
            output = self.clusters.job_output(job.cluster_id, slurm_id)
        except InvalidParams:
            raise ProviderFailed(what=f"read the log of job {job.job_id}", reason=FORGOTTEN) from None
        return output.stdout, output.stderr

    def write_job_file(self, token: str, cluster_id: str, owner: str, path: str, content: bytes) -> None:
        """The file written by a process running as the user's account (never root), inside its home:
        the kernel, not a check of ours, keeps it from writing anywhere the account may not."""
        record = self._record(cluster_id)
        account = self._account(record, owner)
        home = self._home(record, owner)
        target = output_path("TargetFile", path, home)
        if len(content) > MAX_JOB_FILE:
            raise InvalidParams("Content", f"at most {MAX_JOB_FILE} bytes")
        script = 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1"'
        _as_user(account, home, script, [target], content, f"write {path} as {owner}")

    def ensure_user(self, token: str, cluster_id: str, name: str) -> None:
        self.clusters.ensure_user(token, cluster_id, local_user_name(name))


def _as_user(account: str, home: PurePosixPath, script: str, args: list[str], data: bytes, what: str) -> None:
    """A fixed shell script run as the account (its uid, its group only), paths passed as arguments."""
    try:
        entry = pwd.getpwnam(account)
    except KeyError:
        raise ProviderFailed(what=what, reason=f"the account {account} does not exist") from None
    done = subprocess.run(  # noqa: S603 - fixed argv; the paths are arguments, never part of the script
        ["/bin/sh", "-c", script, "sh", *args],
        input=data,
        capture_output=True,
        env={**BASE_ENV, "HOME": str(home)},
        user=entry.pw_uid,
        group=entry.pw_gid,
        extra_groups=[],
        cwd=str(home),
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        reason = lines[-1] if lines else f"exit status {done.returncode}"
        raise ProviderFailed(what=what, reason=reason[:300])
