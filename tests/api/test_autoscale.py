"""Autoscaling through both official SDKs: the configuration round trip, and the autoscaler growing a
cluster with AddNodes tasks for queued jobs (never past MaxNodesInCluster) and shrinking idle nodes with
DeleteNodes tasks, all visible in ListTasks.

One autoscaler minute is 50 ms here (HPCPLANE_SIM_MINUTE_SECONDS), jobs run 0.5 s.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.families import BACKENDS, KINDS, account, poll, ram_user, refused, seed, start_server
from tests.support.live import LiveServer

SECRET = "Sup3r-secret-pw"


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(
        request,
        tmp_path_factory,
        "autoscale",
        sim_step_seconds="0.005",
        sim_jitter="0",
        job_tick_seconds="0.05",
        sim_job_seconds="0.5",
        sim_minute_seconds="0.05",
    )
    yield live
    live.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_config_round_trip(server: LiveServer, kind: str) -> None:
    """Defaults first; what SetAutoScaleConfig sets, Get and Describe return; ranges are the model's."""
    key = account(server)
    cluster_id = seed(server, key)
    before = server.call(kind, key, "GetAutoScaleConfig", ClusterId=cluster_id)
    assert (before["EnableAutoGrow"], before["MaxNodesInCluster"], before["GrowRatio"]) == (False, 100, 100)
    assert (before["ShrinkIdleTimes"], before["GrowIntervalInMinutes"], before["ClusterType"]) == (
        3,
        2,
        "pbs",
    )
    server.call(
        kind,
        key,
        "SetAutoScaleConfig",
        ClusterId=cluster_id,
        EnableAutoGrow=True,
        MaxNodesInCluster=7,
        GrowRatio=50,
        ShrinkIdleTimes=4,
        SpotStrategy="SpotAsPriceGo",
        ExcludeNodes="compute0",
    )
    after = server.call(kind, key, "GetAutoScaleConfig", ClusterId=cluster_id)
    assert (after["EnableAutoGrow"], after["EnableAutoShrink"], after["MaxNodesInCluster"]) == (
        True,
        False,
        7,
    )
    assert (after["GrowRatio"], after["ShrinkIdleTimes"], after["SpotStrategy"]) == (50, 4, "SpotAsPriceGo")
    assert after["ExcludeNodes"] == "compute0"
    described = server.call(kind, key, "DescribeAutoScaleConfig", ClusterId=cluster_id)
    assert (described["MaxNodesInCluster"], described["Uid"]) == (7, key["AccountId"])
    for params, name in (
        ({"GrowIntervalInMinutes": 1}, "GrowIntervalInMinutes"),
        ({"MaxNodesInCluster": 501}, "MaxNodesInCluster"),
        ({"SpotStrategy": "Cheap"}, "SpotStrategy"),
    ):
        error = refused(server, kind, key, "SetAutoScaleConfig", ClusterId=cluster_id, **params)
        assert error.message == f"The specified parameter {name} is invalid."
    other = account(server)
    assert (
        refused(server, "tea-v3", other, "GetAutoScaleConfig", ClusterId=cluster_id).code == "ClusterNotFound"
    )
    nobody = ram_user(server, key)
    assert (
        refused(server, "tea-v3", nobody, "SetAutoScaleConfig", ClusterId=cluster_id).code == "NotAuthorized"
    )


def tasks(server: LiveServer, key: dict[str, str], cluster_id: str) -> list[dict[str, Any]]:
    body = server.call("tea-v3", key, "ListTasks", ClusterId=cluster_id, Archived=True, PageSize=50)
    found: list[dict[str, Any]] = body["Tasks"]  # type: ignore[assignment]
    return found


def computes(server: LiveServer, key: dict[str, str], cluster_id: str) -> list[dict[str, Any]]:
    body = server.call("tea-v3", key, "ListNodes", ClusterId=cluster_id, Role="Compute", PageSize=100)
    found: list[dict[str, Any]] = body["Nodes"]["NodeInfo"]  # type: ignore[index]
    return found


def test_queued_jobs_grow_the_cluster_and_idle_nodes_shrink_it(server: LiveServer) -> None:
    """Done-when: three one-node jobs on a cluster with no compute node make the autoscaler start AddNodes
    tasks (at most MaxNodesInCluster=2 nodes), the jobs run on the new nodes and finish, and the idle nodes
    are then removed by DeleteNodes tasks; all of it in ListTasks."""
    key = account(server)
    cluster_id = seed(server, key, computes=0)
    server.call(
        "tea-v3", key, "AddUsers", ClusterId=cluster_id, User=[{"Name": "alice.hpc", "Password": SECRET}]
    )
    server.call(
        "legacy",
        key,
        "SetAutoScaleConfig",
        ClusterId=cluster_id,
        EnableAutoGrow=True,
        EnableAutoShrink=True,
        MaxNodesInCluster=2,
        GrowIntervalInMinutes=2,
        ShrinkIntervalInMinutes=2,
        ShrinkIdleTimes=2,
    )
    job_ids = [
        str(
            server.call(
                "tea-v3", key, "SubmitJob", ClusterId=cluster_id, RunasUser="alice.hpc", CommandLine="x"
            )["JobId"]
        )
        for _ in range(3)
    ]
    most = 0

    def all_finished() -> bool | None:
        nonlocal most
        most = max(most, len(computes(server, key, cluster_id)))
        body = server.call("tea-v3", key, "ListJobs", ClusterId=cluster_id, State="finished")
        return True if body["TotalCount"] == len(job_ids) else None

    poll("jobs finished", all_finished, timeout=90)
    grown = [t for t in tasks(server, key, cluster_id) if t["TaskType"] == "AddComputes"]
    assert grown, "no AddNodes task was started"
    assert most <= 2
    listed: Any = server.call("tea-v3", key, "ListJobs", ClusterId=cluster_id)["Jobs"]
    hosts = {j["NodeList"] for j in listed["JobInfo"]}
    assert hosts <= {"compute0", "compute1"}

    def shrunk() -> bool | None:
        return True if not computes(server, key, cluster_id) else None

    poll("idle nodes deleted", shrunk, timeout=90)
    kinds = [t["TaskType"] for t in tasks(server, key, cluster_id)]
    assert "DeleteComputes" in kinds
    assert all(t["Status"] in ("Success", "Processing") for t in tasks(server, key, cluster_id))
