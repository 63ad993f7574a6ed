"""Users and jobs of a local cluster: machine accounts, sbatch / scancel / requeue, and what Slurm says."""

from __future__ import annotations

import os
import pwd
from pathlib import PurePosixPath

from hpcplane.domain.errors import InvalidParams, ProviderFailed
from hpcplane.providers.jobs import JobSubmission
from hpcplane.providers.local import commands as cmd
from hpcplane.providers.local import slurmstate
from hpcplane.providers.local.commands import last_line
from hpcplane.providers.local.core import Core
from hpcplane.providers.local.observe import JobOutput, read_output
from hpcplane.providers.local.sbatch import build_sbatch
from hpcplane.providers.local.slurmstate import SlurmJob


class Workload(Core):
    """AddUsers, SubmitJob, StopJobs, RerunJobs, ListJobs and GetJobLog on the machine."""

    def ensure_user(self, token: str, cluster_id: str, name: str) -> str:
        """An unprivileged machine account for cluster user `name`; returns the account's name."""
        with self.store.locked(cluster_id):
            record = self.store.load(cluster_id)

            def work() -> str:
                account = record.names.user(name)
                if name not in record.users and account_exists(account):
                    # Not ours (a retry after a crash finds it recorded): never adopt someone's account.
                    raise ProviderFailed(what=f"create the account {account}", reason="it exists already")
                record.users[name] = account
                self.store.save(record)
                home = self.store.paths(cluster_id).user_home(account)
                if not account_exists(account):
                    self.runner.run(cmd.useradd(account, home))
                entry = pwd.getpwnam(account)
                home.mkdir(parents=True, exist_ok=True)
                os.chown(home, entry.pw_uid, entry.pw_gid)
                home.chmod(0o750)
                return account

            return self._once(record, token, "ensure_user", work)

    def submit_job(self, token: str, job: JobSubmission) -> str:
        """sbatch as the RunasUser's account (never root; `job.runas_user` is the name ensure_user
        took); the token is the job's comment, so a retry after a crash between sbatch and the record
        finds the job instead of submitting it twice."""
        cluster_id = job.cluster_id
        with self.store.locked(cluster_id):
            record = self.store.load(cluster_id)
            account = record.users.get(job.runas_user)
            if account is None:
                raise InvalidParams("RunasUser", f"{job.runas_user!r} is not a user of {cluster_id}")
            home = self.store.paths(cluster_id).user_home(account)
            sbatch = build_sbatch(job, PurePosixPath(home), token)

            def work() -> str:
                machine = self._machine(record)
                for found in machine.slurm_jobs():
                    if found.comment == f"hpcplane:{token}":
                        return found.array_job_id or found.job_id
                argv = ["sbatch", f"--uid={account}", f"--gid={account}", *sbatch.options]
                env = {"HOME": str(home), "USER": account, "LOGNAME": account, **sbatch.environment}
                done = machine.client(argv, env=env)
                return done.stdout.strip().split(";", 1)[0]

            return self._once(record, token, "submit_job", work)

    def cancel_job(self, token: str, cluster_id: str, job_id: str) -> None:
        """scancel; a job already ended is cancelled enough, one Slurm does not know is InvalidParams."""
        argv = ["scancel", _job_id(job_id)]
        self._job_command(token, cluster_id, "cancel_job", argv, "already completing or completed")

    def requeue_job(self, token: str, cluster_id: str, job_id: str) -> None:
        """scontrol requeue, once per token (a second requeue would restart the job again)."""
        self._job_command(token, cluster_id, "requeue_job", ["scontrol", "requeue", _job_id(job_id)], None)

    def _job_command(
        self, token: str, cluster_id: str, op: str, argv: list[str], tolerated: str | None
    ) -> None:
        with self.store.locked(cluster_id):
            record = self.store.load(cluster_id)

            def work() -> None:
                machine = self._machine(record)
                if not machine.slurm_jobs(argv[-1]):  # scancel of an unknown job says nothing, exit 0
                    raise InvalidParams("JobId", f"{argv[-1]} is not a job of {cluster_id}")
                done = machine.client(argv, check=False)
                output = done.stderr + done.stdout
                if done.returncode != 0 and (tolerated is None or tolerated not in output):
                    raise ProviderFailed(what=f"{argv[0]} job {argv[-1]}", reason=last_line(done))

            self._once(record, token, op, work)

    def observe_jobs(self, cluster_id: str, job_id: str | None = None) -> list[SlurmJob]:
        machine = self._machine(self.store.load(cluster_id))
        return machine.slurm_jobs(_job_id(job_id) if job_id else None)

    def slurm_jobs_answered(self, cluster_id: str) -> list[SlurmJob] | None:
        """Every job slurmctld knows, or None when there is no answer to take (no record, the cluster
        stopped, slurmctld down): never an empty list that would say every job is gone."""
        if not self.store.exists(cluster_id):
            return None
        machine = self._machine(self.store.load(cluster_id))
        done = machine.scontrol("show", "job", "-o", check=False)  # fails when slurmctld does not answer
        if done.returncode != 0:
            return None
        return slurmstate.parse_jobs(done.stdout)

    def job_output(self, cluster_id: str, job_id: str) -> JobOutput:
        """The job's real stdout and stderr (the first task's, for an array)."""
        jobs = self.observe_jobs(cluster_id, job_id)
        if not jobs:
            raise InvalidParams("JobId", f"{job_id} is not a job of {cluster_id}")
        return read_output(jobs[0], self.store.paths(cluster_id).root)


def _job_id(job_id: str) -> str:
    if not job_id.replace("_", "").isdigit():
        raise InvalidParams("JobId", f"{job_id!r} is not a Slurm job id")
    return job_id


def account_exists(account: str) -> bool:
    try:
        pwd.getpwnam(account)
    except KeyError:
        return False
    return True
