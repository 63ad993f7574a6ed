"""The plan of each operation: its named steps, fixed when the task is created (TotalSteps = len(plan)).

A step's name says what it does; the engine's step table (engine/steps.py) gives the few names that
change state an effect, and the rest only take time, as the real operation's waits do.
"""

from __future__ import annotations

from hpcplane.domain.tasks import TaskType


def _expand(*phases: tuple[str, int]) -> list[str]:
    steps: list[str] = []
    for name, count in phases:
        steps.extend([name] if count == 1 else [f"{name}#{i + 1}" for i in range(count)])
    return steps


PLANS: dict[TaskType, list[str]] = {
    TaskType.CREATE_CLUSTER: _expand(
        ("check-quota", 1),
        ("begin-create", 1),
        ("create-security-group", 1),
        ("create-storage", 2),
        ("run-instances", 1),
        ("wait-instances", 4),
        ("begin-init", 1),
        ("install-agent", 3),
        ("configure-accounts", 2),
        ("install-scheduler", 3),
        ("mount-storage", 2),
        ("join-nodes", 1),
        ("health-check", 2),
        ("finish", 1),
    ),
    TaskType.START_CLUSTER: _expand(
        ("check-cluster", 1),
        ("begin-start", 1),
        ("start-manager", 3),
        ("start-login", 2),
        ("start-scheduler", 2),
        ("start-nodes", 1),
        ("wait-nodes", 4),
        ("health-check", 2),
        ("finish", 1),
    ),
    TaskType.STOP_CLUSTER: _expand(
        ("check-cluster", 1),
        ("stop-jobs", 2),
        ("drain-nodes", 4),
        ("stop-scheduler", 2),
        ("stop-compute-services", 6),
        ("stop-nodes", 1),
        ("wait-nodes", 7),
        ("stop-login", 4),
        ("stop-manager", 4),
        ("verify", 3),
        ("finish", 1),
    ),
    TaskType.DELETE_CLUSTER: _expand(
        ("check-cluster", 1),
        ("begin-release", 1),
        ("stop-scheduler", 2),
        ("release-nodes", 1),
        ("wait-release", 4),
        ("delete-storage", 2),
        ("delete-security-group", 1),
        ("finish", 1),
    ),
    TaskType.ADD_COMPUTES: _expand(
        ("check-quota", 1),
        ("run-instances", 1),
        ("wait-instances", 3),
        ("install-agent", 2),
        ("configure-accounts", 1),
        ("mount-storage", 1),
        ("join-nodes", 1),
        ("finish", 1),
    ),
    TaskType.START_COMPUTES: _expand(
        ("check-nodes", 1), ("start-nodes", 1), ("wait-nodes", 3), ("join-nodes", 1), ("finish", 1)
    ),
    TaskType.STOP_COMPUTES: _expand(
        ("check-nodes", 1), ("drain-nodes", 2), ("stop-nodes", 1), ("wait-nodes", 3), ("finish", 1)
    ),
    TaskType.RESET_COMPUTE: _expand(
        ("check-nodes", 1),
        ("stop-nodes", 1),
        ("reinit-disks", 2),
        ("start-nodes", 1),
        ("install-agent", 2),
        ("join-nodes", 1),
        ("finish", 1),
    ),
    TaskType.DELETE_COMPUTES: _expand(
        ("check-nodes", 1), ("drain-nodes", 2), ("release-nodes", 1), ("wait-release", 3), ("finish", 1)
    ),
    TaskType.RECOVER_CLUSTER: _expand(
        ("check-cluster", 1),
        ("begin-recover", 1),
        ("reinstall-nodes", 1),
        ("install-agent", 2),
        ("configure-accounts", 1),
        ("install-scheduler", 2),
        ("health-check", 1),
        ("finish", 1),
    ),
}


def plan_for(task_type: TaskType) -> list[str]:
    """A fresh copy of the operation's steps."""
    return list(PLANS[task_type])


def base(step: str) -> str:
    """The step's name without its repetition suffix (wait-nodes#3 -> wait-nodes)."""
    return step.split("#", 1)[0]
