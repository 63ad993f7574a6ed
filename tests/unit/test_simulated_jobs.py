"""The simulated cloud's scheduler (providers/simulated_jobs.py): a pure function of jobs, nodes, time."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hpcplane.providers.jobs import FAILED, FINISHED, QUEUED, RUNNING, JobRecord, JobUpdate, NodeSlot
from hpcplane.providers.simulated_jobs import log, observe

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
STARTED = NOW - timedelta(minutes=10)


def job(job_id: str, **changes: object) -> JobRecord:
    base = JobRecord(
        cluster_id="ehpc-c1",
        job_id=job_id,
        name=f"name-{job_id}",
        owner="alice",
        queue="comp",
        command_line="./run.sh",
        nodes=1,
        cpus=2,
        priority=0,
        re_runable=False,
        state=QUEUED,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def running(job_id: str, hosts: tuple[str, ...], ends_at: datetime | None, **changes: object) -> JobRecord:
    return job(job_id, state=RUNNING, node_list=hosts, started_at=STARTED, ends_at=ends_at, **changes)


def nodes(*hosts: str, queue: str = "comp", cpus: int = 2) -> list[NodeSlot]:
    return [NodeSlot(host, queue, cpus) for host in hosts]


def run(
    jobs: list[JobRecord], slots: list[NodeSlot], *, fail_rate: float = 0.0, seed: int = 1
) -> list[JobUpdate]:
    return observe(jobs, slots, NOW, seconds=60.0, fail_rate=fail_rate, seed=seed)


def test_a_queued_job_starts_on_a_free_node_for_the_configured_duration() -> None:
    """Without a ClockTime of its own, a job runs for the configured simulated `seconds`."""
    assert run([job("1")], nodes("n1", "n2")) == [
        JobUpdate("1", RUNNING, ("n1",), NOW, NOW + timedelta(seconds=60))
    ]


def test_a_jobs_own_clock_time_sets_its_end() -> None:
    """A job that said how long it runs (`seconds`) ends then, not after the configured duration."""
    assert run([job("1", seconds=5.0)], nodes("n1")) == [
        JobUpdate("1", RUNNING, ("n1",), NOW, NOW + timedelta(seconds=5))
    ]


def test_a_job_takes_exactly_as_many_nodes_as_it_asks_in_the_order_given() -> None:
    """Two nodes asked, two free: it starts on the first two; with one free it waits."""
    assert run([job("1", nodes=2)], nodes("n1", "n2", "n3")) == [
        JobUpdate("1", RUNNING, ("n1", "n2"), NOW, NOW + timedelta(seconds=60))
    ]
    assert run([job("1", nodes=2)], nodes("n1", "n2")) == [
        JobUpdate("1", RUNNING, ("n1", "n2"), NOW, NOW + timedelta(seconds=60))
    ]
    assert run([job("1", nodes=2)], nodes("n1")) == []


def test_a_job_that_does_not_fit_does_not_stop_smaller_ones_behind_it() -> None:
    """Backfill: the first job waits for two nodes, the next one, asking for one, starts."""
    jobs = [job("big", nodes=2, priority=5), job("small", priority=1)]
    assert run(jobs, nodes("n1")) == [JobUpdate("small", RUNNING, ("n1",), NOW, NOW + timedelta(seconds=60))]


def test_nodes_of_another_queue_or_with_too_few_cpus_are_not_used() -> None:
    """A node serves its own queue, and only jobs whose vCPUs it has (exactly as many will do)."""
    assert run([job("1", cpus=4)], [*nodes("other", queue="gpu", cpus=8), *nodes("small", cpus=3)]) == []
    assert run([job("1", cpus=4)], nodes("exact", cpus=4)) == [
        JobUpdate("1", RUNNING, ("exact",), NOW, NOW + timedelta(seconds=60))
    ]


def test_higher_priority_first_and_one_job_per_node() -> None:
    """Queued jobs are placed by descending priority (ties in the given order); a node placed is busy."""
    jobs = [job("low", priority=1), job("high", priority=9), job("mid", priority=5), job("mid2", priority=5)]
    updates = run(jobs, nodes("n1", "n2", "n3"))
    assert [(u.job_id, u.node_list) for u in updates] == [
        ("high", ("n1",)),
        ("mid", ("n2",)),
        ("mid2", ("n3",)),
    ]


def test_a_running_job_keeps_its_nodes_until_it_ends() -> None:
    """A job still running (its end ahead, or unknown) holds its nodes: a queued job cannot start there."""
    later = NOW + timedelta(seconds=1)
    assert run([running("r", ("n1",), later), job("q")], nodes("n1")) == []
    assert run([running("r", ("n1",), None), job("q")], nodes("n1")) == []
    assert run([running("r", ("n1",), later), job("q")], nodes("n1", "n2")) == [
        JobUpdate("q", RUNNING, ("n2",), NOW, NOW + timedelta(seconds=60))
    ]


def test_a_job_ends_at_its_end_time_and_frees_its_nodes() -> None:
    """At `ends_at` (not only after it) the job is FINISHED, finished at its end time, not at `now`;
    its node can take a queued job in the same observation."""
    ended = NOW - timedelta(seconds=30)
    assert run([running("r", ("n1",), ended)], nodes("n1")) == [
        JobUpdate("r", FINISHED, ("n1",), STARTED, ended, ended, "")
    ]
    assert run([running("r", ("n1",), NOW), job("q")], nodes("n1")) == [
        JobUpdate("r", FINISHED, ("n1",), STARTED, NOW, NOW, ""),
        JobUpdate("q", RUNNING, ("n1",), NOW, NOW + timedelta(seconds=60)),
    ]


def test_a_node_leaving_requeues_a_rerunnable_job_and_fails_the_others() -> None:
    """A running job one of whose nodes is no longer up: back to QUEUED when re-runnable, else FAILED
    at `now` with its nodes and times kept; the nodes still up are free for queued jobs."""
    gone = NOW + timedelta(minutes=5)
    assert run([running("r", ("n1", "gone"), gone, re_runable=True)], nodes("n1")) == [
        JobUpdate("r", QUEUED, comment="requeued: a node left the cluster")
    ]
    assert run([running("r", ("n1", "gone"), gone), job("q")], nodes("n1")) == [
        JobUpdate(
            "r", FAILED, ("n1", "gone"), STARTED, gone, NOW, comment="a node of the job left the cluster"
        ),
        JobUpdate("q", RUNNING, ("n1",), NOW, NOW + timedelta(seconds=60)),
    ]


def test_injected_failures_follow_the_rate_and_the_seed() -> None:
    """fail_rate 1 fails every ending job, 0 none; in between, which jobs fail is fixed by the seed, the
    cluster and the job id (the same run replays the same failures)."""
    ended = [running(str(i), (f"n{i}",), NOW) for i in range(20)]
    slots = nodes(*(f"n{i}" for i in range(20)))

    def failed(rate: float, seed: int, cluster: str = "ehpc-c1") -> list[str]:
        jobs = [replace(j, cluster_id=cluster) for j in ended]
        updates = observe(jobs, slots, NOW, seconds=60.0, fail_rate=rate, seed=seed)
        assert [u.state for u in updates] == [FAILED if u.comment else FINISHED for u in updates]
        assert {u.comment for u in updates} <= {"", "simulated failure (injected)"}
        return [u.job_id for u in updates if u.state == FAILED]

    assert failed(1.0, 1) == [str(i) for i in range(20)]
    assert failed(0.0, 1) == []
    half = failed(0.5, 7)
    assert half == ["1", "2", "4", "6", "17", "18"]
    assert failed(0.5, 7) == half
    assert failed(0.5, 8) != half
    assert failed(0.5, 7, cluster="ehpc-c2") != half


def test_the_log_says_it_was_simulated_and_names_the_job() -> None:
    """stdout names the job, its owner, queue, state, nodes and command; stderr only for a failed job."""
    stdout, stderr = log(running("7", ("n1", "n2"), NOW))
    assert stdout == (
        "[hpcplane simulated cloud] This log was simulated: nothing was executed.\n"
        "job 7 (name-7) of alice in queue comp: RUNNING\n"
        "nodes: n1,n2\n"
        "command: ./run.sh\n"
    )
    assert stderr == ""
    stdout, stderr = log(job("8", state=FAILED))
    assert "nodes: (no node yet)\n" in stdout
    assert stderr == "[hpcplane simulated cloud] simulated failure (injected)\n"


def test_a_job_fails_only_when_its_draw_is_under_the_rate() -> None:
    """The injected failure is `draw < fail_rate`: a rate equal to a job's draw does not fail it, so a
    rate p fails a fraction p of jobs (and 0 none, 1 all)."""
    draw = random.Random("3:ehpc-c1:5").random()
    ended = [running("5", ("n1",), NOW)]
    at_draw = observe(ended, nodes("n1"), NOW, seconds=60.0, fail_rate=draw, seed=3)
    above = observe(ended, nodes("n1"), NOW, seconds=60.0, fail_rate=draw + 1e-9, seed=3)
    assert [u.state for u in at_draw] == [FINISHED]
    assert [u.state for u in above] == [FAILED]
