"""ListClusters, DescribeCluster and ListNodes, shaped exactly as the SDK's Tea models parse them.

Fields we do not store are given values a real cluster would show:
- from `clusters.extra` (CreateCluster parameters, by their wire names), else the documented default:
  ResourceGroupId "", EhpcVersion "1.0.0", ClusterVersion "V1.0", ComputeSpotStrategy "NoSpot",
  ComputeSpotPriceLimit 0, IsComputeEss false, Plugin "" (HasPlugin false), Period "1", PeriodUnit
  "Month", AutoRenew "false", AutoRenewPeriod "1", Domain, RamRoleName, RamNodeTypes, RemoteDirectory,
  SccClusterId, VolumeId, VolumeMountpoint "", VolumeType "NAS", VolumeProtocol "nfs", WithoutAgent 0,
  Applications (from Application.N.Tag), PostInstallScripts (from PostInstallScript.N.Url/Args),
  HtEnabled (ComputeEnableHt, true);
- estimated: TotalResources from the instance types (UsedResources 0: no jobs run), SchedulerVersion
  from the scheduler, Roles (a manager is Scheduler and Account, and Login in Tiny mode), StateInSched
  (compute nodes: free/idle when running, else down), ImageName (= ImageId, as for public images),
  BaseOsTag (= OsTag), LoginNodes (the login nodes' instance ids, comma-separated);
- constant: NodePrefix/NodeSuffix "", SchedulerPreInstall 0, CreatedByEhpc true, LockReason "",
  ExpiredTime "", OpenldapPar/WinAdPar "", and empty AddOnsInfo, Nodes and OnPremiseInfo lists
  (public-cloud clusters only); EcsInfo.ProxyMgr is omitted (hybrid-cloud proxy mode only).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from hpcplane.api.action import Action, Call
from hpcplane.api.params import Params
from hpcplane.authz import ALL_RESOURCES, Permission
from hpcplane.domain.errors import InvalidParams
from hpcplane.domain.resources import Role
from hpcplane.services import clusters_read as reads
from hpcplane.services.clusters_read import (
    ClusterListQuery,
    ClusterSummary,
    NodeQuery,
    NodeSort,
    RoleCounts,
)
from hpcplane.store.views import ClusterView, NodeView

CLUSTER_RESOURCE = "acs:ehpc:{region}:{account}:cluster/{ClusterId}"
_PAGE_NUMBER_MAX = 2**31 - 1  # the model sets no upper bound: the service's Integer range
_ROLES = {role.value: role.value for role in Role}
_SORTS = {sort.value.lower(): sort for sort in NodeSort}
_SEQUENCES = {"forward": False, "backward": True}
T = TypeVar("T")


# --- Parameters ----------------------------------------------------------------------------------


def _choice(p: Params, name: str, choices: Mapping[str, T]) -> T | None:
    """One of the documented values, in any case; None when absent."""
    value = p.text(name, max_length=64)
    if value is None:
        return None
    chosen = choices.get(value.strip().lower())
    if chosen is None:
        raise InvalidParams(name, f"is not one of {sorted(choices)}")
    return chosen


def _status_filter(p: Params) -> str | None:
    """Filter: {"status":"<node status>"} as documented (a bare status is accepted too)."""
    text = p.text("Filter", max_length=1024)
    if text is None:
        return None
    status: object = text.strip()
    if text.strip().startswith("{"):
        value = p.json("Filter", max_length=1024)
        if not isinstance(value, dict):
            raise InvalidParams("Filter", "is not a JSON object")
        status = {str(k).lower(): v for k, v in value.items()}.get("status")
        if status is None or status == "":
            return None
    if not isinstance(status, str) or status.lower() not in reads.NODE_STATUSES:
        raise InvalidParams("Filter", f"status is not one of {list(reads.NODE_STATUSES)}")
    return status.lower()


def read_list_clusters(p: Params) -> ClusterListQuery:
    return ClusterListQuery(
        page_number=p.int("PageNumber", default=1, minimum=1, maximum=_PAGE_NUMBER_MAX),
        page_size=p.int("PageSize", default=10, minimum=1, maximum=50),
    )


def read_describe_cluster(p: Params) -> str:
    return p.required_str("ClusterId", max_length=64)


def read_list_nodes(p: Params) -> NodeQuery:
    return NodeQuery(
        cluster_id=p.required_str("ClusterId", max_length=64),
        role=_choice(p, "Role", _ROLES),
        host_name=p.text("HostName", max_length=128),
        host_name_prefix=p.text("HostNamePrefix", max_length=128),
        host_name_suffix=p.text("HostNameSuffix", max_length=128),
        private_ip_address=p.text("PrivateIpAddress", max_length=64),
        status=_status_filter(p),
        sort_by=_choice(p, "SortBy", _SORTS) or NodeSort.ADDED_TIME,
        backward=bool(_choice(p, "Sequence", _SEQUENCES)),
        page_number=p.int("PageNumber", default=1, minimum=1, maximum=_PAGE_NUMBER_MAX),
        page_size=p.int("PageSize", default=10, minimum=1, maximum=100),
    )


# --- Values --------------------------------------------------------------------------------------


def _time(moment: datetime) -> str:
    """UTC with milliseconds, as E-HPC writes CreateTime and AddTime: 2020-10-30T07:39:20.000Z."""
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def _text(extra: Mapping[str, Any], key: str, default: str = "") -> str:
    value = extra.get(key)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list):
        return json.dumps(value, separators=(",", ":"))
    return default


def _flag(extra: Mapping[str, Any], key: str, default: bool) -> bool:
    value = extra.get(key)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return default


def _number(extra: Mapping[str, Any], key: str) -> float:
    try:
        return float(extra.get(key) or 0)
    except (TypeError, ValueError):
        return 0.0


def _items(extra: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = extra.get(key)
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _counts(role: RoleCounts) -> dict[str, object]:
    return {
        "Total": role.total,
        "NormalCount": role.normal,
        "ExceptionCount": role.exception,
        "OperatingCount": role.operating,
        "StoppedCount": role.stopped,
    }


def _application(tag: str) -> dict[str, object]:
    name, _, version = tag.rpartition("_")
    return {"Name": (name or tag).lower(), "Tag": tag, "Version": version if name else ""}


# --- ListClusters --------------------------------------------------------------------------------


def _cluster_common(c: ClusterView) -> dict[str, object]:
    """The fields ClusterInfoSimple (ListClusters) and ClusterInfo (DescribeCluster) share."""
    extra = c.extra
    return {
        "Id": c.id,
        "RegionId": c.region_id,
        "ZoneId": c.zone_id,
        "Name": c.name,
        "Description": c.description,
        "Status": c.status,
        "CreateTime": _time(c.created_at),
        "OsTag": c.os_tag,
        "BaseOsTag": c.os_tag,
        "ImageId": c.image_id,
        "ImageOwnerAlias": c.image_owner_alias,
        "AccountType": c.account_type,
        "SchedulerType": c.scheduler_type,
        "DeployMode": c.deploy_mode,
        "ClientVersion": c.client_version,
        "Location": c.location,
        "VpcId": c.vpc_id,
        "VSwitchId": c.vswitch_id,
        "ComputeSpotStrategy": _text(extra, "ComputeSpotStrategy", "NoSpot"),
        "ResourceGroupId": _text(extra, "ResourceGroupId"),
    }


def _cluster_simple(summary: ClusterSummary) -> dict[str, object]:
    c, extra = summary.cluster, summary.cluster.extra
    computes = summary.role("compute")
    total = summary.compute_resources()
    return {
        **_cluster_common(c),
        "EhpcVersion": _text(extra, "EhpcVersion", "1.0.0"),
        "InstanceChargeType": c.ecs_charge_type,
        "InstanceType": c.compute_instance_type,
        "ComputeSpotPriceLimit": _number(extra, "ComputeSpotPriceLimit"),
        "IsComputeEss": _flag(extra, "IsComputeEss", False),
        "HasPlugin": bool(_text(extra, "Plugin")),
        "NodePrefix": "",
        "NodeSuffix": "",
        "Count": computes.total,
        "LoginNodes": ",".join(summary.login_node_ids),
        "Managers": _counts(summary.role("manager")),
        "Computes": _counts(computes),
        "TotalResources": {"Cpu": total.cpu, "Gpu": total.gpu, "Memory": total.memory_mib},
        "UsedResources": {"Cpu": 0, "Gpu": 0, "Memory": 0},
    }


def list_clusters(call: Call, query: ClusterListQuery) -> dict[str, object]:
    page = call.services.cluster_reader.list_clusters(call.principal, query)
    return {
        "RequestId": call.request_id,
        "PageNumber": query.page_number,
        "PageSize": query.page_size,
        "TotalCount": page.total,
        "Clusters": {"ClusterInfoSimple": [_cluster_simple(summary) for summary in page.clusters]},
    }


# --- DescribeCluster -----------------------------------------------------------------------------


def _ecs(count: int, instance_type: str) -> dict[str, object]:
    return {"Count": count, "InstanceType": instance_type}


def _cluster_info(summary: ClusterSummary) -> dict[str, object]:
    c, extra = summary.cluster, summary.cluster.extra
    return {
        **_cluster_common(c),
        "ImageName": c.image_id,
        "InitialImage": {"ImageId": c.image_id, "ImageOwnerAlias": c.image_owner_alias, "OsTag": c.os_tag},
        "SchedulerVersion": reads.scheduler_version(c.scheduler_type),
        "SchedulerPreInstall": 0,
        "HaEnable": c.ha_enable,
        "ClusterVersion": _text(extra, "ClusterVersion", "V1.0"),
        "SecurityGroupId": c.security_group_id,
        "KeyPairName": c.key_pair_name,
        "EcsChargeType": c.ecs_charge_type,
        "EcsInfo": {
            "Manager": _ecs(summary.role("manager").total, c.manager_instance_type),
            "Login": _ecs(summary.role("login").total, c.login_instance_type),
            "Compute": _ecs(summary.role("compute").total, c.compute_instance_type),
        },
        "ComputeSpotPriceLimit": _text(extra, "ComputeSpotPriceLimit", "0"),
        "Period": _text(extra, "Period", "1"),
        "PeriodUnit": _text(extra, "PeriodUnit", "Month"),
        "AutoRenew": _text(extra, "AutoRenew", "false"),
        "AutoRenewPeriod": _text(extra, "AutoRenewPeriod", "1"),
        "SccClusterId": _text(extra, "SccClusterId"),
        "Domain": _text(extra, "Domain"),
        "RamRoleName": _text(extra, "RamRoleName"),
        "RamNodeTypes": _text(extra, "RamNodeTypes"),
        "Plugin": _text(extra, "Plugin"),
        "RemoteDirectory": _text(extra, "RemoteDirectory"),
        "VolumeId": _text(extra, "VolumeId"),
        "VolumeMountpoint": _text(extra, "VolumeMountpoint"),
        "VolumeProtocol": _text(extra, "VolumeProtocol", "nfs"),
        "VolumeType": _text(extra, "VolumeType", "NAS"),
        "WithoutAgent": int(_flag(extra, "WithoutAgent", False)),
        "OpenldapPar": "",
        "WinAdPar": "",
        "Applications": {
            "ApplicationInfo": [
                _application(str(item["Tag"])) for item in _items(extra, "Application") if item.get("Tag")
            ]
        },
        "PostInstallScripts": {
            "PostInstallScriptInfo": [
                {"Url": _text(item, "Url"), "Args": _text(item, "Args")}
                for item in _items(extra, "PostInstallScript")
            ]
        },
        "AddOnsInfo": {"AddOnsInfo": []},
        "Nodes": {"NodesInfo": []},
        "OnPremiseInfo": {"OnPremiseInfo": []},
    }


def describe_cluster(call: Call, cluster_id: str) -> dict[str, object]:
    reader = call.services.cluster_reader
    summary = reader.describe_cluster(call.principal, cluster_id)
    return {"RequestId": call.request_id, "ClusterInfo": _cluster_info(summary)}


# --- ListNodes -----------------------------------------------------------------------------------


def _node_info(node: NodeView, c: ClusterView) -> dict[str, object]:
    total = reads.instance_resources(node.instance_type)
    compute = node.role == "compute"
    return {
        "Id": node.id,
        "HostName": node.hostname,
        "Status": node.status,
        "Roles": {"Role": reads.node_roles(node.role, c.deploy_mode)},
        "StateInSched": reads.state_in_sched(node.role, node.status, c.scheduler_type),
        "InstanceType": node.instance_type,
        "IpAddress": node.private_ip,
        "PublicIpAddress": node.public_ip,
        "RegionId": c.region_id,
        "ZoneId": node.zone_id,
        "VpcId": c.vpc_id,
        "VSwitchId": c.vswitch_id,
        "Location": c.location,
        "ImageId": node.image_id,
        "ImageOwnerAlias": node.image_owner_alias,
        "AddTime": _time(node.created_at),
        "CreateMode": node.create_mode,
        "CreatedByEhpc": True,
        "SpotStrategy": node.spot_strategy,
        "Expired": node.expired,
        "ExpiredTime": "",
        "LockReason": "",
        "HtEnabled": _flag(c.extra, "ComputeEnableHt", True) if compute else True,
        "Version": c.client_version,
        "TotalResources": {"Cpu": total.cpu, "Gpu": total.gpu, "Memory": total.memory_mib // 1024},
        "UsedResources": {"Cpu": 0, "Gpu": 0, "Memory": 0} if compute else {},
    }


node_info = _node_info  # ListNodesByQueue renders its nodes the same way


def list_nodes(call: Call, query: NodeQuery) -> dict[str, object]:
    found = call.services.cluster_reader.list_nodes(call.principal, query)
    return {
        "RequestId": call.request_id,
        "PageNumber": query.page_number,
        "PageSize": query.page_size,
        "TotalCount": found.page.total,
        "Nodes": {"NodeInfo": [_node_info(node, found.cluster) for node in found.page.nodes]},
    }


LIST_CLUSTERS = Action(
    name="ListClusters",
    permission=Permission("ehpc:ListClusters", ALL_RESOURCES),
    read=read_list_clusters,
    handle=list_clusters,
)

DESCRIBE_CLUSTER = Action(
    name="DescribeCluster",
    permission=Permission("ehpc:DescribeCluster", CLUSTER_RESOURCE),
    read=read_describe_cluster,
    handle=describe_cluster,
)

LIST_NODES = Action(
    name="ListNodes",
    permission=Permission("ehpc:ListNodes", CLUSTER_RESOURCE),
    read=read_list_nodes,
    handle=list_nodes,
)
