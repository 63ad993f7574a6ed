"""Jobs on the simulated cloud through both official SDKs: the QUEUED -> RUNNING -> FINISHED lifecycle
on real nodes, CPU and node bounds, steering (stop, rerun, delete), a stopped cluster, faults, refusals.

Simulated jobs run 1.5 s unless their ClockTime says otherwise; a job that must be seen in a state is
given a ClockTime far longer than a poll (and is stopped, or left running, rather than waited for);
the scheduler's round is every 50 ms.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from hpcplane.store.tables import sim_calls
from tests.support.families import (
    BACKENDS,
    KINDS,
    account,
    poll,
    ram_user,
    refused,
    seed,
    start_server,
    wait_task,
)
from tests.support.live import LiveServer

SECRET = "Sup3r-secret-pw"
FAST = {"sim_step_seconds": "0.005", "sim_jitter": "0", "job_tick_seconds": "0.05"}


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(request, tmp_path_factory, "jobs", sim_job_seconds="1.5", **FAST)
    yield live
    live.stop()


def cluster_with_user(server: LiveServer, computes: int = 1) -> tuple[dict[str, str], str]:
    key = account(server)
    cluster_id = seed(server, key, computes=computes)
    server.call(
        "tea-v3", key, "AddUsers", ClusterId=cluster_id, User=[{"Name": "alice.hpc", "Password": SECRET}]
    )
    return key, cluster_id


def submit(
    server: LiveServer, key: dict[str, str], cluster_id: str, kind: str = "tea-v3", **params: object
) -> str:
    fields: dict[str, object] = {"RunasUser": "alice.hpc", "CommandLine": "./run.sh", **params}
    body = server.call(kind, key, "SubmitJob", ClusterId=cluster_id, **fields)
    assert set(body) == {"RequestId", "JobId"}
    return str(body["JobId"])


def job(
    server: LiveServer, key: dict[str, str], cluster_id: str, job_id: str, kind: str = "tea-v3"
) -> dict[str, Any]:
    body = server.call(kind, key, "ListJobs", ClusterId=cluster_id, PageSize=50)
    found = [j for j in body["Jobs"]["JobInfo"] if j["Id"] == job_id]  # type: ignore[index]
    assert len(found) == 1, body
    return dict(found[0])


def states_until(
    server: LiveServer, key: dict[str, str], cluster_id: str, job_id: str, end: str, kind: str = "tea-v3"
) -> list[dict[str, Any]]:
    """ListJobs polled until the job reaches `end`: each distinct state seen, with the job as first seen."""
    seen: list[dict[str, Any]] = []

    def probe() -> list[dict[str, Any]] | None:
        now = job(server, key, cluster_id, job_id, kind)
        if not seen or seen[-1]["State"] != now["State"]:
            seen.append(now)
        return seen if now["State"] == end else None

    return poll(f"job {job_id} {end}", probe, pause=0.02)


@pytest.mark.parametrize("kind", KINDS)
def test_job_is_queued_runs_on_a_real_node_and_finishes(server: LiveServer, kind: str) -> None:
    """Done-when: with the only node taken, a job is QUEUED, then RUNNING on a node of the cluster, then
    FINISHED; it has a log that says it was simulated; DescribeJob gives its JobInfo."""
    key, cluster_id = cluster_with_user(server)
    first = submit(server, key, cluster_id, kind, Name="first", ClockTime="00:00:05")
    second = submit(server, key, cluster_id, kind, Name="second", Priority=0, ClockTime="5")
    assert second != first
    seen = states_until(server, key, cluster_id, second, "FINISHED", kind)
    assert [s["State"] for s in seen] == ["QUEUED", "RUNNING", "FINISHED"]
    running = seen[1]
    assert running["NodeList"] == "compute0"
    assert running["StartTime"].endswith("Z")
    assert running["Resources"] == {"Nodes": 1, "Cores": 1}
    assert running["Owner"] == "alice.hpc"
    assert job(server, key, cluster_id, first, kind)["State"] == "FINISHED"
    log = server.call(kind, key, "GetJobLog", ClusterId=cluster_id, JobId=second)
    assert log["JobId"] == second
    assert "simulated" in str(log["OutputLog"])
    assert "compute0" in str(log["OutputLog"])
    message: Any = server.call(kind, key, "DescribeJob", ClusterId=cluster_id, JobId=second)["Message"]
    info = json.loads(message["JobInfo"])
    assert (info["id"], info["state"], info["node_list"]) == (second, "FINISHED", "compute0")
    finished = server.call(kind, key, "ListJobs", ClusterId=cluster_id, State="finished")
    assert finished["TotalCount"] == 2
    assert server.call(kind, key, "ListJobs", ClusterId=cluster_id, State="notfinish")["TotalCount"] == 0


def test_jobs_are_bounded_by_nodes_and_cpus(server: LiveServer) -> None:
    """A job needing more nodes, or more CPUs per node, than the queue has stays QUEUED while a job that
    fits runs and finishes; two one-node jobs run side by side on two nodes."""
    key, cluster_id = cluster_with_user(server, computes=2)
    too_many = submit(server, key, cluster_id, Node=3)
    too_big = submit(server, key, cluster_id, Cpu=4)  # ecs.c6.large has 2 vCPUs
    a = submit(server, key, cluster_id)
    b = submit(server, key, cluster_id, Cpu=2)
    seen_a = states_until(server, key, cluster_id, a, "FINISHED")
    seen_b = states_until(server, key, cluster_id, b, "FINISHED")
    hosts = {seen_a[-1]["NodeList"], seen_b[-1]["NodeList"]}
    assert hosts == {"compute0", "compute1"}
    assert job(server, key, cluster_id, too_many)["State"] == "QUEUED"
    assert job(server, key, cluster_id, too_big)["State"] == "QUEUED"


def test_stop_rerun_delete(server: LiveServer) -> None:
    """StopJobs ends a running job STOPPED; RerunJobs puts a re-runnable job back in its queue and refuses
    one that is not; DeleteJobs removes jobs from ListJobs; unknown ids are InvalidParams naming Jobs."""
    key, cluster_id = cluster_with_user(server)
    rerunnable = submit(server, key, cluster_id, ReRunable=True, ClockTime="10:00")
    plain = submit(server, key, cluster_id, ClockTime="10:00")
    states_until(server, key, cluster_id, rerunnable, "RUNNING")
    server.call("legacy", key, "StopJobs", ClusterId=cluster_id, Jobs=json.dumps([{"Id": rerunnable}]))
    assert job(server, key, cluster_id, rerunnable)["State"] == "STOPPED"
    states_until(server, key, cluster_id, plain, "RUNNING")
    server.call("tea-v3", key, "RerunJobs", ClusterId=cluster_id, Jobs=json.dumps([{"Id": rerunnable}]))
    requeued = job(server, key, cluster_id, rerunnable)
    assert (requeued["State"], requeued["NodeList"]) == ("QUEUED", "")  # the only node runs `plain`
    error = refused(
        server, "tea-v3", key, "RerunJobs", ClusterId=cluster_id, Jobs=json.dumps([{"Id": plain}])
    )
    assert (error.code, error.message) == ("InvalidParams", "The specified parameter Jobs is invalid.")
    server.call(
        "tea-v3",
        key,
        "DeleteJobs",
        ClusterId=cluster_id,
        Jobs=json.dumps([{"Id": plain}, {"Id": rerunnable}]),
    )
    assert server.call("tea-v3", key, "ListJobs", ClusterId=cluster_id)["TotalCount"] == 0
    gone = refused(server, "legacy", key, "StopJobs", ClusterId=cluster_id, Jobs=json.dumps([{"Id": plain}]))
    assert gone.message == "The specified parameter Jobs is invalid."


def test_a_stopped_cluster_runs_no_jobs(server: LiveServer) -> None:
    """StopCluster takes the nodes away: a running re-runnable job goes back to QUEUED, and no job can be
    submitted until the cluster runs again."""
    key, cluster_id = cluster_with_user(server)
    job_id = submit(server, key, cluster_id, ReRunable=True, ClockTime="10:00")
    states_until(server, key, cluster_id, job_id, "RUNNING")
    stopped = server.call("tea-v3", key, "StopCluster", ClusterId=cluster_id)
    wait_task(server, key, cluster_id, str(stopped["TaskId"]))
    seen = states_until(server, key, cluster_id, job_id, "QUEUED")
    assert seen[-1]["NodeList"] == ""
    error = refused(
        server, "tea-v3", key, "SubmitJob", ClusterId=cluster_id, RunasUser="alice.hpc", CommandLine="x"
    )
    assert (error.status, error.code) == (403, "InvalidClusterStatus")
    started = server.call("tea-v3", key, "StartCluster", ClusterId=cluster_id)
    wait_task(server, key, cluster_id, str(started["TaskId"]))
    assert states_until(server, key, cluster_id, job_id, "RUNNING")[-1]["NodeList"] == "compute0"


def test_submit_refusals_and_tenancy(server: LiveServer) -> None:
    """RunasUser must be a user of the cluster, JobQueue a queue of it; ranges are the model's; another
    account's cluster is not found; a RAM user needs ehpc:SubmitJob."""
    key, cluster_id = cluster_with_user(server)
    for params, name in (
        ({"RunasUser": "mallory.x"}, "RunasUser"),
        ({"JobQueue": "nope"}, "JobQueue"),
        ({"Node": 501}, "Node"),
        ({"Priority": 10}, "Priority"),
        ({"Mem": "lots"}, "Mem"),
    ):
        base: dict[str, object] = {"RunasUser": "alice.hpc", "CommandLine": "x", **params}
        error = refused(server, "legacy", key, "SubmitJob", ClusterId=cluster_id, **base)
        assert (error.code, error.message) == ("InvalidParams", f"The specified parameter {name} is invalid.")
    other = account(server)
    assert refused(server, "tea-v3", other, "ListJobs", ClusterId=cluster_id).code == "ClusterNotFound"
    nobody = ram_user(server, key)
    assert (
        refused(
            server,
            "tea-v3",
            nobody,
            "SubmitJob",
            ClusterId=cluster_id,
            RunasUser="alice.hpc",
            CommandLine="x",
        ).code
        == "NotAuthorized"
    )
    assert server.call("tea-v3", key, "ListJobs", ClusterId=cluster_id)["TotalCount"] == 0


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(
        tmp_path_factory.mktemp("jobs-failing"), sim_job_seconds="0.2", sim_job_fail_rate="1", **FAST
    )
    live.start(timeout=60)
    yield live
    live.stop()


def test_injected_fault_fails_the_job(failing: LiveServer) -> None:
    """With HPCPLANE_SIM_JOB_FAIL_RATE=1 every job ends FAILED, and its error log says why."""
    key, cluster_id = cluster_with_user(failing)
    job_id = submit(failing, key, cluster_id)
    seen = states_until(failing, key, cluster_id, job_id, "FAILED")
    assert seen[-1]["Comment"] == "simulated failure (injected)"
    log = failing.call("tea-v3", key, "GetJobLog", ClusterId=cluster_id, JobId=job_id)
    assert "injected" in str(log["ErrorLog"])


def test_list_jobs_with_filters(server: LiveServer) -> None:
    """ListJobsWithFilters: by name (fuzzy), user, queue, node, status and submit time; ordered; paged."""
    key, cluster_id = cluster_with_user(server)
    server.call(
        "tea-v3", key, "AddUsers", ClusterId=cluster_id, User=[{"Name": "bobby.hpc", "Password": SECRET}]
    )
    a = submit(server, key, cluster_id, Name="alpha-run", ClockTime="10:00")
    b = submit(server, key, cluster_id, Name="beta-run", RunasUser="bobby.hpc", ClockTime="10:00")
    states_until(server, key, cluster_id, a, "RUNNING")

    def ids(**params: object) -> list[str]:
        body: Any = server.call("tea-v3", key, "ListJobsWithFilters", ClusterId=cluster_id, **params)
        assert body["Success"] is True
        assert body["TotalCount"] == len(body["Jobs"]) or params.get("PageSize") == 1
        return [j["Id"] for j in body["Jobs"]]

    assert ids() == [b, a]
    assert ids(SubmitOrder="asc") == [a, b]
    assert ids(JobName="ALPHA") == [a]
    assert ids(Users=["bobby.hpc"]) == [b]
    assert ids(Queues=["workq"]) == [b, a]
    assert ids(Queues=["other"]) == []
    assert ids(Nodes=["compute0"]) == [a]
    assert ids(JobStatus="notfinish") == [b, a]
    assert ids(JobStatus="finished") == []
    assert ids(CreateTimeEnd="1000000000") == []
    assert ids(PageSize=1, PageNumber=2) == [a]
    legacy: Any = server.call("legacy", key, "ListJobsWithFilters", ClusterId=cluster_id, JobName="beta")
    assert [j["Id"] for j in legacy["Jobs"]] == [b]
    assert legacy["Jobs"][0]["Queue"] == "workq"
    error = refused(server, "tea-v3", key, "ListJobsWithFilters", ClusterId=cluster_id, SubmitOrder="up")
    assert error.message == "The specified parameter SubmitOrder is invalid."


@pytest.mark.parametrize("kind", KINDS)
def test_create_job_file(server: LiveServer, kind: str) -> None:
    """CreateJobFile hands Base64 content to the provider as a cluster user; bad Base64, a path with '..'
    and a user not of the cluster are InvalidParams naming the parameter."""
    key, cluster_id = cluster_with_user(server)
    content = base64.b64encode(b"#!/bin/sh\necho hi\n").decode()
    body = server.call(
        kind,
        key,
        "CreateJobFile",
        ClusterId=cluster_id,
        RunasUser="alice.hpc",
        TargetFile="run.sh",
        Content=content,
    )
    assert set(body) == {"RequestId"}
    with server.services.db.read() as conn:
        tokens = [
            row.token for row in conn.execute(select(sim_calls).where(sim_calls.c.action == "CreateJobFile"))
        ]
    assert f"{cluster_id}:alice.hpc:file:18:run.sh" in tokens
    for params, name in (
        ({"Content": "not base64!"}, "Content"),
        ({"TargetFile": "../etc/passwd"}, "TargetFile"),
        ({"RunasUser": "mallory.x"}, "RunasUser"),
    ):
        fields: dict[str, object] = {
            "RunasUser": "alice.hpc",
            "TargetFile": "a.sh",
            "Content": content,
            **params,
        }
        error = refused(server, kind, key, "CreateJobFile", ClusterId=cluster_id, **fields)
        assert error.message == f"The specified parameter {name} is invalid."
