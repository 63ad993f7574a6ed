"""Tasks: the record of an asynchronous operation, as ListTasks shows it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class TaskStatus(enum.StrEnum):
    """The four statuses ListTasks reports."""

    PROCESSING = "Processing"
    SUCCESS = "Success"
    FAILED = "Failed"
    PARTIAL_FAIL = "PartialFail"

    @property
    def terminal(self) -> bool:
        """True once the task has ended."""
        return self is not TaskStatus.PROCESSING


class TaskType(enum.StrEnum):
    """Task types exactly as the SDK's ListTasks model documents them."""

    CREATE_CLUSTER = "CreateCluster"
    START_CLUSTER = "StartCluster"
    STOP_CLUSTER = "StopCluster"
    DELETE_CLUSTER = "DeleteCluster"
    ADD_COMPUTES = "AddComputes"
    START_COMPUTES = "StartComputes"
    STOP_COMPUTES = "StopComputes"
    RESET_COMPUTE = "ResetCompute"
    DELETE_COMPUTES = "DeleteComputes"
    RECOVER_CLUSTER = "RecoverCluster"


# The API action that starts each type of task (ListClusterLogs' Operation).
OPERATION_NAMES: dict[TaskType, str] = {
    TaskType.CREATE_CLUSTER: "CreateCluster",
    TaskType.START_CLUSTER: "StartCluster",
    TaskType.STOP_CLUSTER: "StopCluster",
    TaskType.DELETE_CLUSTER: "DeleteCluster",
    TaskType.ADD_COMPUTES: "AddNodes",
    TaskType.START_COMPUTES: "StartNodes",
    TaskType.STOP_COMPUTES: "StopNodes",
    TaskType.RESET_COMPUTE: "ResetNodes",
    TaskType.DELETE_COMPUTES: "DeleteNodes",
    TaskType.RECOVER_CLUSTER: "RecoverCluster",
}


# One task as ListTasks reads it on its hot path, lean: TaskView's fields but created_at, in that order,
# as stored (type and status their enums' values, checked against them by `TASK_TYPES`/`TASK_STATUSES`).
TaskRow = tuple[str, str, str, str, int, int, str, str, str]
TASK_TYPES: dict[str, str] = {t.value: t.value for t in TaskType}
TASK_STATUSES: dict[str, str] = {s.value: s.value for s in TaskStatus}


@dataclass(frozen=True, slots=True)
class TaskView:
    """One task as ListTasks renders it; Result, Errors and Request are JSON strings."""

    task_id: str
    cluster_id: str
    task_type: TaskType
    status: TaskStatus
    current_step: int
    total_steps: int
    result: str
    errors: str
    request: str
    created_at: datetime
