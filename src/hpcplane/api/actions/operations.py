"""The nine asynchronous operations: Create/Start/Stop/DeleteCluster, Add/Start/Stop/Reset/DeleteNodes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from hpcplane.api.action import Action, Call
from hpcplane.api.listparams import indexed
from hpcplane.api.params import Params
from hpcplane.api.validation import kept
from hpcplane.authz import ALL_RESOURCES, Permission
from hpcplane.domain.errors import InvalidParams
from hpcplane.domain.resources import Role
from hpcplane.domain.tasks import TaskType
from hpcplane.services.operations import AddSpec, ClusterSpec, NewNode, operation_params
from hpcplane.store.limits import width

CLUSTER_ARN = "acs:ehpc:{region}:{account}:cluster/{ClusterId}"
_HOST_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$|^$")
_DEFAULTS = {
    "DeployMode": "Standard",
    "SchedulerType": "pbs",
    "AccountType": "nis",
    "EcsChargeType": "PostPaid",
    "ImageOwnerAlias": "system",
}
_CHOICES = {
    "DeployMode": ("Standard", "Simple", "Tiny", "OneBox"),
    "SchedulerType": (
        "pbs",
        "slurm",
        "opengridscheduler",
        "deadline",
        "pbs19",
        "slurm19",
        "slurm20",
        "slurm22",
    ),
    "AccountType": ("nis", "ldap"),
    "EcsChargeType": ("PostPaid", "PrePaid"),
    "ImageOwnerAlias": ("system", "self", "others", "marketplace"),
}
# CreateCluster columns filled from parameters of the same meaning (the rest is kept in `extra`).
_CLUSTER_COLUMNS = {
    "Description": "description",
    "ZoneId": "zone_id",
    "VpcId": "vpc_id",
    "VSwitchId": "vswitch_id",
    "SecurityGroupId": "security_group_id",
    "OsTag": "os_tag",
    "ImageId": "image_id",
    "ImageOwnerAlias": "image_owner_alias",
    "SchedulerType": "scheduler_type",
    "DeployMode": "deploy_mode",
    "AccountType": "account_type",
    "ClientVersion": "client_version",
    "EcsChargeType": "ecs_charge_type",
    "KeyPairName": "key_pair_name",
}
_DESCRIPTION_MAX = 256  # E-HPC's documented bound; the column is unbounded text


def _choice(p: Params, name: str) -> str:
    value = p.text(name) or _DEFAULTS[name]
    if value not in _CHOICES[name]:
        raise InvalidParams(name, f"must be one of {', '.join(_CHOICES[name])}")
    return value


def _token(p: Params) -> str | None:
    token = p.text("ClientToken", max_length=width("tasks", "client_token"))
    if token is not None and not token.isascii():
        raise InvalidParams("ClientToken", "must be ASCII")
    return token


def _check_password(p: Params) -> None:
    password = p.text("Password", max_length=30)
    if password is None:
        if p.text("KeyPairName") is None:
            raise InvalidParams("Password", "Password or KeyPairName is required")
        return
    classes = sum(
        any(test(c) for c in password)
        for test in (str.isupper, str.islower, str.isdigit, lambda c: not c.isalnum())
    )
    if len(password) < 8 or classes < 3:
        raise InvalidParams("Password", "needs 8 to 30 characters of at least three kinds")


# --- CreateCluster ------------------------------------------------------------------------------


def read_create_cluster(p: Params) -> ClusterSpec:
    name = p.required_str("Name", max_length=min(64, width("clusters", "name")))
    if len(name) < 2:
        raise InvalidParams("Name", "needs 2 to 64 characters")
    _check_password(p)
    ha = p.bool("HaEnable", default=False)
    managers = p.int("EcsOrder.Manager.Count", default=2 if ha else 1, minimum=1, maximum=2)
    logins = p.int("EcsOrder.Login.Count", default=1, minimum=1, maximum=1)
    computes = p.int("EcsOrder.Compute.Count", default=0, minimum=0, maximum=99)
    types = {
        role: p.text(f"EcsOrder.{role.api_name}.InstanceType", max_length=width("nodes", "instance_type"))
        or ("ecs.c6.large" if role is Role.COMPUTE else "ecs.g6.large")
        for role in Role
    }
    values: dict[str, Any] = {"name": name, "ha_enable": ha}
    for param, column in _CLUSTER_COLUMNS.items():
        if param in _CHOICES:
            values[column] = _choice(p, param)
        else:
            value = p.text(param, max_length=width("clusters", column, unbounded=_DESCRIPTION_MAX))
            if value is not None:
                values[column] = value
    values.setdefault("zone_id", "cn-hangzhou-b")
    values.setdefault("os_tag", "CentOS_7.6_64")
    values.setdefault("vpc_id", "vpc-" + name.lower()[:8])
    values.setdefault("vswitch_id", "vsw-" + name.lower()[:8])
    values.setdefault("security_group_id", "sg-" + name.lower()[:8])
    for role in Role:
        values[f"{role.value}_instance_type"] = types[role]
    known = {"Name", "HaEnable", "Password", "ClientToken", *_CLUSTER_COLUMNS}
    # What the call says beyond the columns, bounded; never the envelope, the signature or a secret.
    extra = kept(
        {
            k: v
            for k, v in operation_params(p.raw()).items()
            if k not in known and not k.startswith("EcsOrder.")
        }
    )
    values["extra"] = json.dumps(extra, sort_keys=True)
    nodes = (
        [NewNode(Role.MANAGER, f"manager{i}", types[Role.MANAGER]) for i in range(managers)]
        + [NewNode(Role.LOGIN, f"login{i}", types[Role.LOGIN]) for i in range(logins)]
        + [NewNode(Role.COMPUTE, f"compute{i}", types[Role.COMPUTE]) for i in range(computes)]
    )
    return ClusterSpec(values=values, nodes=nodes, client_token=_token(p))


def create_cluster(call: Call, spec: ClusterSpec) -> dict[str, object]:
    accepted = call.services.operations.create_cluster(call.principal, call.request_id, spec, call.raw)
    return {"RequestId": call.request_id, "ClusterId": accepted.cluster_id, "TaskId": accepted.task_id}


# --- Start/Stop/DeleteCluster -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClusterRef:
    cluster_id: str
    release_instance: bool = True


def read_cluster_ref(p: Params) -> ClusterRef:
    return ClusterRef(p.required_str("ClusterId", max_length=64), p.bool("ReleaseInstance", default=True))


def _cluster_handler(task_type: TaskType) -> Any:
    def handle(call: Call, ref: ClusterRef) -> dict[str, object]:
        accepted = call.services.operations.cluster_operation(
            call.principal, call.request_id, task_type, ref.cluster_id, call.raw
        )
        return {"RequestId": call.request_id, "TaskId": accepted.task_id}

    return handle


# --- AddNodes -----------------------------------------------------------------------------------


def read_add_nodes(p: Params) -> AddSpec:
    count = p.int("Count", default=0, minimum=1, maximum=99) if p.text("Count") else None
    if count is None:
        raise InvalidParams("Count", "is required")
    min_count = p.int("MinCount", default=count, minimum=1, maximum=99)
    if min_count > count:
        raise InvalidParams("MinCount", "must not exceed Count")
    prefix = p.text("HostNamePrefix", max_length=32) or ""
    suffix = p.text("HostNameSuffix", max_length=32) or ""
    for name, value in (("HostNamePrefix", prefix), ("HostNameSuffix", suffix)):
        if not _HOST_PART.match(value):
            raise InvalidParams(name, "may hold letters, digits, '.' and '-'")
    create_mode = p.text("CreateMode") or "manual"
    if create_mode not in ("manual", "autoscale"):
        raise InvalidParams("CreateMode", "must be manual or autoscale")
    return AddSpec(
        cluster_id=p.required_str("ClusterId", max_length=64),
        count=count,
        min_count=min_count,
        instance_type=p.text("InstanceType", max_length=64),
        prefix=prefix,
        suffix=suffix,
        zone_id=p.text("ZoneId", max_length=64),
        create_mode=create_mode,
        client_token=_token(p),
        sync=p.bool("Sync", default=False),
        job_queue=p.text("JobQueue", max_length=63),
    )


def add_nodes(call: Call, spec: AddSpec) -> dict[str, object]:
    accepted = call.services.operations.add_nodes(call.principal, call.request_id, spec, call.raw)
    if spec.sync:
        call.services.drive(accepted.task_id)
    return {
        "RequestId": call.request_id,
        "TaskId": accepted.task_id,
        "InstanceIds": {"InstanceId": accepted.instance_ids},
    }


# --- Start/Stop/Reset/DeleteNodes ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodesRef:
    cluster_id: str
    instances: list[tuple[str, str]]
    role: Role
    release_instance: bool = True
    sync: bool = False


def _read_nodes(p: Params, *, with_role: bool) -> NodesRef:
    role = Role.COMPUTE
    if with_role:
        text = (p.text("Role") or "Compute").lower()
        if text not in Role.__members__.values():
            raise InvalidParams("Role", "must be Manager, Login or Compute")
        role = Role(text)
    return NodesRef(
        cluster_id=p.required_str("ClusterId", max_length=64),
        instances=indexed(p.raw(), "Instance", "Id", maximum=100, required=True),
        role=role,
        release_instance=p.bool("ReleaseInstance", default=True),
        sync=p.bool("Sync", default=False),
    )


def read_nodes_with_role(p: Params) -> NodesRef:
    return _read_nodes(p, with_role=True)


def read_nodes(p: Params) -> NodesRef:
    return _read_nodes(p, with_role=False)


def _nodes_handler(task_type: TaskType) -> Any:
    def handle(call: Call, ref: NodesRef) -> dict[str, object]:
        ops = call.services.operations
        if task_type is TaskType.DELETE_COMPUTES and ref.sync:
            ops.delete_nodes_now(
                call.principal, call.request_id, ref.cluster_id, ref.instances, ref.release_instance
            )
            return {"RequestId": call.request_id, "TaskId": "Not Available"}
        accepted = ops.node_operation(
            call.principal, call.request_id, task_type, ref.cluster_id, ref.instances, ref.role, call.raw
        )
        return {"RequestId": call.request_id, "TaskId": accepted.task_id}

    return handle


def _write(name: str) -> Permission:
    return Permission(f"ehpc:{name}", CLUSTER_ARN)


CREATE_CLUSTER = Action(
    "CreateCluster", Permission("ehpc:CreateCluster", ALL_RESOURCES), read_create_cluster, create_cluster
)
START_CLUSTER = Action(
    "StartCluster", _write("StartCluster"), read_cluster_ref, _cluster_handler(TaskType.START_CLUSTER)
)
STOP_CLUSTER = Action(
    "StopCluster", _write("StopCluster"), read_cluster_ref, _cluster_handler(TaskType.STOP_CLUSTER)
)
DELETE_CLUSTER = Action(
    "DeleteCluster", _write("DeleteCluster"), read_cluster_ref, _cluster_handler(TaskType.DELETE_CLUSTER)
)
ADD_NODES = Action("AddNodes", _write("AddNodes"), read_add_nodes, add_nodes)
START_NODES = Action(
    "StartNodes", _write("StartNodes"), read_nodes_with_role, _nodes_handler(TaskType.START_COMPUTES)
)
STOP_NODES = Action(
    "StopNodes", _write("StopNodes"), read_nodes_with_role, _nodes_handler(TaskType.STOP_COMPUTES)
)
RESET_NODES = Action("ResetNodes", _write("ResetNodes"), read_nodes, _nodes_handler(TaskType.RESET_COMPUTE))
DELETE_NODES = Action(
    "DeleteNodes", _write("DeleteNodes"), read_nodes, _nodes_handler(TaskType.DELETE_COMPUTES)
)
OPERATIONS = (
    CREATE_CLUSTER,
    START_CLUSTER,
    STOP_CLUSTER,
    DELETE_CLUSTER,
    ADD_NODES,
    START_NODES,
    STOP_NODES,
    RESET_NODES,
    DELETE_NODES,
)
