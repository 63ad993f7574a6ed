"""ListClusters, DescribeCluster and ListNodes through the official SDKs: shapes, paging, filters, tenants."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.sql.dml import Update

from hpcplane.api.actions.clusters import DESCRIBE_CLUSTER, LIST_CLUSTERS, LIST_NODES
from hpcplane.services.clusters import seed_cluster
from hpcplane.store.tables import clusters, nodes
from tests.support.live import LiveServer
from tests.support.sdkclients import SDK_KINDS, SdkError

CLUSTER_SIMPLE_FIELDS = {
    "AccountType", "BaseOsTag", "ClientVersion", "ComputeSpotPriceLimit", "ComputeSpotStrategy",
    "Computes", "Count", "CreateTime", "DeployMode", "Description", "EhpcVersion", "HasPlugin", "Id",
    "ImageId", "ImageOwnerAlias", "InstanceChargeType", "InstanceType", "IsComputeEss", "Location",
    "LoginNodes", "Managers", "Name", "NodePrefix", "NodeSuffix", "OsTag", "RegionId", "ResourceGroupId",
    "SchedulerType", "Status", "TotalResources", "UsedResources", "VSwitchId", "VpcId", "ZoneId",
}  # fmt: skip
CLUSTER_INFO_FIELDS = {
    "AccountType", "AddOnsInfo", "Applications", "AutoRenew", "AutoRenewPeriod", "BaseOsTag",
    "ClientVersion", "ClusterVersion", "ComputeSpotPriceLimit", "ComputeSpotStrategy", "CreateTime",
    "DeployMode", "Description", "Domain", "EcsChargeType", "EcsInfo", "HaEnable", "Id", "ImageId",
    "ImageName", "ImageOwnerAlias", "InitialImage", "KeyPairName", "Location", "Name", "Nodes",
    "OnPremiseInfo", "OpenldapPar", "OsTag", "Period", "PeriodUnit", "Plugin", "PostInstallScripts",
    "RamNodeTypes", "RamRoleName", "RegionId", "RemoteDirectory", "ResourceGroupId", "SccClusterId",
    "SchedulerPreInstall", "SchedulerType", "SchedulerVersion", "SecurityGroupId", "Status", "VSwitchId",
    "VolumeId", "VolumeMountpoint", "VolumeProtocol", "VolumeType", "VpcId", "WinAdPar", "WithoutAgent",
    "ZoneId",
}  # fmt: skip
NODE_INFO_FIELDS = {
    "AddTime", "CreateMode", "CreatedByEhpc", "Expired", "ExpiredTime", "HostName", "HtEnabled", "Id",
    "ImageId", "ImageOwnerAlias", "InstanceType", "IpAddress", "Location", "LockReason", "PublicIpAddress",
    "RegionId", "Roles", "SpotStrategy", "StateInSched", "Status", "TotalResources", "UsedResources",
    "VSwitchId", "Version", "VpcId", "ZoneId",
}  # fmt: skip
COUNT_FIELDS = {"Total", "NormalCount", "ExceptionCount", "OperatingCount", "StoppedCount"}
BASE = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
# beta's nodes in AddedTime order (manager0 and login0 were added together: ties go by hostname).
ADDED_ORDER = ["login0", "manager0"] + [f"compute{i}" for i in range(12)]
HOSTNAME_ORDER = sorted(ADDED_ORDER)


def _sql(server: LiveServer, *statements: Update) -> None:
    with server.services.db.write() as conn:
        for statement in statements:
            conn.execute(statement)


def _seed(server: LiveServer, account_id: str, name: str, computes: int, created_at: datetime) -> str:
    services = server.services
    cluster_id = seed_cluster(
        services.db, services.clock, account_id=account_id, region="cn-hangzhou", name=name, computes=computes
    )
    _sql(server, update(clusters).where(clusters.c.id == cluster_id).values(created_at=created_at))
    return cluster_id


def _round_trips(model: str, body: dict[str, Any]) -> None:
    """The body parses into the Tea model and back without losing or changing anything."""
    from alibabacloud_ehpc20180412 import models

    assert getattr(models, model)().from_map(body).to_map() == body


@pytest.fixture(scope="module")
def world(server: LiveServer) -> dict[str, str]:
    """An account with three clusters (alpha oldest, gamma newest); beta has 12 compute nodes, varied."""
    key = server.new_account("readers")
    account = key["AccountId"]
    alpha = _seed(server, account, "alpha", 3, BASE)
    beta = _seed(server, account, "beta", 12, BASE + timedelta(hours=1))
    gamma = _seed(server, account, "gamma", 0, BASE + timedelta(hours=2))
    in_beta = nodes.c.cluster_id == beta
    statements = [
        update(nodes).where(in_beta).values(created_at=BASE + timedelta(hours=1)),
        *(
            update(nodes)
            .where(in_beta, nodes.c.hostname == f"compute{i}")
            .values(created_at=BASE + timedelta(hours=1, minutes=i + 1))
            for i in range(12)
        ),
        update(nodes).where(in_beta, nodes.c.hostname == "compute9").values(status="stopped"),
        update(nodes).where(in_beta, nodes.c.hostname == "compute10").values(status="exception"),
        update(nodes).where(in_beta, nodes.c.hostname == "compute11").values(status="initing"),
    ]
    _sql(server, *statements)
    return {**key, "alpha": alpha, "beta": beta, "gamma": gamma}


def _clusters(body: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = body["Clusters"]["ClusterInfoSimple"]
    return found


def _nodes(body: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = body["Nodes"]["NodeInfo"]
    return found


def _info(body: dict[str, Any]) -> dict[str, Any]:
    info: dict[str, Any] = body["ClusterInfo"]
    return info


def _hostnames(body: dict[str, Any]) -> list[str]:
    return [node["HostName"] for node in _nodes(body)]


def _invalid(server: LiveServer, key: dict[str, str], action: str, name: str, **params: object) -> None:
    with pytest.raises(SdkError) as caught:
        server.call("legacy", key, action, **params)
    assert (caught.value.status, caught.value.code) == (400, "InvalidParams")
    assert caught.value.message == f"The specified parameter {name} is invalid."


def _not_found(server: LiveServer, key: dict[str, str], cluster_id: str) -> None:
    for action in ("DescribeCluster", "ListNodes"):
        with pytest.raises(SdkError) as caught:
            server.call("tea-v3", key, action, ClusterId=cluster_id)
        assert (caught.value.status, caught.value.code) == (404, "ClusterNotFound")


# --- ListClusters --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SDK_KINDS)
def test_list_clusters_shape(server: LiveServer, world: dict[str, str], kind: str) -> None:
    """Clusters.ClusterInfoSimple[] newest first, every model field kept, node counts per role and status."""
    body = server.call(kind, world, "ListClusters")
    assert (body["TotalCount"], body["PageNumber"], body["PageSize"]) == (3, 1, 10)
    found = _clusters(body)
    assert [c["Name"] for c in found] == ["gamma", "beta", "alpha"]
    assert [c["Id"] for c in found] == [world["gamma"], world["beta"], world["alpha"]]
    for cluster in found:
        assert set(cluster) == CLUSTER_SIMPLE_FIELDS
        assert set(cluster["Managers"]) == set(cluster["Computes"]) == COUNT_FIELDS
        assert cluster["Managers"] == {
            "Total": 1,
            "NormalCount": 1,
            "ExceptionCount": 0,
            "OperatingCount": 0,
            "StoppedCount": 0,
        }
        assert (cluster["Status"], cluster["RegionId"], cluster["ZoneId"]) == (
            "running",
            "cn-hangzhou",
            "cn-hangzhou-b",
        )
        assert cluster["LoginNodes"].startswith("i-")
        assert cluster["UsedResources"] == {"Cpu": 0, "Gpu": 0, "Memory": 0}
    gamma, beta, alpha = found
    assert beta["Computes"] == {
        "Total": 12,
        "NormalCount": 9,
        "ExceptionCount": 1,
        "OperatingCount": 1,
        "StoppedCount": 1,
    }
    assert (beta["Count"], alpha["Count"], gamma["Count"]) == (12, 3, 0)
    assert alpha["TotalResources"] == {"Cpu": 6, "Gpu": 0, "Memory": 3 * 4096}  # 3 x ecs.c6.large
    assert alpha["CreateTime"] == "2026-01-02T03:04:05.678Z"
    assert (alpha["InstanceType"], alpha["OsTag"], alpha["SchedulerType"]) == (
        "ecs.c6.large",
        "CentOS_7.6_64",
        "pbs",
    )
    assert isinstance(body["RequestId"], str)
    if kind == "legacy":
        _round_trips("ListClustersResponseBody", body)


@pytest.mark.parametrize("kind", ["tea-v3", "legacy"])
def test_list_clusters_pages(server: LiveServer, world: dict[str, str], kind: str) -> None:
    """Pages do not overlap, TotalCount counts all, a page past the end is empty."""
    seen = []
    for page in (1, 2):
        body = server.call(kind, world, "ListClusters", PageNumber=page, PageSize=2)
        assert (body["TotalCount"], body["PageNumber"], body["PageSize"]) == (3, page, 2)
        seen += [c["Name"] for c in _clusters(body)]
    assert seen == ["gamma", "beta", "alpha"]
    body = server.call(kind, world, "ListClusters", PageNumber=99, PageSize=50)
    assert (_clusters(body), body["TotalCount"]) == ([], 3)


@pytest.mark.parametrize(("name", "value"), [("PageSize", 0), ("PageSize", 51), ("PageNumber", 0)])
def test_list_clusters_ranges(server: LiveServer, world: dict[str, str], name: str, value: int) -> None:
    """PageSize is 1-50 and PageNumber starts at 1; outside, InvalidParams names the parameter."""
    _invalid(server, world, "ListClusters", name, **{name: value})


# --- DescribeCluster -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SDK_KINDS)
def test_describe_cluster_shape(server: LiveServer, world: dict[str, str], kind: str) -> None:
    """ClusterInfo with every model field, EcsInfo counts per role, and the nested list containers."""
    body = server.call(kind, world, "DescribeCluster", ClusterId=world["beta"])
    info = _info(body)
    assert set(info) == CLUSTER_INFO_FIELDS
    assert (info["Id"], info["Name"], info["Status"]) == (world["beta"], "beta", "running")
    assert info["EcsInfo"] == {
        "Manager": {"Count": 1, "InstanceType": "ecs.g6.large"},
        "Login": {"Count": 1, "InstanceType": "ecs.g6.large"},
        "Compute": {"Count": 12, "InstanceType": "ecs.c6.large"},
    }
    assert info["InitialImage"] == {
        "ImageId": info["ImageId"],
        "ImageOwnerAlias": "system",
        "OsTag": "CentOS_7.6_64",
    }
    assert info["Applications"] == {"ApplicationInfo": []}
    assert info["PostInstallScripts"] == {"PostInstallScriptInfo": []}
    assert info["AddOnsInfo"] == {"AddOnsInfo": []}
    assert info["Nodes"] == {"NodesInfo": []}
    assert info["OnPremiseInfo"] == {"OnPremiseInfo": []}
    assert (info["SchedulerType"], info["SchedulerVersion"], info["HaEnable"]) == ("pbs", "19.1.1", False)
    assert info["CreateTime"] == "2026-01-02T04:04:05.678Z"
    assert info["VpcId"].startswith("vpc-")
    assert info["SecurityGroupId"].startswith("sg-")
    if kind == "legacy":
        _round_trips("DescribeClusterResponseBody", body)


def test_describe_cluster_reads_create_parameters(server: LiveServer, world: dict[str, str]) -> None:
    """CreateCluster parameters kept in `extra` come back in their DescribeCluster fields."""
    cluster = _seed(server, world["AccountId"], "extra", 1, BASE - timedelta(days=1))
    extra = {
        "ResourceGroupId": "rg-acfmxazb4ph6aiy",
        "VolumeId": "08c7a4b4e1",
        "VolumeMountpoint": "08c7a4b4e1-abc12.cn-hangzhou.nas.aliyuncs.com",
        "RemoteDirectory": "/",
        "Application": [{"Tag": "OpenMPI_1.8.7"}],
        "PostInstallScript": [{"Url": "https://bucket.oss/x.sh", "Args": "-v"}],
        "AutoRenew": True,
        "WithoutAgent": True,
    }
    _sql(server, update(clusters).where(clusters.c.id == cluster).values(extra=json.dumps(extra)))
    for kind in ("tea-v3", "legacy"):
        info = _info(server.call(kind, world, "DescribeCluster", ClusterId=cluster))
        assert (info["ResourceGroupId"], info["VolumeId"]) == ("rg-acfmxazb4ph6aiy", "08c7a4b4e1")
        assert info["VolumeMountpoint"] == extra["VolumeMountpoint"]
        assert (info["RemoteDirectory"], info["AutoRenew"], info["WithoutAgent"]) == ("/", "true", 1)
        assert info["Applications"] == {
            "ApplicationInfo": [{"Name": "openmpi", "Tag": "OpenMPI_1.8.7", "Version": "1.8.7"}]
        }
        assert info["PostInstallScripts"] == {
            "PostInstallScriptInfo": [{"Url": "https://bucket.oss/x.sh", "Args": "-v"}]
        }


def test_describe_cluster_needs_cluster_id(server: LiveServer, world: dict[str, str]) -> None:
    """A missing or over-long ClusterId is InvalidParams naming it."""
    _invalid(server, world, "DescribeCluster", "ClusterId", ClusterId="")
    _invalid(server, world, "DescribeCluster", "ClusterId", ClusterId="x" * 65)


# --- ListNodes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SDK_KINDS)
def test_list_nodes_shape(server: LiveServer, world: dict[str, str], kind: str) -> None:
    """Nodes.NodeInfo[] with every model field; roles, resources and times as E-HPC shows them."""
    body = server.call(kind, world, "ListNodes", ClusterId=world["beta"], PageSize=100)
    assert (body["TotalCount"], body["PageNumber"], body["PageSize"]) == (14, 1, 100)
    by_name = {node["HostName"]: node for node in _nodes(body)}
    for node in by_name.values():
        assert set(node) == NODE_INFO_FIELDS
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", node["AddTime"])
        assert node["Id"].startswith("i-")
        assert (node["RegionId"], node["ZoneId"], node["Location"]) == (
            "cn-hangzhou",
            "cn-hangzhou-b",
            "PublicCloud",
        )
    manager, login, compute = by_name["manager0"], by_name["login0"], by_name["compute0"]
    assert manager["Roles"] == {"Role": ["Scheduler", "Account"]}
    assert login["Roles"] == {"Role": ["Login"]}
    assert compute["Roles"] == {"Role": ["Compute"]}
    assert compute["TotalResources"] == {"Cpu": 2, "Gpu": 0, "Memory": 4}
    assert manager["TotalResources"] == {"Cpu": 2, "Gpu": 0, "Memory": 8}
    assert (compute["UsedResources"], manager["UsedResources"]) == ({"Cpu": 0, "Gpu": 0, "Memory": 0}, {})
    assert (compute["StateInSched"], by_name["compute9"]["StateInSched"], manager["StateInSched"]) == (
        "free",
        "down",
        "",
    )
    assert compute["AddTime"] == "2026-01-02T04:05:05.678Z"
    assert (compute["IpAddress"], compute["InstanceType"], compute["Status"]) == (
        "192.168.0.12",
        "ecs.c6.large",
        "running",
    )
    assert by_name["compute10"]["Status"] == "exception"
    if kind == "legacy":
        _round_trips("ListNodesResponseBody", body)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"Role": "Manager"}, ["manager0"]),
        ({"Role": "Login"}, ["login0"]),
        ({"Role": "Compute"}, [f"compute{i}" for i in range(12)]),
        ({"Role": "compute", "HostNameSuffix": "1"}, ["compute1", "compute11"]),
        ({"HostName": "ute1"}, ["compute1", "compute10", "compute11"]),
        ({"HostName": "MANAGER"}, ["manager0"]),
        ({"HostName": "comp%"}, []),
        ({"HostName": "_"}, []),
        ({"HostNamePrefix": "Compute1"}, ["compute1", "compute10", "compute11"]),
        ({"HostNamePrefix": "login"}, ["login0"]),
        ({"HostNameSuffix": "0"}, ["login0", "manager0", "compute0", "compute10"]),
        ({"PrivateIpAddress": "192.168.0.15"}, ["compute3"]),
        ({"PrivateIpAddress": "192.168.0.1"}, []),
        ({"Filter": '{"status":"stopped"}'}, ["compute9"]),
        ({"Filter": '{"status":"exception"}'}, ["compute10"]),
        ({"Filter": '{"status":"initing"}'}, ["compute11"]),
        ({"Filter": '{"status":"releasing"}'}, []),
        ({"Filter": "stopped"}, ["compute9"]),
        ({"Filter": "{}"}, ADDED_ORDER),
        (
            {"Filter": '{"status":"running"}', "Role": "Compute", "HostNamePrefix": "compute1"},
            ["compute1"],
        ),
    ],
)
@pytest.mark.parametrize("kind", ["tea-v3", "legacy"])
def test_list_nodes_filters(
    server: LiveServer, world: dict[str, str], kind: str, params: dict[str, str], expected: list[str]
) -> None:
    """Each filter alone and together; hostname filters ignore case and take % and _ literally."""
    body = server.call(kind, world, "ListNodes", ClusterId=world["beta"], PageSize=100, **params)
    assert _hostnames(body) == expected
    assert body["TotalCount"] == len(expected)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ADDED_ORDER),
        ({"SortBy": "AddedTime"}, ADDED_ORDER),
        ({"SortBy": "AddedTime", "Sequence": "Forward"}, ADDED_ORDER),
        ({"Sequence": "Backward"}, ADDED_ORDER[::-1]),
        ({"SortBy": "HostName"}, HOSTNAME_ORDER),
        ({"SortBy": "HostName", "Sequence": "Backward"}, HOSTNAME_ORDER[::-1]),
        ({"SortBy": "hostname", "Sequence": "backward"}, HOSTNAME_ORDER[::-1]),
    ],
)
def test_list_nodes_order(
    server: LiveServer, world: dict[str, str], params: dict[str, str], expected: list[str]
) -> None:
    """AddedTime (the default) or HostName, Forward (the default) or exactly reversed by Backward."""
    body = server.call("tea-v3", world, "ListNodes", ClusterId=world["beta"], PageSize=100, **params)
    assert _hostnames(body) == expected


@pytest.mark.parametrize("kind", ["tea-v3", "legacy"])
def test_list_nodes_pages(server: LiveServer, world: dict[str, str], kind: str) -> None:
    """Pages of 5 walk the whole order without overlap; TotalCount counts every match."""
    seen: list[str] = []
    for page in (1, 2, 3):
        body = server.call(kind, world, "ListNodes", ClusterId=world["beta"], PageNumber=page, PageSize=5)
        assert (body["TotalCount"], body["PageNumber"], body["PageSize"]) == (14, page, 5)
        seen += _hostnames(body)
    assert seen == ADDED_ORDER
    default = server.call(kind, world, "ListNodes", ClusterId=world["beta"])
    assert (_hostnames(default), default["PageSize"]) == (ADDED_ORDER[:10], 10)
    past = server.call(kind, world, "ListNodes", ClusterId=world["beta"], PageNumber=4, PageSize=5)
    assert (_nodes(past), past["TotalCount"]) == ([], 14)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PageSize", 0),
        ("PageSize", 101),
        ("PageNumber", 0),
        ("PageNumber", "ten"),
        ("Role", "Scheduler"),
        ("SortBy", "Status"),
        ("Sequence", "Up"),
        ("Filter", '{"status":"bogus"}'),
        ("Filter", '{"status":1}'),
        ("Filter", "{not json"),
        ("Filter", "busy"),
        ("ClusterId", ""),
    ],
)
def test_list_nodes_invalid(server: LiveServer, world: dict[str, str], name: str, value: object) -> None:
    """Out-of-range pages and undocumented values are InvalidParams naming the parameter."""
    _invalid(server, world, "ListNodes", name, **{"ClusterId": world["beta"], name: value})


def test_list_nodes_page_size_100(server: LiveServer, world: dict[str, str]) -> None:
    """PageSize goes up to 100 for ListNodes (50 for ListClusters)."""
    body = server.call("legacy", world, "ListNodes", ClusterId=world["alpha"], PageSize=100)
    assert _hostnames(body) == ["compute0", "compute1", "compute2", "login0", "manager0"]  # added together


# --- Tenants, deletion, service state ------------------------------------------------------------


def test_other_tenants_clusters_are_not_found(server: LiveServer, world: dict[str, str]) -> None:
    """Another account sees none of these clusters: ClusterNotFound, like one that does not exist."""
    other = server.new_account("other-reader")
    body = server.call("tea-v3", other, "ListClusters")
    assert (_clusters(body), body["TotalCount"]) == ([], 0)
    for cluster_id in (world["alpha"], "ehpc-hz-doesnotexist"):
        _not_found(server, other, cluster_id)


def test_deleted_cluster_is_gone(server: LiveServer) -> None:
    """A cluster with deleted_at set leaves ListClusters and is ClusterNotFound, nodes included."""
    key = server.new_account("deleter")
    kept = _seed(server, key["AccountId"], "kept", 1, BASE)
    doomed = _seed(server, key["AccountId"], "doomed", 2, BASE + timedelta(hours=1))
    assert server.call("legacy", key, "ListClusters")["TotalCount"] == 2
    now = server.services.clock.now()
    _sql(server, update(clusters).where(clusters.c.id == doomed).values(deleted_at=now))
    body = server.call("legacy", key, "ListClusters")
    assert ([c["Id"] for c in _clusters(body)], body["TotalCount"]) == ([kept], 1)
    _not_found(server, key, doomed)


def test_deleted_nodes_are_not_listed(server: LiveServer) -> None:
    """Nodes with deleted_at set are neither listed nor counted."""
    key = server.new_account("node-deleter")
    cluster = _seed(server, key["AccountId"], "shrunk", 3, BASE)
    now = server.services.clock.now()
    _sql(
        server,
        update(nodes)
        .where(nodes.c.cluster_id == cluster, nodes.c.hostname == "compute1")
        .values(deleted_at=now),
    )
    body = server.call("tea-v3", key, "ListNodes", ClusterId=cluster, Role="Compute")
    assert (_hostnames(body), body["TotalCount"]) == (["compute0", "compute2"], 2)
    info = _info(server.call("tea-v3", key, "DescribeCluster", ClusterId=cluster))
    assert info["EcsInfo"]["Compute"]["Count"] == 2
    (simple,) = _clusters(server.call("tea-v3", key, "ListClusters"))
    assert (simple["Count"], simple["Computes"]["Total"]) == (2, 2)


def test_disabled_service_is_not_enabled(server: LiveServer) -> None:
    """An account whose E-HPC service is disabled gets NotEnabled from all three reads."""
    key = server.new_account("disabled-reader")
    cluster = _seed(server, key["AccountId"], "c", 0, BASE)
    server.cli("accounts", "disable-service", "disabled-reader")
    calls: list[tuple[str, dict[str, object]]] = [
        ("ListClusters", {}),
        ("DescribeCluster", {"ClusterId": cluster}),
        ("ListNodes", {"ClusterId": cluster}),
    ]
    for action, params in calls:
        with pytest.raises(SdkError) as caught:
            server.call("tea-v3", key, action, **params)
        assert (caught.value.status, caught.value.code) == (400, "NotEnabled")


def test_permissions() -> None:
    """ListClusters needs ehpc:ListClusters on all resources; the others, their action on the cluster."""
    params = {"ClusterId": "ehpc-hz-abc"}
    assert LIST_CLUSTERS.permission.action == "ehpc:ListClusters"
    assert LIST_CLUSTERS.permission.resource_for("cn-hangzhou", "1234", params) == "*"
    for action, name in ((DESCRIBE_CLUSTER, "ehpc:DescribeCluster"), (LIST_NODES, "ehpc:ListNodes")):
        assert action.permission.action == name
        resource = action.permission.resource_for("cn-hangzhou", "1234", params)
        assert resource == "acs:ehpc:cn-hangzhou:1234:cluster/ehpc-hz-abc"
