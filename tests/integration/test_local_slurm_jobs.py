"""Jobs and users through JobService and UserService on a real store, with LocalJobs on a real Slurm
cluster: AddUsers makes unprivileged accounts, a 2-node `srun hostname` logs both compute nodes' names,
StopJobs scancels, RerunJobs requeues, CreateJobFile writes as the user, jobs never run as root, and a
submission whose caller died is handed over by the round exactly once.

One cluster (compute0, compute1) for the module; its store row and nodes are seeded as the services
expect them (seed_cluster), with the same host names as the real nodes.
"""

from __future__ import annotations

import pwd
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from hpcplane.api.actions.jobs import read_submit
from hpcplane.api.params import Params
from hpcplane.clock import SystemClock
from hpcplane.domain.accounts import Account, Principal
from hpcplane.domain.errors import InvalidParams
from hpcplane.providers.jobs import submit_token
from hpcplane.providers.local.facade import LocalClusters
from hpcplane.providers.local.jobs_provider import LocalJobs, local_user_name
from hpcplane.services.accounts import AccountService
from hpcplane.services.clusters import seed_cluster
from hpcplane.services.jobs import JobService
from hpcplane.services.users import UserEntry, UserService
from hpcplane.store import migrate
from hpcplane.store.db import Database
from hpcplane.store.secrets import SecretBox
from tests.support.jobs import record_pending
from tests.support.localslurm import clusters, local_home, poll, token

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(300)]
__all__ = ["clusters", "local_home"]

SECRET = "Sup3r-secret-pw"


@dataclass
class World:
    clusters: LocalClusters
    provider: LocalJobs
    db: Database
    who: Principal
    cluster_id: str
    jobs: JobService
    users: UserService

    def submit(self, command: str, **params: str) -> str:
        raw = {"ClusterId": self.cluster_id, "RunasUser": "alice.hpc", "CommandLine": command, **params}
        return self.jobs.submit(self.who, read_submit(Params(raw)))

    def job(self, job_id: str) -> dict[str, Any]:
        return self.jobs.get(self.who, self.cluster_id, job_id)

    def until(self, job_id: str, state: str, timeout: float = 60) -> dict[str, Any]:
        def reached() -> bool:
            self.jobs.advance()
            return bool(self.job(job_id)["state"] == state)

        poll(reached, timeout, f"job {job_id} {state}")
        return self.job(job_id)

    def slurm(self, job_id: str) -> list[Any]:
        slurm_id = self.provider.slurm_id(self.cluster_id, job_id)
        assert slurm_id is not None
        return self.clusters.observe_jobs(self.cluster_id, slurm_id)


@pytest.fixture(scope="module")
def world(clusters: LocalClusters, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('jobs-store') / 'store.db'}", timeout=5.0)
    migrate.upgrade(db)
    clock = SystemClock()
    issued = AccountService(db, SecretBox(Fernet.generate_key()), clock).create_account("local-jobs")
    who = Principal(Account(issued.account_id, "local-jobs", True), issued.access_key_id)
    cluster_id = seed_cluster(
        db, clock, account_id=issued.account_id, region="cn-hangzhou", name="local-jobs", computes=2
    )
    provider = LocalJobs(clusters)
    try:
        clusters.ensure_controller(token(), cluster_id, manager="manager0", login="login0")
        assert clusters.ensure_nodes(token(), cluster_id, ["compute0", "compute1"]).failed == {}
        users = UserService(db, clock, provider)
        users.add(who, cluster_id, [UserEntry("User.1.Name", "alice.hpc", None, SECRET)])
        yield World(clusters, provider, db, who, cluster_id, JobService(db, clock, provider), users)
    finally:
        clusters.destroy(cluster_id)
        db.dispose()


def _account(world: World, name: str = "alice.hpc") -> pwd.struct_passwd:
    account = world.clusters.record(world.cluster_id).users[local_user_name(name)]
    return pwd.getpwnam(account)


def test_add_users_makes_unprivileged_accounts_once(world: World) -> None:
    """AddUsers: an account per user, not root, with its home in the cluster's directory; the same
    token again changes nothing; a user already there is refused by the service."""
    entry = _account(world)
    assert entry.pw_uid != 0
    assert entry.pw_name.startswith("hx")
    assert entry.pw_name.endswith(local_user_name("alice.hpc"))
    assert Path(entry.pw_dir).is_relative_to(world.clusters.store.paths(world.cluster_id).root)
    world.provider.ensure_user(f"{world.cluster_id}/user/alice.hpc", world.cluster_id, "alice.hpc")
    assert _account(world).pw_uid == entry.pw_uid
    with pytest.raises(InvalidParams):
        world.users.add(world.who, world.cluster_id, [UserEntry("User.1.Name", "alice.hpc", None, SECRET)])
    page = world.users.list(world.who, world.cluster_id, page_number=1, page_size=10)
    assert [u["name"] for u in page.users] == ["alice.hpc"]


def test_a_two_node_job_logs_both_compute_nodes_never_as_root(world: World) -> None:
    """SubmitJob `srun hostname` with Node=2: Slurm's NodeList in the job, both names in GetJobLog,
    and the job's uid is the user's account, not root."""
    job_id = world.submit("srun hostname; id -u", Node="2")
    job = world.until(job_id, "FINISHED")
    assert job["node_list"] == "compute0,compute1"
    stdout, _ = world.jobs.log(world.who, world.cluster_id, job_id)
    lines = stdout.split()
    assert {"compute0", "compute1"} <= set(lines)
    assert lines[-1] == str(_account(world).pw_uid) != "0"
    assert job["submission"] is None


def test_stop_jobs_scancels_and_rerun_jobs_requeues(world: World) -> None:
    """RerunJobs of a running job requeues it in Slurm (pending again: Slurm delays a requeued job's
    start), and the round shows it QUEUED; StopJobs cancels it there."""
    job_id = world.submit("sleep 300", ReRunable="true")
    world.until(job_id, "RUNNING")
    world.jobs.rerun(world.who, world.cluster_id, [job_id])
    poll(lambda: world.slurm(job_id)[0].restarts >= 1, 60, "the requeue in Slurm")
    poll(lambda: world.slurm(job_id)[0].is_pending, 60, "the requeued job pending in Slurm")
    world.jobs.advance()
    assert (world.job(job_id)["state"], world.job(job_id)["node_list"]) == ("QUEUED", "")
    world.jobs.stop(world.who, world.cluster_id, [job_id])
    assert world.job(job_id)["state"] == "STOPPED"
    poll(lambda: world.slurm(job_id)[0].state == "CANCELLED", 30, "the cancel in Slurm")
    world.jobs.advance()
    assert world.job(job_id)["state"] == "STOPPED"


def test_create_job_file_writes_as_the_user_and_a_job_runs_it(world: World) -> None:
    """CreateJobFile puts the file in the user's home, owned by the account; a job runs it."""
    world.jobs.create_file(
        world.who,
        world.cluster_id,
        "alice.hpc",
        "scripts/hello.sh",
        b"#!/bin/sh\necho hello from $(hostname)\n",
    )
    home = Path(_account(world).pw_dir)
    script = home / "scripts" / "hello.sh"
    assert script.stat().st_uid == _account(world).pw_uid
    job_id = world.submit("sh scripts/hello.sh", StdoutRedirectPath="logs/hello.out")
    world.until(job_id, "FINISHED")
    stdout, _ = world.jobs.log(world.who, world.cluster_id, job_id)
    assert stdout.startswith("hello from compute")
    assert (home / "logs" / "hello.out").read_text() == stdout


def test_a_submission_left_pending_by_a_crash_is_handed_over_once(world: World) -> None:
    """A job recorded but never confirmed (its caller died before, or after, sbatch): the round submits
    it under the same token, and sbatch runs once either way."""
    ids = []
    for effect_done in (False, True):
        submission = record_pending(
            world.db, world.cluster_id, world.who.account.id, "hostname", SystemClock().now()
        )
        job_id = submission.job_id
        if effect_done:
            world.provider.submit_job(submit_token(world.cluster_id, job_id), submission)
        ids.append(job_id)
    for job_id in ids:
        assert world.until(job_id, "FINISHED")["submission"] is None
        comment = f"hpcplane:{submit_token(world.cluster_id, job_id)}"
        every = world.clusters.observe_jobs(world.cluster_id)
        assert [j.job_id for j in every if j.comment == comment] == [
            world.provider.slurm_id(world.cluster_id, job_id)
        ]
