"""slurm.conf, cgroup.conf, kernel object names and command lines of a local cluster (pure functions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcplane.domain.errors import InvalidParams
from hpcplane.providers.local import commands, slurmconf
from hpcplane.providers.local.core import node_memory_mb
from hpcplane.providers.local.records import (
    ClusterPaths,
    ClusterRecord,
    KernelNames,
    NodeRecord,
    Role,
    tag_of,
)


def _record(computes: int) -> ClusterRecord:
    names = KernelNames("hp", tag_of("ehpc-hz-abc"))
    record = ClusterRecord("ehpc-hz-abc", "hp", names.tag, "10.247.0.0/24", names.bridge)
    hosts: list[tuple[str, Role]] = [("manager", "manager"), ("login", "login")]
    hosts += [(f"compute{i}", "compute") for i in range(computes)]
    for slot, (hostname, role) in enumerate(hosts, start=1):
        record.nodes.append(
            NodeRecord(
                hostname, role, f"10.247.0.{slot}", slot, names.netns(hostname), names.veth(slot), cpus=2
            )
        )
    return record


def _lines(text: str) -> set[str]:
    return set(text.splitlines())


def test_slurm_conf_has_the_settings_known_to_work() -> None:
    """The controller on the manager's name and address, the plugins that work on hybrid cgroups."""
    paths = ClusterPaths(Path("/h/local"), "ehpc-hz-abc")
    lines = _lines(slurmconf.slurm_conf(_record(2), paths))
    assert {
        "SlurmctldHost=manager(10.247.0.1)",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "AuthType=auth/munge",
        "AuthInfo=socket=/h/local/ehpc-hz-abc/munge/munge.socket",
        "StateSaveLocation=/h/local/ehpc-hz-abc/slurm/state",
        "SlurmdSpoolDir=/h/local/ehpc-hz-abc/slurm/spool/%n",
        "SlurmdPidFile=/h/local/ehpc-hz-abc/run/slurmd-%n.pid",
        "ClusterName=ehpc_hz_abc",
    } <= lines


def test_every_compute_node_is_declared_and_in_the_partition() -> None:
    """Each compute node with its address; manager and login are no Slurm nodes."""
    text = slurmconf.slurm_conf(_record(2), ClusterPaths(Path("/h"), "ehpc-hz-abc"))
    assert "NodeName=compute0 NodeAddr=10.247.0.3 CPUs=2 RealMemory=1024 State=UNKNOWN" in text
    assert "NodeName=compute1 NodeAddr=10.247.0.4 CPUs=2 RealMemory=1024 State=UNKNOWN" in text
    assert "PartitionName=comp Nodes=compute0,compute1 Default=YES MaxTime=INFINITE State=UP" in text
    assert "NodeName=manager" not in text
    assert "FUTURE" not in text


def test_a_cluster_without_compute_nodes_holds_a_future_placeholder() -> None:
    """slurmctld needs a node and a partition to start: a FUTURE node stands in until AddNodes."""
    text = slurmconf.slurm_conf(_record(0), ClusterPaths(Path("/h"), "ehpc-hz-abc"))
    assert f"NodeName={slurmconf.PLACEHOLDER} NodeAddr=127.0.0.1 CPUs=1 State=FUTURE" in text
    assert f"PartitionName=comp Nodes={slurmconf.PLACEHOLDER} " in text


def test_cgroup_conf_pins_v1() -> None:
    """Autodetection fails on this kernel's hybrid layout: the plugin is fixed."""
    assert slurmconf.cgroup_conf() == "CgroupPlugin=cgroup/v1\n"


def test_kernel_names_fit_linux_limits_and_differ_per_cluster() -> None:
    """Interface names stay within 15 bytes; two clusters never share a name."""
    one, two = KernelNames("hp", tag_of("ehpc-a")), KernelNames("hp", tag_of("ehpc-b"))
    assert len(one.bridge) <= 15
    assert len(one.veth(254)) <= 15
    assert len(one.peer(254)) <= 15
    assert one.bridge != two.bridge
    assert one.user("alice") != two.user("alice")
    assert one.user("alice").startswith("hp")
    assert len(one.user("a" * 23)) <= 32


@pytest.mark.parametrize("name", ["root", "Alice", "a" * 24, "x;y", ""])
def test_user_names_outside_the_pattern_are_refused(name: str) -> None:
    """Only names that make a valid, prefixed Linux account are accepted ("root" gets the prefix)."""
    names = KernelNames("hp", "abcdef")
    if name == "root":
        assert names.user(name) == "hpabcdef-root"
        return
    with pytest.raises(InvalidParams) as raised:
        names.user(name)
    assert raised.value.fields["name"] == "UserName"


def test_a_node_is_a_namespace_with_a_veth_on_the_bridge() -> None:
    """The commands that build a node, in order: namespace, veth pair, bridge port, eth0 with its address."""
    record = _record(1)
    node = record.node("compute0")
    argvs = commands.node_network(record.names, node, 24)
    assert argvs[0] == ["ip", "netns", "add", node.netns]
    assert ["ip", "link", "set", node.veth, "master", record.bridge, "up"] in argvs
    assert ["ip", "-n", node.netns, "addr", "add", "10.247.0.3/24", "dev", "eth0"] in argvs
    assert argvs[-1] == ["ip", "-n", node.netns, "link", "set", "lo", "up"]


def test_daemons_run_inside_the_node_with_its_host_name() -> None:
    """nsenter joins the node's network and UTS namespaces; slurmd -c is the clean start of ResetNodes."""
    record = _record(1)
    paths = ClusterPaths(Path("/h"), "ehpc-hz-abc")
    argv = commands.in_node(paths, record.node("compute0"), commands.slurmd(paths, clean=True))
    assert argv == [
        "nsenter",
        f"--net=/run/netns/{record.node('compute0').netns}",
        "--uts=/h/ehpc-hz-abc/ns/compute0.uts",
        "--",
        "slurmd",
        "-f",
        "/h/ehpc-hz-abc/etc/slurm.conf",
        "-c",
    ]
    assert commands.munged(paths)[:4] == ["runuser", "-u", "munge", "--"]
    assert "--socket=/h/ehpc-hz-abc/munge/munge.socket" in commands.munged(paths)


def test_the_record_round_trips_through_json() -> None:
    """What is saved under HPCPLANE_HOME is what is loaded back."""
    record = _record(2)
    record.users["alice"] = record.names.user("alice")
    record.tokens["t"] = {"op": "ensure_user", "result": "x"}
    assert ClusterRecord.from_json(record.to_json()) == record


def test_a_node_declares_no_more_memory_than_half_the_machine() -> None:
    """1024 MB, or half of MemTotal on a small machine: slurmd marks a node declaring more INVALID."""
    assert node_memory_mb("MemTotal:       24730000 kB\n") == 1024
    assert node_memory_mb("MemTotal:         1000000 kB\n") == 488
