"""The local provider builds real Slurm clusters: nodes are namespaces running slurmd, jobs really run.

One cluster (two compute nodes) is shared by the tests of this module, each of which first makes
the state it needs; a second cluster is built and destroyed to check that nothing is left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcplane.domain.errors import IdempotentParameterMismatch, InvalidParams, ProviderFailed
from hpcplane.providers.local.facade import LocalClusters
from hpcplane.providers.local.slurmstate import SlurmJob
from tests.support.localslurm import (
    PREFIX,
    assert_nothing_left,
    clusters,
    local_home,
    new_cluster_id,
    node_shell,
    poll,
    submission,
    token,
)

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(300)]
__all__ = ["clusters", "local_home"]


@pytest.fixture(scope="module")
def cluster(clusters: LocalClusters) -> Iterator[str]:
    """A running cluster with compute0 and compute1, destroyed at the end even if a test failed."""
    cluster_id = new_cluster_id()
    try:
        clusters.ensure_controller(token(), cluster_id)
        result = clusters.ensure_nodes(token(), cluster_id, ["compute0", "compute1"])
        assert result.failed == {}
        yield cluster_id
    finally:
        clusters.destroy(cluster_id)


def _ready(clusters: LocalClusters, cluster_id: str, hostname: str) -> bool:
    return any(o.hostname == hostname and o.is_ready for o in clusters.observe_nodes(cluster_id))


def _slurmd_pid(clusters: LocalClusters, cluster_id: str, hostname: str) -> int | None:
    paths = clusters.store.paths(cluster_id)
    try:
        return int(paths.slurmd_pid(hostname).read_text())
    except FileNotFoundError:
        return None


def _finished(clusters: LocalClusters, cluster_id: str, job_id: str) -> SlurmJob:
    poll(lambda: all(j.is_finished for j in clusters.observe_jobs(cluster_id, job_id)), 60, f"job {job_id}")
    return clusters.observe_jobs(cluster_id, job_id)[0]


def test_a_cluster_of_two_compute_nodes_is_up(clusters: LocalClusters, cluster: str) -> None:
    """Manager, login and two compute nodes, each in its namespace with its address; slurmd registered."""
    observed = {o.hostname: o for o in clusters.observe_nodes(cluster)}
    assert sorted(observed) == ["compute0", "compute1", "login", "manager"]
    assert all(o.is_ready for o in observed.values())
    assert {o.slurm.name for o in observed.values() if o.slurm} == {"compute0", "compute1"}
    record = clusters.record(cluster)
    for node in record.nodes:
        out = subprocess.run(
            ["ip", "-n", node.netns, "-4", "-o", "addr", "show", "eth0"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert f"{node.address}/24" in out.stdout


def test_node_shell_runs_in_the_nodes_namespace(local_home: Path, cluster: str) -> None:
    """`hpcplane node-shell CLUSTER HOSTNAME cmd` runs cmd with the node's host name and Slurm config."""
    out = node_shell(local_home, cluster, "compute1", "sh", "-c", "hostname; scontrol ping")
    lines = out.splitlines()
    assert lines[0] == "compute1"
    assert "is UP" in out


def test_a_two_node_job_logs_both_host_names_and_never_runs_as_root(
    clusters: LocalClusters, cluster: str
) -> None:
    """SubmitJob Node=2 `srun hostname` as a cluster user: the log holds both compute nodes' names."""
    account = clusters.ensure_user(token(), cluster, "alice")
    request = submission(cluster, "srun hostname; id -u", node=2)
    job_id = clusters.submit_job(token(), request)
    job = _finished(clusters, cluster, job_id)
    assert job.state == "COMPLETED"
    assert set(job.node_list) == {"compute0", "compute1"}
    assert job.user == account
    output = clusters.job_output(cluster, job_id).stdout.split()
    assert sorted(output[:2]) == ["compute0", "compute1"]
    assert output[2] != "0"


def test_a_job_sees_its_variables_and_none_of_the_servers_environment(
    clusters: LocalClusters, cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Variables reach the job; the server's own environment (which may hold secrets) never does."""
    monkeypatch.setenv("HPCPLANE_SECRET_KEY", "must-not-leak")
    clusters.ensure_user(token(), cluster, "alice")
    request = submission(cluster, "env", variables='{"ALPHA": "one"}')
    job_id = clusters.submit_job(token(), request)
    assert _finished(clusters, cluster, job_id).state == "COMPLETED"
    environment = clusters.job_output(cluster, job_id).stdout.splitlines()
    assert "ALPHA=one" in environment
    assert not [line for line in environment if "must-not-leak" in line or line.startswith("HPCPLANE_")]


def test_add_a_node(clusters: LocalClusters, cluster: str) -> None:
    """AddNodes: a third namespace, slurm.conf rewritten, slurmctld restarted, slurmd registered."""
    result = clusters.ensure_nodes(token(), cluster, ["compute2"])
    assert result.ready == ["compute2"]
    assert result.failed == {}
    assert all(_ready(clusters, cluster, h) for h in ("compute0", "compute1", "compute2"))
    assert "compute2" in clusters.store.paths(cluster).slurm_conf.read_text()


def test_stop_and_start_a_node(clusters: LocalClusters, cluster: str) -> None:
    """StopNodes drains and stops slurmd (nothing left running in the node); StartNodes brings it back."""
    clusters.ensure_node_stopped(token(), cluster, "compute1")
    (node,) = [o for o in clusters.observe_nodes(cluster) if o.hostname == "compute1"]
    assert node.is_stopped
    assert node.slurm is not None
    assert "DRAIN" in node.slurm.states
    netns = clusters.record(cluster).node("compute1").netns
    assert (
        subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True, check=True).stdout
        == ""
    )
    result = clusters.ensure_node_running(token(), cluster, "compute1")
    assert result.ready == ["compute1"]
    assert _ready(clusters, cluster, "compute1")


def test_reset_a_node_wipes_its_state_once_per_token(clusters: LocalClusters, cluster: str) -> None:
    """ResetNodes: a new slurmd on an empty spool; the same token again does nothing more."""
    spool = clusters.store.paths(cluster).spool("compute0")
    (spool / "marker").write_text("old state")
    before = _slurmd_pid(clusters, cluster, "compute0")
    reset = token()
    assert clusters.reset_node(reset, cluster, "compute0").ready == ["compute0"]
    after = _slurmd_pid(clusters, cluster, "compute0")
    assert after != before
    assert not (spool / "marker").exists()
    clusters.reset_node(reset, cluster, "compute0")
    assert _slurmd_pid(clusters, cluster, "compute0") == after


def test_every_operation_called_twice_with_its_token_works_once(
    clusters: LocalClusters, cluster: str
) -> None:
    """The same token returns the first result without acting: no second job, no restart."""
    controller = clusters.store.paths(cluster).slurmctld_pid.read_text()
    add = token()
    first = clusters.ensure_nodes(add, cluster, ["compute0"])
    assert clusters.ensure_nodes(add, cluster, ["compute0"]) == first
    assert clusters.store.paths(cluster).slurmctld_pid.read_text() == controller
    user = token()
    assert clusters.ensure_user(user, cluster, "bob") == clusters.ensure_user(user, cluster, "bob")
    submit = token()
    request = submission(cluster, "true", "bob")
    job_id = clusters.submit_job(submit, request)
    assert clusters.submit_job(submit, request) == job_id
    assert [j.job_id for j in clusters.observe_jobs(cluster) if j.comment == f"hpcplane:{submit}"] == [job_id]
    stop = token()
    clusters.ensure_node_stopped(stop, cluster, "compute1")
    clusters.ensure_node_running(token(), cluster, "compute1")
    clusters.ensure_node_stopped(stop, cluster, "compute1")
    assert _ready(clusters, cluster, "compute1")
    with pytest.raises(IdempotentParameterMismatch):
        clusters.ensure_user(submit, cluster, "bob")
    controller_token = next(
        t for t, d in clusters.record(cluster).tokens.items() if d["op"] == "ensure_controller"
    )
    assert clusters.ensure_controller(controller_token, cluster) == ["manager", "login"]
    assert clusters.store.paths(cluster).slurmctld_pid.read_text() == controller


def test_a_submit_retried_after_a_crash_finds_its_job(clusters: LocalClusters, cluster: str) -> None:
    """A worker killed between sbatch and saving the token: the retry finds the job by its token."""
    clusters.ensure_user(token(), cluster, "alice")
    submit = token()
    request = submission(cluster, "sleep 30")
    job_id = clusters.submit_job(submit, request)
    record = clusters.record(cluster)
    del record.tokens[submit]  # what the record holds when the crash came before it was saved
    clusters.store.save(record)
    assert clusters.submit_job(submit, request) == job_id
    assert [j.job_id for j in clusters.observe_jobs(cluster) if j.comment == f"hpcplane:{submit}"] == [job_id]
    clusters.cancel_job(token(), cluster, job_id)


def test_requeue_and_cancel_a_running_job(clusters: LocalClusters, cluster: str) -> None:
    """RerunJobs requeues (once per token); StopJobs scancels."""
    clusters.ensure_user(token(), cluster, "alice")
    job_id = clusters.submit_job(token(), submission(cluster, "sleep 300"))
    poll(lambda: clusters.observe_jobs(cluster, job_id)[0].is_running, 60, "the job to run")
    clusters.requeue_job(token(), cluster, job_id)
    poll(lambda: clusters.observe_jobs(cluster, job_id)[0].restarts >= 1, 60, "the requeue")
    cancel = token()
    clusters.cancel_job(cancel, cluster, job_id)
    clusters.cancel_job(cancel, cluster, job_id)
    poll(lambda: clusters.observe_jobs(cluster, job_id)[0].state == "CANCELLED", 30, "the cancel")


def test_a_slurmd_killed_by_hand_is_seen_as_down(clusters: LocalClusters, cluster: str) -> None:
    """kill -9 of a slurmd: the node's observation is down at once; StartNodes brings it back."""
    assert _ready(clusters, cluster, "compute0")
    pid = _slurmd_pid(clusters, cluster, "compute0")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    poll(
        lambda: any(o.hostname == "compute0" and o.is_down for o in clusters.observe_nodes(cluster)),
        10,
        "compute0 seen as down",
    )
    assert clusters.ensure_node_running(token(), cluster, "compute0").ready == ["compute0"]


def test_stop_and_start_the_cluster(clusters: LocalClusters, cluster: str) -> None:
    """StopCluster stops every daemon; StartCluster (the path after a reboot) brings back what was running."""
    clusters.ensure_cluster_stopped(token(), cluster)
    assert all(o.is_stopped for o in clusters.observe_nodes(cluster) if o.role != "login")
    result = clusters.ensure_cluster_running(token(), cluster)
    assert result.failed == {}
    assert all(o.is_ready for o in clusters.observe_nodes(cluster))


def test_start_cluster_after_a_reboot_brings_it_back(clusters: LocalClusters, cluster: str) -> None:
    """What a reboot leaves (no process, namespace, bridge or UTS mount; stale pid files and sockets):
    StartCluster rebuilds the nodes from the record, and a job runs on both compute nodes again."""
    record = clusters.record(cluster)
    paths = clusters.store.paths(cluster)
    for node in record.nodes:
        pids = subprocess.run(["ip", "netns", "pids", node.netns], capture_output=True, text=True, check=True)
        for pid in pids.stdout.split():
            os.kill(int(pid), signal.SIGKILL)
    poll(
        lambda: all(not o.daemon_running for o in clusters.observe_nodes(cluster) if o.role != "login"),
        10,
        "daemons gone",
    )
    for node in record.nodes:
        subprocess.run(["ip", "netns", "del", node.netns], check=True)
        subprocess.run(["umount", str(paths.uts(node.hostname))], check=True)
    subprocess.run(["ip", "link", "del", record.bridge], check=True)
    assert paths.slurmctld_pid.exists()
    assert clusters.ensure_cluster_running(token(), cluster).failed == {}
    assert all(o.is_ready for o in clusters.observe_nodes(cluster))
    clusters.ensure_user(token(), cluster, "alice")
    job_id = clusters.submit_job(token(), submission(cluster, "srun hostname", node=2))
    assert _finished(clusters, cluster, job_id).state == "COMPLETED"
    assert sorted(clusters.job_output(cluster, job_id).stdout.split()) == ["compute0", "compute1"]


def test_a_node_left_half_built_is_rebuilt(clusters: LocalClusters, cluster: str) -> None:
    """A node whose veth pair is gone (a crash while building it): StartNodes builds its network again."""
    node = clusters.record(cluster).node("compute1")
    subprocess.run(["ip", "-n", node.netns, "link", "del", "eth0"], check=True)
    assert not Path(f"/sys/class/net/{node.veth}").exists()
    clusters.ensure_node_stopped(token(), cluster, "compute1")
    assert clusters.ensure_node_running(token(), cluster, "compute1").ready == ["compute1"]
    assert Path(f"/sys/class/net/{node.veth}").exists()


def test_delete_a_node(clusters: LocalClusters, cluster: str) -> None:
    """DeleteNodes: out of Slurm, its namespace, veth, UTS mount and spool gone."""
    clusters.ensure_nodes(token(), cluster, ["compute2"])
    node = clusters.record(cluster).node("compute2")
    paths = clusters.store.paths(cluster)
    clusters.ensure_nodes_absent(token(), cluster, ["compute2"])
    assert clusters.record(cluster).find("compute2") is None
    assert not Path(f"/run/netns/{node.netns}").exists()
    assert not Path(f"/sys/class/net/{node.veth}").exists()
    assert not paths.uts("compute2").exists()
    assert not paths.spool("compute2").exists()
    assert "compute2" not in paths.slurm_conf.read_text()
    assert "compute2" not in {o.slurm.name for o in clusters.observe_nodes(cluster) if o.slurm}
    assert all(_ready(clusters, cluster, h) for h in ("compute0", "compute1"))


def test_add_and_delete_retried_after_a_crash_finish_in_slurm(clusters: LocalClusters, cluster: str) -> None:
    """A crash after the record was saved but before slurmctld reloaded: the retry still gets Slurm there."""
    add = token()
    record = clusters.record(cluster)
    clusters._add_record_node(record, "compute3", "compute")  # what a crashed AddNodes left recorded
    clusters.store.save(record)
    assert clusters.ensure_nodes(add, cluster, ["compute3"]).ready == ["compute3"]
    assert "compute3" in {o.slurm.name for o in clusters.observe_nodes(cluster) if o.slurm}
    record = clusters.record(cluster)
    node = record.node("compute3")
    machine_paths = clusters.store.paths(cluster)
    subprocess.run(["kill", machine_paths.slurmd_pid("compute3").read_text().strip()], check=True)
    record.nodes.remove(node)  # a crashed DeleteNodes: the record already without it, Slurm not yet
    clusters.store.save(record)
    clusters.ensure_nodes_absent(token(), cluster, ["compute3"])
    assert "compute3" not in {o.slurm.name for o in clusters.observe_nodes(cluster) if o.slurm}
    record.nodes.append(node)
    clusters.store.save(record)
    clusters.ensure_nodes_absent(token(), cluster, ["compute3"])
    assert not Path(f"/run/netns/{node.netns}").exists()


def test_what_is_not_a_compute_node_or_a_job_is_refused(clusters: LocalClusters, cluster: str) -> None:
    """Node operations refuse the manager and login nodes; a job Slurm does not know fails to cancel."""
    for call in (clusters.ensure_node_stopped, clusters.reset_node):
        with pytest.raises(InvalidParams) as raised:
            call(token(), cluster, "manager")
        assert raised.value.fields["name"] == "Hostname"
    with pytest.raises(InvalidParams):
        clusters.ensure_nodes(token(), cluster, ["login"])
    for job_call in (clusters.cancel_job, clusters.requeue_job):
        with pytest.raises(InvalidParams) as raised:
            job_call(token(), cluster, "999999")
        assert raised.value.fields["name"] == "JobId"
    assert all(o.is_ready for o in clusters.observe_nodes(cluster))


def test_an_account_the_cluster_did_not_create_is_never_adopted(
    clusters: LocalClusters, cluster: str
) -> None:
    """AddUsers of a name whose machine account exists but is not the cluster's: refused, left alone."""
    account = clusters.record(cluster).names.user("mallory")
    subprocess.run(["useradd", "--no-create-home", account], check=True)
    try:
        with pytest.raises(ProviderFailed, match="exists already"):
            clusters.ensure_user(token(), cluster, "mallory")
        assert "mallory" not in clusters.record(cluster).users
    finally:
        subprocess.run(["userdel", account], check=True)


def test_destroy_leaves_nothing_behind(clusters: LocalClusters) -> None:
    """DeleteCluster: no process, namespace, veth, bridge, mount, account or file of the cluster left."""
    cluster_id = new_cluster_id()
    try:
        clusters.ensure_controller(token(), cluster_id)
        clusters.ensure_nodes(token(), cluster_id, ["compute0"])
        clusters.ensure_user(token(), cluster_id, "carol")
        job_id = clusters.submit_job(token(), submission(cluster_id, "sleep 300", "carol"))
        poll(lambda: clusters.observe_jobs(cluster_id, job_id)[0].is_running, 60, "the job to run")
        record = clusters.record(cluster_id)
        root = clusters.store.paths(cluster_id).root
        pids = [
            int(p)
            for node in record.nodes
            for p in subprocess.run(
                ["ip", "netns", "pids", node.netns], capture_output=True, text=True, check=True
            ).stdout.split()
        ]
        assert pids
    finally:
        clusters.destroy(cluster_id)
    assert_nothing_left(PREFIX, cluster_id, root)
    assert [p for p in pids if Path(f"/proc/{p}").exists() and _live(p)] == []
    clusters.destroy(cluster_id)


def _live(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
