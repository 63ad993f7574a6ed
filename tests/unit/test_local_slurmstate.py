"""Slurm's `scontrol show node|job -o` lines parsed into value objects with predicates."""

from __future__ import annotations

import pytest

from hpcplane.providers.local.slurmstate import expand, parse_jobs, parse_nodes, parse_record

NODE = (
    "NodeName=compute1 Arch=x86_64 CoresPerSocket=1 CPUAlloc=0 CPUTot=2 NodeAddr=10.247.0.4 "
    "NodeHostName=compute1 Version=22.05.8 OS=Linux 6.1.0 #1 SMP PREEMPT_DYNAMIC @0 RealMemory=1000 "
    "State={state} ThreadsPerCore=1 Partitions=comp Reason=Not responding [slurm@2026-12-01T22:16:35]"
)
JOB = (
    "JobId=7 JobName=wrap UserId=hpabc123-alice(1001) GroupId=hpabc123-alice(1001) JobState=COMPLETED "
    "Reason=None ExitCode=0:0 Partition=comp AllocNode:Sid=login:7646 NodeList=compute[0-1] "
    "NtasksPerN:B:S:C=0:0:*:* TRES=cpu=2,node=2,billing=2 Comment=hpcplane:T-1:2 "
    "StdErr=/h/out-7.log StdIn=/dev/null StdOut=/h/out-7.log Power="
)


def test_values_with_spaces_stay_whole() -> None:
    """OS and Reason hold spaces; keys with colons and values with `=` are kept as printed."""
    fields = parse_record(NODE.format(state="IDLE"))
    assert fields["OS"] == "Linux 6.1.0 #1 SMP PREEMPT_DYNAMIC @0"
    assert fields["Reason"] == "Not responding [slurm@2026-12-01T22:16:35]"
    job = parse_record(JOB)
    assert job["AllocNode:Sid"] == "login:7646"
    assert job["TRES"] == "cpu=2,node=2,billing=2"
    assert job["Power"] == ""


@pytest.mark.parametrize(
    ("state", "down", "drained", "draining", "idle", "busy", "registered"),
    [
        ("IDLE", False, False, False, True, False, True),
        ("MIXED", False, False, False, False, True, True),
        ("ALLOCATED+DRAIN", False, False, True, False, True, True),
        ("IDLE+DRAIN", False, True, False, False, False, False),
        ("DOWN+NOT_RESPONDING", True, False, False, False, False, False),
        ("DOWN+DRAIN+NOT_RESPONDING", True, True, False, False, False, False),
        ("IDLE*", True, False, False, False, False, False),
        ("UNKNOWN", False, False, False, False, False, False),
    ],
)
def test_node_predicates(
    state: str, down: bool, drained: bool, draining: bool, idle: bool, busy: bool, registered: bool
) -> None:
    """Base state and flags answer the reconciler's questions, as ParallelCluster's SlurmNode does."""
    node = parse_nodes(NODE.format(state=state))["compute1"]
    assert node.address == "10.247.0.4"
    assert (node.is_down, node.is_drained, node.is_draining) == (down, drained, draining)
    assert (node.is_idle, node.is_running_job, node.is_registered) == (idle, busy, registered)


def test_a_job_with_its_node_list_and_output() -> None:
    """NodeList is expanded; the user is the account name; the token comment is kept."""
    (job,) = parse_jobs(JOB)
    assert job.job_id == "7"
    assert job.user == "hpabc123-alice"
    assert job.node_list == ("compute0", "compute1")
    assert job.stdout == "/h/out-7.log"
    assert job.comment == "hpcplane:T-1:2"
    assert job.is_finished
    assert not job.is_running


def test_no_jobs_is_an_empty_list() -> None:
    """scontrol's "No jobs in the system" has no fields."""
    assert parse_jobs("No jobs in the system\n") == []


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("(null)", []),
        ("", []),
        ("login", ["login"]),
        ("compute[0-2,5],x", ["compute0", "compute1", "compute2", "compute5", "x"]),
    ],
)
def test_host_lists(text: str, names: list[str]) -> None:
    """Slurm's bracket notation, and its empty forms."""
    assert expand(text) == names
