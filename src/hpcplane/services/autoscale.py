"""SetAutoScaleConfig / GetAutoScaleConfig, and the autoscaler's rounds.

The autoscaler reaches nodes only as a caller of the API would: it starts AddNodes and DeleteNodes
tasks (they appear in ListTasks like any other), on behalf of the cluster's account. Its intervals are
in minutes of `minute_seconds` real seconds, so the simulated clock can be scaled.

- Grow (EnableAutoGrow): every GrowIntervalInMinutes, if queued jobs ask for more nodes than are idle or
  being added, add ceil(shortfall x GrowRatio%) (+ ExtraNodesGrowRatio%) nodes, never past
  MaxNodesInCluster compute nodes.
- Shrink (EnableAutoShrink): every ShrinkIntervalInMinutes, count the rounds each running compute node
  has been idle (no running job, no task, not in ExcludeNodes); after ShrinkIdleTimes rounds, delete it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import structlog

from hpcplane import ids
from hpcplane.clock import Clock
from hpcplane.domain.accounts import Principal
from hpcplane.domain.errors import HpcplaneError
from hpcplane.domain.resources import NodeStatus, Role
from hpcplane.domain.tasks import TaskType
from hpcplane.providers.jobs import QUEUED, RUNNING
from hpcplane.services.clusters_admin import owned_cluster
from hpcplane.services.operations import AddSpec, Operations
from hpcplane.services.users import visible_cluster
from hpcplane.store import accounts as account_store
from hpcplane.store import autoscale as store
from hpcplane.store import clusters as cluster_store
from hpcplane.store import jobs as job_store
from hpcplane.store.db import Database

log = structlog.get_logger("hpcplane.autoscale")

# SetAutoScaleConfig's numbers: wire name -> (default, minimum, maximum), as the model documents them.
NUMBERS: dict[str, tuple[int, int, int]] = {
    "GrowIntervalInMinutes": (2, 2, 10),
    "GrowRatio": (100, 1, 100),
    "GrowTimeoutInMinutes": (20, 10, 60),
    "ExtraNodesGrowRatio": (0, 0, 100),
    "MaxNodesInCluster": (100, 0, 500),
    "ShrinkIdleTimes": (3, 2, 5),
    "ShrinkIntervalInMinutes": (2, 2, 10),
}
DEFAULTS: dict[str, Any] = {
    **{name: default for name, (default, _, _) in NUMBERS.items()},
    "EnableAutoGrow": False,
    "EnableAutoShrink": False,
    "ExcludeNodes": "",
    "SpotStrategy": "NoSpot",
    "SpotPriceLimit": 0.0,
    "ImageId": "",
    "ComputeEnableHt": True,
    "DnsConfig": "",
    "Queues": [],
}


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _due(state: dict[str, Any], key: str, now: datetime, every: timedelta) -> bool:
    last = state.get(key)
    return last is None or now - datetime.fromisoformat(last) >= every


class AutoscaleService:
    def __init__(
        self, db: Database, clock: Clock, *, minute_seconds: float, operations: Callable[[], Operations]
    ) -> None:
        self._db = db
        self._clock = clock
        self._minute = minute_seconds
        self._operations = operations

    def set_config(self, who: Principal, cluster_id: str, changes: dict[str, Any]) -> None:
        """Parameters not given keep their value (or take the default the first time)."""
        with self._db.write() as conn:
            owned_cluster(conn, who, cluster_id)
            config = {**DEFAULTS, **(store.get_config(conn, cluster_id) or {}), **changes}
            store.put_config(conn, cluster_id, who.account.id, config, self._clock.now())

    def get_config(self, who: Principal, cluster_id: str) -> tuple[str, dict[str, Any]]:
        """(scheduler type, configuration with defaults)."""
        with self._db.read() as conn:
            cluster = visible_cluster(conn, who, cluster_id)
            config = {**DEFAULTS, **(store.get_config(conn, cluster_id) or {})}
        return cluster.scheduler_type, config

    def advance(self) -> int:
        """One round over every cluster that autoscales; returns how many tasks it started."""
        with self._db.read() as conn:
            configured = store.enabled_clusters(conn)
        started = 0
        for cluster_id, account_id, config, state in configured:
            try:
                started += self._round(cluster_id, account_id, config, state)
            except HpcplaneError as error:  # a conflicting operation, the cluster gone...: next round
                log.info("autoscale round skipped", cluster_id=cluster_id, code=error.code)
        return started

    def _round(self, cluster_id: str, account_id: str, config: dict[str, Any], state: dict[str, Any]) -> int:
        now = self._clock.now()
        minute = timedelta(seconds=self._minute)
        with self._db.read() as conn:
            account = account_store.get_account(conn, account_id)
            cluster = store.cluster_row(conn, cluster_id, account_id)
            if account is None or cluster is None or cluster["status"] != "running" or cluster["task_id"]:
                return 0
            nodes = [
                n for n in cluster_store.cluster_nodes(conn, cluster_id) if n["role"] == Role.COMPUTE.value
            ]
            active = job_store.active_jobs(conn, cluster_id)
        who = Principal(account=account, access_key_id="hpcplane-autoscaler")
        busy = {h for job in active if job["state"] == RUNNING for h in str(job["node_list"]).split(",") if h}
        excluded = {h.strip() for h in str(config.get("ExcludeNodes", "")).split(",") if h.strip()}
        started = 0
        if config.get("EnableAutoGrow") and _due(
            state, "grown", now, minute * config["GrowIntervalInMinutes"]
        ):
            started += self._grow(who, cluster_id, config, nodes, active, busy)
            state["grown"] = _iso(now)
        if config.get("EnableAutoShrink") and _due(
            state, "checked", now, minute * config["ShrinkIntervalInMinutes"]
        ):
            started += self._shrink(who, cluster_id, config, state, nodes, busy | excluded)
            state["checked"] = _iso(now)
        with self._db.write() as conn:
            store.put_state(conn, cluster_id, state)
        return started

    def _grow(
        self,
        who: Principal,
        cluster_id: str,
        config: dict[str, Any],
        nodes: list[dict[str, Any]],
        active: list[dict[str, Any]],
        busy: set[str],
    ) -> int:
        wanted = sum(int(job["nodes"]) for job in active if job["state"] == QUEUED)
        idle = [n for n in nodes if n["status"] == NodeStatus.RUNNING.value and n["hostname"] not in busy]
        coming = [n for n in nodes if n["status"] in (NodeStatus.UNINIT.value, NodeStatus.INITING.value)]
        shortfall = wanted - len(idle) - len(coming)
        room = int(config["MaxNodesInCluster"]) - len(nodes)
        if shortfall <= 0 or room <= 0:
            return 0
        count = math.ceil(shortfall * int(config["GrowRatio"]) / 100)
        count += math.ceil(shortfall * int(config["ExtraNodesGrowRatio"]) / 100)
        count = min(count, room, 99)
        request_id = ids.request_id()
        raw = {"Action": "AddNodes", "ClusterId": cluster_id, "Count": str(count), "CreateMode": "autoscale"}
        spec = AddSpec(
            cluster_id=cluster_id,
            count=count,
            min_count=count,
            instance_type=None,
            prefix="",
            suffix="",
            zone_id=None,
            create_mode="autoscale",
            client_token=None,
            sync=False,
        )
        accepted = self._operations().add_nodes(who, request_id, spec, raw)
        log.info("autoscale grow", cluster_id=cluster_id, count=count, task_id=accepted.task_id)
        return 1

    def _shrink(
        self,
        who: Principal,
        cluster_id: str,
        config: dict[str, Any],
        state: dict[str, Any],
        nodes: list[dict[str, Any]],
        keep: set[str],
    ) -> int:
        rounds: dict[str, int] = dict(state.get("idle", {}))
        idle_now = {
            n["id"]
            for n in nodes
            if n["status"] == NodeStatus.RUNNING.value and not n["task_id"] and n["hostname"] not in keep
        }
        rounds = {node_id: rounds.get(node_id, 0) + 1 for node_id in idle_now}
        due = sorted(node_id for node_id, count in rounds.items() if count >= int(config["ShrinkIdleTimes"]))
        state["idle"] = {k: v for k, v in rounds.items() if k not in due}
        if not due:
            return 0
        request_id = ids.request_id()
        instances = [(f"Instance.{i}.Id", node_id) for i, node_id in enumerate(due, start=1)]
        raw = {"Action": "DeleteNodes", "ClusterId": cluster_id, **dict(instances)}
        accepted = self._operations().node_operation(
            who, request_id, TaskType.DELETE_COMPUTES, cluster_id, instances, Role.COMPUTE, raw
        )
        log.info("autoscale shrink", cluster_id=cluster_id, count=len(due), task_id=accepted.task_id)
        return 1
