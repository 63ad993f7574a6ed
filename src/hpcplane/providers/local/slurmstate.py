"""Slurm's view of nodes and jobs, parsed from `scontrol show node|job -o` into small value objects."""

from __future__ import annotations

import re
from dataclasses import dataclass

import hostlist

_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_:/]*$")

# Base states and flags as `scontrol` prints them (slurm/src/common/slurm_protocol_defs.c).
BUSY = frozenset({"ALLOCATED", "MIXED", "COMPLETING"})
DOWN = frozenset({"DOWN", "NOT_RESPONDING", "FAIL", "INVALID_REG", "INVALID"})


def parse_record(line: str) -> dict[str, str]:
    """One `-o` line as key=value pairs; a token without `=` continues the previous value."""
    fields: dict[str, str] = {}
    last = ""
    for token in line.split():
        key, sep, value = token.partition("=")
        if sep and _KEY.match(key):
            fields[key] = value
            last = key
        elif last:
            fields[last] = f"{fields[last]} {token}"
    return fields


def parse_records(text: str) -> list[dict[str, str]]:
    return [parse_record(line) for line in text.splitlines() if "=" in line]


def expand(nodes: str) -> list[str]:
    """Slurm's host-list notation (`node[3-4],login`) as names; `(null)` and empty are none."""
    if nodes in ("", "(null)", "None"):
        return []
    return list(hostlist.expand_hostlist(nodes))


@dataclass(frozen=True, slots=True)
class SlurmNode:
    """A node as slurmctld sees it: its base state and flags, with the predicates a reconciler asks."""

    name: str
    address: str
    states: frozenset[str]
    reason: str

    @classmethod
    def parse(cls, fields: dict[str, str]) -> SlurmNode:
        # "IDLE+DRAIN", "DOWN*+NOT_RESPONDING": `*` is scontrol's own mark of a node not responding.
        raw = fields.get("State", "UNKNOWN")
        states = {part.rstrip("*~#!%$@^-") for part in raw.split("+") if part}
        if "*" in raw:
            states.add("NOT_RESPONDING")
        return cls(
            name=fields.get("NodeName", ""),
            address=fields.get("NodeAddr", ""),
            states=frozenset(states),
            reason=fields.get("Reason", ""),
        )

    @property
    def is_down(self) -> bool:
        return bool(self.states & DOWN)

    @property
    def is_drained(self) -> bool:
        """Drained and empty: DRAIN set and no job left on it."""
        return "DRAIN" in self.states and not self.is_running_job

    @property
    def is_draining(self) -> bool:
        return "DRAIN" in self.states and self.is_running_job

    @property
    def is_running_job(self) -> bool:
        return bool(self.states & BUSY)

    @property
    def is_idle(self) -> bool:
        return "IDLE" in self.states and not self.is_down and "DRAIN" not in self.states

    @property
    def is_registered(self) -> bool:
        """slurmd has registered and the node can take work (or is running it)."""
        return (self.is_idle or self.is_running_job) and not self.is_down and "UNKNOWN" not in self.states


def parse_nodes(text: str) -> dict[str, SlurmNode]:
    nodes = [SlurmNode.parse(fields) for fields in parse_records(text)]
    return {node.name: node for node in nodes if node.name}


@dataclass(frozen=True, slots=True)
class SlurmJob:
    """A job (or one task of an array) as slurmctld sees it."""

    job_id: str
    array_job_id: str
    array_task_id: str
    name: str
    user: str
    state: str
    reason: str
    node_list: tuple[str, ...]
    stdout: str
    stderr: str
    exit_code: str
    partition: str
    comment: str
    restarts: int

    @classmethod
    def parse(cls, fields: dict[str, str]) -> SlurmJob:
        return cls(
            job_id=fields.get("JobId", ""),
            array_job_id=fields.get("ArrayJobId", ""),
            array_task_id=fields.get("ArrayTaskId", ""),
            name=fields.get("JobName", ""),
            user=fields.get("UserId", "").split("(", 1)[0],
            state=fields.get("JobState", "UNKNOWN"),
            reason=fields.get("Reason", ""),
            node_list=tuple(expand(fields.get("NodeList", ""))),
            stdout=fields.get("StdOut", ""),
            stderr=fields.get("StdErr", ""),
            exit_code=fields.get("ExitCode", ""),
            partition=fields.get("Partition", ""),
            comment=fields.get("Comment", ""),
            restarts=int(fields.get("Restarts", "0") or "0"),
        )

    @property
    def is_finished(self) -> bool:
        return self.state in {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}

    @property
    def is_pending(self) -> bool:
        return self.state in {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED"}

    @property
    def is_running(self) -> bool:
        return self.state in {"RUNNING", "COMPLETING", "CONFIGURING"}


def parse_jobs(text: str) -> list[SlurmJob]:
    return [SlurmJob.parse(fields) for fields in parse_records(text) if "JobId" in fields]
