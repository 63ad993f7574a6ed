"""ModifyClusterAttributes, RecoverCluster (asynchronous) and ListClusterLogs, shaped as the SDK models."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hpcplane.api.action import Action, Call
from hpcplane.api.params import Params
from hpcplane.authz import Permission
from hpcplane.domain.errors import InvalidParams
from hpcplane.domain.tasks import TaskType
from hpcplane.services.clusters_admin import ClusterChange

CLUSTER_ARN = "acs:ehpc:{region}:{account}:cluster/{ClusterId}"
_PAGE_NUMBER_MAX = 2**31 - 1
_IMAGE_OWNERS = ("system", "self", "others", "marketplace")
_SCHEDULERS = ("pbs", "slurm", "opengridscheduler", "deadline", "pbs19", "slurm19", "slurm20", "slurm22")
_ACCOUNT_TYPES = ("nis", "ldap")
_NODE_TYPES = ("manager", "login", "compute")
_RAM_NODE_TYPE = re.compile(r"^RamNodeTypes\.(\d+)$")
# WinAdPar's fields but the password, which is never stored.
_WIN_AD_FIELDS = ("AdDc", "AdIp", "AdUser", "FallbackHomeDir")


def choice(p: Params, name: str, choices: tuple[str, ...]) -> str | None:
    value = p.text(name, max_length=64)
    if value is not None and value not in choices:
        raise InvalidParams(name, f"must be one of {', '.join(choices)}")
    return value


def page(p: Params, *, maximum: int, default: int = 10) -> tuple[int, int]:
    """(PageNumber, PageSize) with the model's bounds."""
    return (
        p.int("PageNumber", default=1, minimum=1, maximum=_PAGE_NUMBER_MAX),
        p.int("PageSize", default=default, minimum=1, maximum=maximum),
    )


def api_time(moment: datetime) -> str:
    """UTC with milliseconds, as E-HPC writes times: 2020-10-30T07:39:20.000Z."""
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


# --- ModifyClusterAttributes ---------------------------------------------------------------------


def _ram_node_types(raw: Mapping[str, str]) -> list[str] | None:
    found: list[tuple[int, str]] = []
    for name, value in raw.items():
        match = _RAM_NODE_TYPE.match(name)
        if match is None:
            continue
        number = int(match.group(1))
        if not 1 <= number <= 3 or value not in _NODE_TYPES:
            raise InvalidParams(name, f"N must be 1 to 3 and the value one of {', '.join(_NODE_TYPES)}")
        found.append((number, value))
    return [value for _, value in sorted(found)] if found else None


def read_modify(p: Params) -> ClusterChange:
    columns: dict[str, str] = {}
    name = p.text("Name", max_length=64)
    if name is not None:
        if len(name) < 2:
            raise InvalidParams("Name", "needs 2 to 64 characters")
        columns["name"] = name
    description = p.text("Description", max_length=256)
    if description is not None:
        if description.startswith(("http://", "https://")):
            raise InvalidParams("Description", "must not start with http:// or https://")
        columns["description"] = description
    image_id = p.text("ImageId", max_length=128)
    if image_id is not None:
        columns["image_id"] = image_id
    owner = choice(p, "ImageOwnerAlias", _IMAGE_OWNERS)
    if owner is not None:
        columns["image_owner_alias"] = owner
    extra: dict[str, Any] = {}
    role = p.text("RamRoleName", max_length=64)
    if role is not None:
        extra["RamRoleName"] = role
    node_types = _ram_node_types(p.raw())
    if node_types is not None:
        extra["RamNodeTypes"] = ",".join(node_types)
    win_ad = {f: v for f in _WIN_AD_FIELDS if (v := p.text(f"WinAdPar.{f}", max_length=128)) is not None}
    if win_ad:
        extra["WinAdPar"] = win_ad
    return ClusterChange(p.required_str("ClusterId", max_length=64), columns, extra)


def modify(call: Call, change: ClusterChange) -> dict[str, object]:
    call.services.cluster_admin.modify(call.principal, change)
    return {"RequestId": call.request_id}


# --- RecoverCluster ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recovery:
    cluster_id: str


def read_recover(p: Params) -> Recovery:
    choice(p, "ImageOwnerAlias", _IMAGE_OWNERS[:3])
    choice(p, "SchedulerType", _SCHEDULERS)
    choice(p, "AccountType", _ACCOUNT_TYPES)
    p.text("ImageId", max_length=128)
    p.text("OsTag", max_length=128)
    p.text("ClientVersion", max_length=32)
    return Recovery(p.required_str("ClusterId", max_length=64))


def recover(call: Call, recovery: Recovery) -> dict[str, object]:
    """The new image, OS and scheduler (if given) are the cluster's once the task succeeds."""
    accepted = call.services.operations.cluster_operation(
        call.principal, call.request_id, TaskType.RECOVER_CLUSTER, recovery.cluster_id, call.raw
    )
    return {"RequestId": call.request_id, "TaskId": accepted.task_id}


# --- ListClusterLogs -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogQuery:
    cluster_id: str
    page_number: int
    page_size: int


def read_logs(p: Params) -> LogQuery:
    number, size = page(p, maximum=100)
    return LogQuery(p.required_str("ClusterId", max_length=64), number, size)


def list_logs(call: Call, query: LogQuery) -> dict[str, object]:
    found = call.services.cluster_admin.logs(
        call.principal, query.cluster_id, page_number=query.page_number, page_size=query.page_size
    )
    return {
        "RequestId": call.request_id,
        "ClusterId": query.cluster_id,
        "PageNumber": query.page_number,
        "PageSize": query.page_size,
        "TotalCount": found.total,
        "Logs": {
            "LogInfo": [
                {
                    "CreateTime": api_time(line.created_at),
                    "Level": line.level,
                    "Message": line.message,
                    "Operation": line.operation,
                }
                for line in found.lines
            ]
        },
    }


def _on_cluster(name: str) -> Permission:
    return Permission(f"ehpc:{name}", CLUSTER_ARN)


MODIFY_CLUSTER_ATTRIBUTES = Action(
    "ModifyClusterAttributes", _on_cluster("ModifyClusterAttributes"), read_modify, modify
)
RECOVER_CLUSTER = Action("RecoverCluster", _on_cluster("RecoverCluster"), read_recover, recover)
LIST_CLUSTER_LOGS = Action("ListClusterLogs", _on_cluster("ListClusterLogs"), read_logs, list_logs)
ACTIONS = (MODIFY_CLUSTER_ATTRIBUTES, RECOVER_CLUSTER, LIST_CLUSTER_LOGS)
