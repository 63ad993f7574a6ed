"""Clusters that already exist: the demo account's cluster, and fixtures for tests."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from hpcplane import ids
from hpcplane.clock import Clock
from hpcplane.store import clusters as cluster_store
from hpcplane.store.db import Database

_SUBNET = ipaddress.IPv4Network("192.168.0.0/16")


def seed_cluster(
    db: Database,
    clock: Clock,
    *,
    account_id: str,
    region: str,
    name: str,
    status: str = "running",
    computes: int = 0,
) -> str:
    """Write a cluster that is already up (one manager, one login, `computes` compute nodes)."""
    cluster_id = ids.cluster_id(region)
    now = clock.now()
    zone = f"{region}-b"
    cluster: dict[str, Any] = {
        "id": cluster_id,
        "account_id": account_id,
        "region_id": region,
        "zone_id": zone,
        "name": name,
        "description": "",
        "status": status,
        "os_tag": "CentOS_7.6_64",
        "image_id": "centos_7_06_64_20G_alibase_20190711.vhd",
        "base_os": "CentOS",
        "vpc_id": "vpc-" + ids.instance_id()[2:],
        "vswitch_id": "vsw-" + ids.instance_id()[2:],
        "security_group_id": "sg-" + ids.instance_id()[2:],
        "manager_instance_type": "ecs.g6.large",
        "login_instance_type": "ecs.g6.large",
        "compute_instance_type": "ecs.c6.large",
        "extra": json.dumps({}),
        "created_at": now,
        "updated_at": now,
    }
    roles = [("manager", "manager0"), ("login", "login0")] + [
        ("compute", f"compute{i}") for i in range(computes)
    ]
    node_rows = [
        {
            "id": ids.instance_id(),
            "cluster_id": cluster_id,
            "account_id": account_id,
            "role": role,
            "hostname": hostname,
            "status": "running" if status == "running" else "stopped",
            "instance_type": cluster[f"{role}_instance_type"],
            "private_ip": str(_SUBNET[index + 10]),
            "zone_id": zone,
            "image_id": cluster["image_id"],
            "created_at": now,
            "updated_at": now,
        }
        for index, (role, hostname) in enumerate(roles)
    ]
    with db.write() as conn:
        cluster_store.insert_cluster(conn, cluster)
        cluster_store.insert_nodes(conn, node_rows)
    return cluster_id
