"""LocalProvider's pure parts: ListNodes' Status and StateInSched from an observation of the machine."""

from __future__ import annotations

import pytest

from hpcplane.providers.local.observe import NodeObservation
from hpcplane.providers.local.provider import node_state
from hpcplane.providers.local.records import Desired, Role
from hpcplane.providers.local.slurmstate import SlurmNode
from hpcplane.providers.nodes import NodeState


def seen(
    role: Role, desired: Desired, running: bool, *states: str, hostname: str = "compute0"
) -> NodeObservation:
    slurm = SlurmNode(hostname, "10.247.0.3", frozenset(states), "") if states else None
    return NodeObservation(hostname, role, "10.247.0.3", desired, running, slurm)


@pytest.mark.parametrize(
    ("observed", "expected"),
    [
        (seen("compute", "running", True, "IDLE"), ("running", "idle")),
        (seen("compute", "running", True, "ALLOCATED"), ("running", "alloc")),
        (seen("compute", "running", True, "MIXED"), ("running", "alloc")),
        # A slurmd killed by hand: down at once, before Slurm's own timeout says so.
        (seen("compute", "running", False, "IDLE"), ("exception", "down")),
        (seen("compute", "running", True, "DOWN", "NOT_RESPONDING"), ("exception", "down")),
        (seen("compute", "running", True), ("exception", "down")),  # unknown to slurmctld
        # Stopped on purpose (StopNodes): stopped, not an exception.
        (seen("compute", "stopped", False, "IDLE", "DRAIN"), ("stopped", "down")),
        (seen("compute", "running", True, "IDLE", "DRAIN"), ("stopped", "drain")),
        (seen("manager", "running", True, hostname="manager0"), ("running", "")),
        (seen("manager", "running", False, hostname="manager0"), ("exception", "")),
    ],
)
def test_node_state_from_what_the_machine_says(observed: NodeObservation, expected: tuple[str, str]) -> None:
    assert node_state(observed) == NodeState(observed.hostname, *expected)
