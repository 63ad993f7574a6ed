"""`hpcplane serve --provider local` through the official SDK: the nine operations act on real Slurm.

One real cluster (two compute nodes, then a third) is shared by the tests of this module, in order:
each step's test checks ListNodes against the machine. The worker is killed (kill -9 of the server)
during AddNodes and during DeleteNodes; the restarted server finishes both, and the machine matches.
After a reboot (everything of the cluster swept but its record) the restarted worker brings it back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hpcplane.domain.plans import PLANS, base
from hpcplane.domain.tasks import TaskType
from hpcplane.providers.local import cleanup
from hpcplane.providers.local.records import RecordStore
from hpcplane.providers.local.slurmstate import parse_nodes
from tests.support.live import LiveServer
from tests.support.localslurm import assert_nothing_left, node_shell, poll, swept_home

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(600)]

PREFIX = "hy"  # not the facade tests' hx: this module sweeps only its own objects
NETWORK = "10.250.0.0/16"
KIND = "tea-v3"


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    with swept_home(PREFIX, "serve") as path:
        yield path


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[LiveServer]:
    live = LiveServer(
        home,
        provider="local",
        local_network=NETWORK,
        local_prefix=PREFIX,
        lease_seconds="8",
        reconcile_seconds="1",
        demo="false",
    )
    live.start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def key(server: LiveServer) -> dict[str, str]:
    return server.new_account("local")


@pytest.fixture(scope="module")
def cluster(server: LiveServer, key: dict[str, str]) -> str:
    body = server.call(
        KIND,
        key,
        "CreateCluster",
        Name="real",
        Password="Hpc-local-1",
        ZoneId="cn-hangzhou-h",
        SchedulerType="slurm",
        EcsOrder={"Manager": {"Count": 1}, "Login": {"Count": 1}, "Compute": {"Count": 2}},
    )
    task = wait_task(server, key, str(body["ClusterId"]), str(body["TaskId"]))
    assert (task["Status"], task["Errors"]) == ("Success", "[]"), task
    return str(body["ClusterId"])


# --- helpers -------------------------------------------------------------------------------------


def wait_task(server: LiveServer, key: dict[str, str], cluster_id: str, task_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def ended() -> bool:
        body = server.call(KIND, key, "ListTasks", ClusterId=cluster_id, TaskId=task_id)
        found.update(body["Tasks"][0])  # type: ignore[index]
        return found["Status"] not in ("Processing", "Pending")

    poll(ended, 240, f"task {task_id}")
    return found


def listed(server: LiveServer, key: dict[str, str], cluster_id: str) -> dict[str, dict[str, Any]]:
    body = server.call(KIND, key, "ListNodes", ClusterId=cluster_id, PageSize=100)
    return {n["HostName"]: n for n in body["Nodes"]["NodeInfo"]}  # type: ignore[index]


def instances(nodes: dict[str, dict[str, Any]], *hostnames: str) -> list[dict[str, str]]:
    return [{"Id": nodes[h]["Id"]} for h in hostnames]


def store(home: Path) -> RecordStore:
    return RecordStore(home.resolve() / "local")


def slurm_nodes(home: Path, cluster_id: str) -> dict[str, Any]:
    """What slurmctld says, asked from the login node with `hpcplane node-shell`."""
    return parse_nodes(node_shell(home, cluster_id, "login0", "scontrol", "show", "node", "-o"))


def netns_exists(home: Path, cluster_id: str, hostname: str) -> bool:
    return Path(f"/run/netns/{store(home).load(cluster_id).names.netns(hostname)}").exists()


def slurmd_pid(home: Path, cluster_id: str, hostname: str) -> int | None:
    try:
        pid = int(store(home).paths(cluster_id).slurmd_pid(hostname).read_text())
    except FileNotFoundError:
        return None
    return (
        pid
        if Path(f"/proc/{pid}").exists() and b"slurmd" in Path(f"/proc/{pid}/cmdline").read_bytes()
        else None
    )


def kill_during(
    server: LiveServer, key: dict[str, str], cluster_id: str, task_id: str, step: str, kind: TaskType
) -> None:
    """kill -9 the server (its in-process worker) once the task reached `step`, then start it again."""
    index = [base(s) for s in PLANS[kind]].index(step) + 1

    seen: dict[str, Any] = {}

    def reached() -> bool:
        body = server.call(KIND, key, "ListTasks", ClusterId=cluster_id, TaskId=task_id)
        seen.update(body["Tasks"][0])  # type: ignore[index]
        return int(seen["CurrentStep"]) >= index - 1

    # Polled every 0.1 s, not at poll()'s 0.3 s: a node's release takes a few tenths of a second, and a
    # slower poll missed the whole step once in three runs (the task seen already ended).
    deadline = time.monotonic() + 120
    while not reached():
        assert time.monotonic() < deadline, f"{task_id} never reached {step}: {seen}"
        time.sleep(0.1)
    # The provider's call of `step` is in flight: the step before it is recorded, `step` is not.
    assert (seen["Status"], seen["CurrentStep"]) == ("Processing", index - 1), seen
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    server.start()


# --- the lifecycle ---------------------------------------------------------------------------------


def test_create_cluster_builds_namespaces_with_the_listed_addresses(
    server: LiveServer, key: dict[str, str], cluster: str, home: Path
) -> None:
    nodes = listed(server, key, cluster)
    assert sorted(nodes) == ["compute0", "compute1", "login0", "manager0"]
    assert {n["Status"] for n in nodes.values()} == {"running"}
    record = store(home).load(cluster)
    for hostname, node in nodes.items():
        real = record.node(hostname)
        assert node["IpAddress"] == real.address
        out = subprocess.run(
            ["ip", "-n", real.netns, "-4", "-o", "addr", "show", "eth0"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert f"{real.address}/24" in out.stdout
    slurm = slurm_nodes(home, cluster)
    assert all(slurm[h].is_registered for h in ("compute0", "compute1"))
    assert nodes["compute0"]["StateInSched"] == "idle"


def test_add_nodes_survives_a_killed_worker(
    server: LiveServer, key: dict[str, str], cluster: str, home: Path
) -> None:
    body = server.call(KIND, key, "AddNodes", ClusterId=cluster, Count=1)
    task_id = str(body["TaskId"])
    kill_during(server, key, cluster, task_id, "join-nodes", TaskType.ADD_COMPUTES)
    task = wait_task(server, key, cluster, task_id)
    assert task["Status"] == "Success", task
    nodes = listed(server, key, cluster)
    assert nodes["compute2"]["Status"] == "running"
    assert nodes["compute2"]["IpAddress"] == store(home).load(cluster).node("compute2").address
    assert netns_exists(home, cluster, "compute2")
    slurm = slurm_nodes(home, cluster)
    assert sorted(slurm) == ["compute0", "compute1", "compute2"]
    assert slurm["compute2"].is_registered


def test_stop_and_start_nodes(server: LiveServer, key: dict[str, str], cluster: str, home: Path) -> None:
    nodes = listed(server, key, cluster)
    body = server.call(KIND, key, "StopNodes", ClusterId=cluster, Instance=instances(nodes, "compute0"))
    assert wait_task(server, key, cluster, str(body["TaskId"]))["Status"] == "Success"
    assert listed(server, key, cluster)["compute0"]["Status"] == "stopped"
    assert slurmd_pid(home, cluster, "compute0") is None
    assert (
        slurm_nodes(home, cluster)["compute0"].is_drained
        or "DOWN" in slurm_nodes(home, cluster)["compute0"].states
    )
    body = server.call(KIND, key, "StartNodes", ClusterId=cluster, Instance=instances(nodes, "compute0"))
    assert wait_task(server, key, cluster, str(body["TaskId"]))["Status"] == "Success"
    assert listed(server, key, cluster)["compute0"]["Status"] == "running"
    assert slurmd_pid(home, cluster, "compute0") is not None
    assert slurm_nodes(home, cluster)["compute0"].is_registered


def test_reset_nodes_starts_a_fresh_slurmd(
    server: LiveServer, key: dict[str, str], cluster: str, home: Path
) -> None:
    before = slurmd_pid(home, cluster, "compute1")
    nodes = listed(server, key, cluster)
    body = server.call(KIND, key, "ResetNodes", ClusterId=cluster, Instance=instances(nodes, "compute1"))
    assert wait_task(server, key, cluster, str(body["TaskId"]))["Status"] == "Success"
    after = slurmd_pid(home, cluster, "compute1")
    assert after is not None
    assert after != before
    assert listed(server, key, cluster)["compute1"]["Status"] == "running"


def test_a_slurmd_killed_by_hand_is_seen_down(
    server: LiveServer, key: dict[str, str], cluster: str, home: Path
) -> None:
    pid = slurmd_pid(home, cluster, "compute1")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)

    def down() -> bool:
        node = listed(server, key, cluster)["compute1"]
        return (node["Status"], node["StateInSched"]) == ("exception", "down")

    poll(down, 30, "compute1 seen down")
    nodes = listed(server, key, cluster)
    body = server.call(KIND, key, "ResetNodes", ClusterId=cluster, Instance=instances(nodes, "compute1"))
    assert wait_task(server, key, cluster, str(body["TaskId"]))["Status"] == "Success"
    assert listed(server, key, cluster)["compute1"]["Status"] == "running"


def daemon_runs(pid_file: Path, name: bytes) -> bool:
    try:
        pid = int(pid_file.read_text())
        return name in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ValueError):
        return False


def test_stop_and_start_the_cluster(
    server: LiveServer, key: dict[str, str], cluster: str, home: Path
) -> None:
    """StopCluster stops every daemon (namespaces stay); StartCluster brings them back, registered."""
    paths = store(home).paths(cluster)
    body = server.call(KIND, key, "StopCluster", ClusterId=cluster)
    assert wait_task(server, key, cluster, str(body["TaskId"]))["Status"] == "Success"
    assert not daemon_runs(paths.slurmctld_pid, b"slurmctld")
    assert [h for h in ("compute0", "compute1", "compute2") if slurmd_pid(home, cluster, h)] == []
    assert {n["Status"] for n in listed(server, key, cluster).values()} == {"stopped"}
    assert netns_exists(home, cluster, "compute0")
    body = server.call(KIND, key, "StartCluster", ClusterId=cluster)
    assert wait_task(server, key, cluster, str(body["TaskId"]))["Status"] == "Success"
    assert daemon_runs(paths.slurmctld_pid, b"slurmctld")
    assert {n["Status"] for n in listed(server, key, cluster).values()} == {"running"}
    slurm = slurm_nodes(home, cluster)
    assert all(slurm[h].is_registered for h in ("compute0", "compute1", "compute2"))


def test_delete_nodes_survives_a_killed_worker(
    server: LiveServer, key: dict[str, str], cluster: str, home: Path
) -> None:
    nodes = listed(server, key, cluster)
    body = server.call(KIND, key, "DeleteNodes", ClusterId=cluster, Instance=instances(nodes, "compute2"))
    task_id = str(body["TaskId"])
    kill_during(server, key, cluster, task_id, "release-nodes", TaskType.DELETE_COMPUTES)
    assert wait_task(server, key, cluster, task_id)["Status"] == "Success"
    assert sorted(listed(server, key, cluster)) == ["compute0", "compute1", "login0", "manager0"]
    assert not netns_exists(home, cluster, "compute2")
    assert sorted(slurm_nodes(home, cluster)) == ["compute0", "compute1"]


def test_after_a_reboot_the_restarted_worker_brings_the_cluster_back(
    server: LiveServer, key: dict[str, str], cluster: str, home: Path
) -> None:
    """A reboot, as the machine sees it: no namespace, veth, bridge, mount or daemon of the cluster left,
    only its record. The restarted worker's first reconciler round rebuilds and starts it."""
    server.stop()
    swept = cleanup.sweep(PREFIX, home)
    assert swept.namespaces
    assert not cleanup.find(PREFIX, home)
    server.start()

    def back() -> bool:
        try:
            slurm = slurm_nodes(home, cluster)
        except subprocess.CalledProcessError:  # the login namespace is not back yet
            return False
        return all(h in slurm and slurm[h].is_registered for h in ("compute0", "compute1"))

    poll(back, 120, "the cluster back after the reboot")
    assert {n["Status"] for n in listed(server, key, cluster).values()} == {"running"}


def test_delete_cluster_leaves_nothing_behind(
    server: LiveServer, key: dict[str, str], cluster: str, home: Path
) -> None:
    root = store(home).paths(cluster).root
    body = server.call(KIND, key, "DeleteCluster", ClusterId=cluster)
    assert wait_task(server, key, cluster, str(body["TaskId"]))["Status"] == "Success"
    assert_nothing_left(PREFIX, cluster, root)
