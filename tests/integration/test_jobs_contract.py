"""The job half of the provider contract, through JobService and UserService on a real store (both
backends): provider calls between transactions, effects recorded only once the provider confirms,
a submission left pending by a crash handed over once, refusals leaving no job, a partial failure
recording what was done, and an observation never overwriting a change recorded meanwhile.

The provider is the simulated cloud, or a subclass of it that fails or interleaves on purpose.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import pytest

from hpcplane.api.actions.jobs import read_submit
from hpcplane.api.params import Params
from hpcplane.domain.accounts import Account, Principal
from hpcplane.domain.errors import InvalidParams, ProviderFailed
from hpcplane.providers.faults import parse_faults
from hpcplane.providers.jobs import JobRecord, JobSubmission, JobUpdate, NodeSlot, submit_token
from hpcplane.providers.simulated import SimulatedCloud
from hpcplane.services.accounts import AccountService
from hpcplane.services.clusters import seed_cluster
from hpcplane.services.jobs import JobService
from hpcplane.services.users import UserEntry, UserService
from hpcplane.store.db import Database
from hpcplane.store.secrets import SecretBox
from tests.integration.conftest import FakeClock
from tests.support.jobs import record_pending


class Cloud(SimulatedCloud):
    """The simulated cloud, with hooks: a refusal at submit, a failing cancel, a call during observe."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock, step_seconds=0, jitter=0, capacity=100, seed=1, faults=parse_faults(""))
        self.refuse_submit = False
        self.fail_cancel: set[str] = set()
        self.during_observe: Callable[[], None] = lambda: None

    def submit_job(self, token: str, job: JobSubmission) -> str:
        if self.refuse_submit:
            raise ProviderFailed(what="submit", reason="refused on purpose")
        return super().submit_job(token, job)

    def cancel_job(self, token: str, cluster_id: str, job_id: str) -> None:
        if job_id in self.fail_cancel:
            raise ProviderFailed(what=f"cancel {job_id}", reason="failed on purpose")
        super().cancel_job(token, cluster_id, job_id)

    def observe_jobs(self, jobs: list[JobRecord], nodes: list[NodeSlot], now: datetime) -> list[JobUpdate]:
        updates = super().observe_jobs(jobs, nodes, now)
        self.during_observe()
        return updates


@dataclass
class World:
    cloud: Cloud
    clock: FakeClock
    db: Database
    who: Principal
    cluster_id: str
    jobs: JobService

    def submit(self, **params: str) -> str:
        raw = {"ClusterId": self.cluster_id, "RunasUser": "alice.hpc", "CommandLine": "x", **params}
        return self.jobs.submit(self.who, read_submit(Params(raw)))

    def state(self, job_id: str) -> str:
        return str(self.jobs.get(self.who, self.cluster_id, job_id)["state"])

    def calls(self, action: str) -> list[str]:
        return [token for token, name in self.cloud.job_calls if name == action]


@pytest.fixture
def world(db: Database, clock: FakeClock, box: SecretBox) -> World:
    issued = AccountService(db, box, clock).create_account("contract")
    who = Principal(Account(issued.account_id, "contract", True), issued.access_key_id)
    cluster_id = seed_cluster(
        db, clock, account_id=issued.account_id, region="cn-hangzhou", name="c", computes=1
    )
    cloud = Cloud(clock)
    UserService(db, clock, cloud).add(
        who, cluster_id, [UserEntry("User.1.Name", "alice.hpc", None, "Pa55-word")]
    )
    assert cloud.job_calls == [(f"{cluster_id}/user/alice.hpc", "AddUser")]
    return World(cloud, clock, db, who, cluster_id, JobService(db, clock, cloud))


def _leave_pending(world: World) -> str:
    """A job as a crash between its record and the provider's confirmation leaves it."""
    return record_pending(world.db, world.cluster_id, world.who.account.id, "y", world.clock.now()).job_id


def test_submit_is_confirmed_once(world: World) -> None:
    job_id = world.submit()
    assert world.calls("SubmitJob") == [submit_token(world.cluster_id, job_id)]
    assert world.jobs.get(world.who, world.cluster_id, job_id)["submission"] is None


def test_a_pending_submission_is_handed_over_once_by_the_round(world: World) -> None:
    """Died before the provider's call, or after it: the round submits with the same token, once."""
    before, after = _leave_pending(world), _leave_pending(world)
    world.cloud.submit_job(
        submit_token(world.cluster_id, after),
        JobSubmission.from_json(world.jobs.get(world.who, world.cluster_id, after)["submission"]),
    )
    world.jobs.advance()
    world.jobs.advance()
    tokens = [submit_token(world.cluster_id, before), submit_token(world.cluster_id, after)]
    assert sorted(world.calls("SubmitJob")) == sorted(tokens)
    for job_id in (before, after):
        assert world.jobs.get(world.who, world.cluster_id, job_id)["submission"] is None
    assert world.state(before) == "RUNNING"  # then scheduled: one compute node, so one at a time


def test_a_refused_submission_leaves_no_job(world: World) -> None:
    world.cloud.refuse_submit = True
    with pytest.raises(ProviderFailed):
        world.submit()
    assert world.calls("CancelJob") == [f"{world.cluster_id}/1.manager/cancel/withdrawn"]
    with pytest.raises(InvalidParams):
        world.submit(JobQueue="nope")  # the API's own check: nothing reaches the provider
    listed = world.jobs.list_jobs(
        world.who, world.cluster_id, state="all", owner=None, rerunable=None, page_number=1, page_size=10
    )
    assert listed.total == 0


def test_a_partial_stop_records_what_was_cancelled(world: World) -> None:
    first, second = world.submit(ClockTime="1:00:00"), world.submit(ClockTime="1:00:00")
    world.cloud.fail_cancel = {second}
    with pytest.raises(ProviderFailed):
        world.jobs.stop(world.who, world.cluster_id, [first, second])
    assert (world.state(first), world.state(second)) == ("STOPPED", "QUEUED")


def test_an_observation_never_overwrites_a_stop_recorded_meanwhile(world: World) -> None:
    """The round shows the provider a QUEUED job, which starts it; StopJobs is recorded before the
    round writes: the job stays STOPPED."""
    job_id = world.submit(ClockTime="1:00:00")
    world.cloud.during_observe = lambda: world.jobs.stop(world.who, world.cluster_id, [job_id])
    assert world.jobs.advance() == 0
    assert world.state(job_id) == "STOPPED"
    world.cloud.during_observe = lambda: None
    other = world.submit(ClockTime="1:00:00")
    assert world.jobs.advance() == 1
    assert world.state(other) == "RUNNING"
