"""The provider interface: what a task step asks of the cloud."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import Connection

from hpcplane.domain.tasks import TaskType
from hpcplane.providers.faults import Fault


class Provider(Protocol):
    """Acts on instances. Every call carries an idempotency token made of (TaskId, step): a provider
    outside our database must treat a repeated token as the same call; the simulated one lives in
    our database and applies its effects in the step's own transaction, so they happen exactly once."""

    def call(self, conn: Connection, token: str, action: str, instance_ids: list[str]) -> None: ...

    def step_delay(self) -> float: ...

    def fault(self, task_type: TaskType) -> Fault: ...

    def node_fails(self, task_type: TaskType, hostname: str) -> bool: ...

    def capacity(self) -> int: ...
