"""What the engine tells a provider about nodes, and what the provider confirms back.

Every call of the contract (providers/base.py) is a token-keyed "make it so": the token is the task's
(TaskId, step), a repeated token is the same call, and the provider answers what it did, per node.
The engine writes the effect to the store only after this answer, outside any transaction of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class NodeRef:
    """A node as the store knows it: its instance id, host name, role and the address it holds now."""

    instance_id: str
    hostname: str
    role: str
    ip: str = ""


@dataclass(frozen=True, slots=True)
class NodesOutcome:
    """Per node: done (with the address it has now) or failed (with the reason)."""

    ready: dict[str, str] = field(default_factory=dict)  # instance id -> IP
    failed: dict[str, str] = field(default_factory=dict)  # instance id -> reason

    @classmethod
    def all_ready(cls, nodes: list[NodeRef]) -> NodesOutcome:
        return cls({n.instance_id: n.ip for n in nodes}, {})


@dataclass(frozen=True, slots=True)
class NodeState:
    """A node as the provider observes it now: `status` is a NodeStatus value (running, stopped,
    exception), `sched` its state in the scheduler as ListNodes shows it (idle, alloc, drain, down)."""

    hostname: str
    status: str
    sched: str = ""
