"""The catalog reads that clients use to fill CreateCluster, and software on a cluster.

ListRegions, ListImages, ListPreferredEcsTypes, ListCurrentClientVersion and ListSoftwares answer from
a fixed catalog (the simulated cloud's: what CreateCluster accepts by default); ListInstalledSoftware,
InstallSoftware and UninstallSoftware keep a cluster's applications with it (its `extra`, beside the
CreateCluster `Application.N.Tag`s). The SDK models make Install/UninstallSoftware synchronous.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hpcplane.api.action import Action, Call
from hpcplane.api.actions.clusters_admin import CLUSTER_ARN
from hpcplane.api.params import Params
from hpcplane.authz import ALL_RESOURCES, Permission
from hpcplane.domain.errors import InvalidParams

CLIENT_VERSION = "2.0.0"
REGIONS = [
    ("cn-hangzhou", "华东1（杭州）"),
    ("cn-shanghai", "华东2（上海）"),
    ("cn-beijing", "华北2（北京）"),
    ("cn-zhangjiakou", "华北3（张家口）"),
    ("cn-shenzhen", "华南1（深圳）"),
    ("cn-hongkong", "中国香港"),
]
# OsTag, BaseOsTag, version, ImageId
IMAGES = [
    ("CentOS_7.6_64", "CentOS", "7.6", "centos_7_06_64_20G_alibase_20190711.vhd"),
    ("CentOS_7.9_64", "CentOS", "7.9", "centos_7_9_x64_20G_alibase_20230815.vhd"),
    ("AliyunLinux_2.1903_64", "AliyunLinux", "2.1903", "aliyun_2_1903_x64_20G_alibase_20230815.vhd"),
    ("Ubuntu_20.04_64", "Ubuntu", "20.04", "ubuntu_20_04_x64_20G_alibase_20230815.vhd"),
]
SERIES = [
    ("ComputeOptimized", "计算型", ["ecs.c6.large", "ecs.c6.xlarge", "ecs.c6.2xlarge"]),
    ("GeneralPurpose", "通用型", ["ecs.g6.large", "ecs.g6.xlarge", "ecs.g6.2xlarge"]),
    ("MemoryOptimized", "内存型", ["ecs.r6.large", "ecs.r6.xlarge"]),
    ("GpuCompute", "GPU计算型", ["ecs.gn6i-c4g1.xlarge"]),
]
SCHEDULERS = [("pbs", "19.1.1"), ("slurm", "20.02"), ("opengridscheduler", "2011.11"), ("deadline", "10.1")]
APPLICATIONS = [
    ("GROMACS", "2020.4"),
    ("LAMMPS", "2020.10"),
    ("OpenFOAM", "8"),
    ("WRF", "4.2"),
    ("Intel-MPI", "2018"),
]
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _tag(name: str, version: str) -> str:
    return f"{name.upper()}_{version}"


def _nothing(p: Params) -> None:
    return None


def list_regions(call: Call, _: None) -> dict[str, object]:
    return {
        "RequestId": call.request_id,
        "Regions": {"RegionInfo": [{"RegionId": r, "LocalName": name} for r, name in REGIONS]},
    }


def read_images(p: Params) -> str | None:
    p.text("InstanceType", max_length=64)
    return p.text("BaseOsTag", max_length=64)


def list_images(call: Call, base: str | None) -> dict[str, object]:
    return {
        "RequestId": call.request_id,
        "OsTags": {
            "OsInfo": [
                {
                    "OsTag": tag,
                    "BaseOsTag": base_tag,
                    "Version": version,
                    "ImageId": image,
                    "OSName": base_tag,
                    "OSNameEn": base_tag,
                    "Platform": base_tag,
                    "Architecture": "x86_64",
                }
                for tag, base_tag, version, image in IMAGES
                if base is None or base.lower() == base_tag.lower()
            ]
        },
    }


def read_ecs_types(p: Params) -> None:
    p.text("ZoneId", max_length=64)
    p.text("InstanceChargeType", max_length=32)
    p.text("SpotStrategy", max_length=32)


def list_ecs_types(call: Call, _: None) -> dict[str, object]:
    return {
        "RequestId": call.request_id,
        "SupportSpotInstance": True,
        "Series": {
            "SeriesInfo": [
                {
                    "SeriesId": series,
                    "SeriesName": name,
                    "Roles": {
                        "Manager": {"InstanceTypeId": [t for t in types if ".g6." in t] or types[:1]},
                        "Login": {"InstanceTypeId": [t for t in types if ".g6." in t] or types[:1]},
                        "Compute": {"InstanceTypeId": types},
                    },
                }
                for series, name, types in SERIES
            ]
        },
    }


def client_version(call: Call, _: None) -> dict[str, object]:
    return {"RequestId": call.request_id, "ClientVersion": CLIENT_VERSION}


def read_softwares(p: Params) -> tuple[str | None, str | None]:
    return p.text("EhpcVersion", max_length=32), p.text("OsTag", max_length=128)


def list_softwares(call: Call, query: tuple[str | None, str | None]) -> dict[str, object]:
    version, os_tag = query
    infos = [
        {
            "EhpcVersion": version or "1.0.0",
            "OsTag": tag,
            "SchedulerType": scheduler,
            "SchedulerVersion": scheduler_version,
            "AccountType": "nis",
            "AccountVersion": "2.31",
            "Applications": {
                "ApplicationInfo": [
                    {"Name": name, "Version": app_version, "Tag": _tag(name, app_version), "Required": False}
                    for name, app_version in APPLICATIONS
                ]
            },
        }
        for tag, _, _, _ in IMAGES
        if os_tag is None or os_tag == tag
        for scheduler, scheduler_version in SCHEDULERS
    ]
    return {"RequestId": call.request_id, "Softwares": {"SoftwareInfo": infos}}


# --- Software on a cluster ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SoftwareChange:
    cluster_id: str
    tags: list[str]


def read_change(p: Params) -> SoftwareChange:
    text = p.required_str("Application", max_length=1024)
    tags = [t.strip() for t in text.split(",") if t.strip()]
    known = {_tag(name, version) for name, version in APPLICATIONS}
    for tag in tags:
        if not _TAG.match(tag) or tag.upper() not in known:
            raise InvalidParams("Application", f"is not one of {sorted(known)}")
    return SoftwareChange(p.required_str("ClusterId", max_length=64), [t.upper() for t in tags])


def read_cluster(p: Params) -> str:
    return p.required_str("ClusterId", max_length=64)


def install(call: Call, change: SoftwareChange) -> dict[str, object]:
    call.services.cluster_admin.software(call.principal, change.cluster_id, add=change.tags)
    return {"RequestId": call.request_id}


def uninstall(call: Call, change: SoftwareChange) -> dict[str, object]:
    call.services.cluster_admin.software(call.principal, change.cluster_id, remove=change.tags)
    return {"RequestId": call.request_id}


def installed(call: Call, cluster_id: str) -> dict[str, object]:
    tags = call.services.cluster_admin.software(call.principal, cluster_id)
    return {
        "RequestId": call.request_id,
        "SoftwareList": {
            "SoftwareList": [
                {
                    "SoftwareId": tag,
                    "SoftwareName": tag.rpartition("_")[0] or tag,
                    "SoftwareVersion": tag.rpartition("_")[2],
                    "SoftwareStatus": "Installed",
                }
                for tag in tags
            ]
        },
    }


def _any(name: str) -> Permission:
    return Permission(f"ehpc:{name}", ALL_RESOURCES)


def _on_cluster(name: str) -> Permission:
    return Permission(f"ehpc:{name}", CLUSTER_ARN)


LIST_REGIONS = Action("ListRegions", _any("ListRegions"), _nothing, list_regions)
LIST_IMAGES = Action("ListImages", _any("ListImages"), read_images, list_images)
LIST_PREFERRED_ECS_TYPES = Action(
    "ListPreferredEcsTypes", _any("ListPreferredEcsTypes"), read_ecs_types, list_ecs_types
)
LIST_CURRENT_CLIENT_VERSION = Action(
    "ListCurrentClientVersion", _any("ListCurrentClientVersion"), _nothing, client_version
)
LIST_SOFTWARES = Action("ListSoftwares", _any("ListSoftwares"), read_softwares, list_softwares)
LIST_INSTALLED_SOFTWARE = Action(
    "ListInstalledSoftware", _on_cluster("ListInstalledSoftware"), read_cluster, installed
)
INSTALL_SOFTWARE = Action("InstallSoftware", _on_cluster("InstallSoftware"), read_change, install)
UNINSTALL_SOFTWARE = Action("UninstallSoftware", _on_cluster("UninstallSoftware"), read_change, uninstall)
