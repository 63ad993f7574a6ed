"""slurm.conf and cgroup.conf of a local cluster, as pure functions of its record and paths."""

from __future__ import annotations

from hpcplane.providers.local.records import ClusterPaths, ClusterRecord

# Settings known to work on a hybrid cgroup layout with Debian's Slurm 22.05: autodetection of the
# cgroup version fails there, so it is fixed to v1; processes are tracked without cgroups.
FIXED = {
    "AuthType": "auth/munge",
    "CredType": "cred/munge",
    "SlurmUser": "slurm",
    "ProctrackType": "proctrack/linuxproc",
    "TaskPlugin": "task/none",
    "JobAcctGatherType": "jobacct_gather/none",
    "MpiDefault": "none",
    "SchedulerType": "sched/backfill",
    "SelectType": "select/cons_tres",
    "SelectTypeParameters": "CR_Core",
    "ReturnToService": "2",
    "SlurmdTimeout": "20",
    "MinJobAge": "600",
}

PLACEHOLDER = "placeholder0"


def slurm_conf(record: ClusterRecord, paths: ClusterPaths) -> str:
    """The whole slurm.conf: the controller on the manager node, every compute node, one partition."""
    manager = record.by_role("manager")[0]
    lines = [
        "# Written by hpcplane for this cluster; rewritten on every change of its nodes.",
        f"ClusterName={cluster_name(record.cluster_id)}",
        f"SlurmctldHost={manager.hostname}({manager.address})",
        f"AuthInfo=socket={paths.munge_socket}",
        f"StateSaveLocation={paths.state}",
        f"SlurmdSpoolDir={paths.spool_root}/%n",
        f"SlurmctldPidFile={paths.slurmctld_pid}",
        f"SlurmdPidFile={paths.run}/slurmd-%n.pid",
        f"SlurmctldLogFile={paths.log}/slurmctld.log",
        f"SlurmdLogFile={paths.log}/slurmd-%n.log",
    ]
    lines += [f"{key}={value}" for key, value in FIXED.items()]
    computes = record.by_role("compute")
    for node in computes:
        lines.append(
            f"NodeName={node.hostname} NodeAddr={node.address} CPUs={node.cpus} "
            f"RealMemory={node.memory_mb} State=UNKNOWN"
        )
    if not computes:
        # slurmctld 22.05 starts only with a node and a partition: until AddNodes, a FUTURE one
        # (never expected to answer) holds the partition's place.
        lines.append(f"NodeName={PLACEHOLDER} NodeAddr=127.0.0.1 CPUs=1 State=FUTURE")
    members = ",".join(node.hostname for node in computes) or PLACEHOLDER
    lines.append(f"PartitionName={record.partition} Nodes={members} Default=YES MaxTime=INFINITE State=UP")
    return "\n".join(lines) + "\n"


def cgroup_conf() -> str:
    """cgroup.conf: the version pinned, since slurmd's autodetection fails on hybrid layouts."""
    return "CgroupPlugin=cgroup/v1\n"


def cluster_name(cluster_id: str) -> str:
    """Slurm's ClusterName: lowercase, at most 40 characters, letters, digits and _ only."""
    cleaned = "".join(c if c.isalnum() else "_" for c in cluster_id.lower())
    return cleaned[:40] or "cluster"
