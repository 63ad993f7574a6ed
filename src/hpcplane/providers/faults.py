"""Fault injection for the simulated cloud, from a spec like `AddNodes.fail_step=3;*.node_fail_rate=0.1`."""

from __future__ import annotations

from dataclasses import dataclass, field

from hpcplane.domain.tasks import TaskType

# The API name of each operation, also accepted in a fault spec.
OPERATION_OF: dict[str, TaskType] = {
    "CreateCluster": TaskType.CREATE_CLUSTER,
    "StartCluster": TaskType.START_CLUSTER,
    "StopCluster": TaskType.STOP_CLUSTER,
    "DeleteCluster": TaskType.DELETE_CLUSTER,
    "AddNodes": TaskType.ADD_COMPUTES,
    "StartNodes": TaskType.START_COMPUTES,
    "StopNodes": TaskType.STOP_COMPUTES,
    "ResetNodes": TaskType.RESET_COMPUTE,
    "DeleteNodes": TaskType.DELETE_COMPUTES,
    "RecoverCluster": TaskType.RECOVER_CLUSTER,
}


class FaultSpecError(ValueError):
    """The fault spec is malformed; the message says where."""


@dataclass(frozen=True, slots=True)
class Fault:
    """What goes wrong in one operation: a failing step, failing nodes, or a step that hangs."""

    fail_step: int | None = None
    node_fail_rate: float = 0.0
    hang_step: int | None = None
    hang_seconds: float | None = None


_NO_FAULT = Fault()  # frozen: one shared instance (each step asks several times)


@dataclass(frozen=True)
class Faults:
    """The faults of every operation; `*` applies to all."""

    by_type: dict[TaskType, Fault] = field(default_factory=dict)

    def for_type(self, task_type: TaskType) -> Fault:
        return self.by_type.get(task_type, _NO_FAULT)


def parse_faults(spec: str) -> Faults:
    """Parse `Operation.key=value` rules separated by `;` (Operation: an API name, a TaskType, or `*`)."""
    values: dict[TaskType, dict[str, float]] = {}
    for raw in filter(None, (part.strip() for part in spec.split(";"))):
        target, sep, value = raw.partition("=")
        operation, dot, key = target.strip().partition(".")
        if not sep or not dot:
            raise FaultSpecError(f"fault rule {raw!r} is not Operation.key=value")
        if key not in Fault.__dataclass_fields__:
            raise FaultSpecError(
                f"fault rule {raw!r}: key must be one of {sorted(Fault.__dataclass_fields__)}"
            )
        try:
            number = float(value)
        except ValueError:
            raise FaultSpecError(f"fault rule {raw!r}: {value!r} is not a number") from None
        if operation == "*":
            types = list(TaskType)
        elif operation in OPERATION_OF:
            types = [OPERATION_OF[operation]]
        elif operation in TaskType.__members__.values():
            types = [TaskType(operation)]
        else:
            raise FaultSpecError(f"fault rule {raw!r}: unknown operation {operation!r}")
        for task_type in types:
            values.setdefault(task_type, {})[key] = number
    faults: dict[TaskType, Fault] = {}
    for task_type, rule in values.items():
        rate = rule.get("node_fail_rate", 0.0)
        if not 0.0 <= rate <= 1.0:
            raise FaultSpecError(f"node_fail_rate of {task_type} must be between 0 and 1")
        faults[task_type] = Fault(
            fail_step=int(rule["fail_step"]) if "fail_step" in rule else None,
            node_fail_rate=rate,
            hang_step=int(rule["hang_step"]) if "hang_step" in rule else None,
            hang_seconds=rule.get("hang_seconds"),
        )
    return Faults(faults)
