"""The reconciler: a worker's periodic look at the clusters its host owns, and recovery on start.

A provider that acts on this machine (`owner_host` set) is observed: each node's real state becomes
its ListNodes Status (a slurmd killed by hand shows as exception within a round). The first round
after the worker starts brings every cluster whose record says running back up (after a reboot,
nothing runs: a StartCluster-like recovery with a token of its own).
"""

from __future__ import annotations

import structlog

from hpcplane.clock import Clock
from hpcplane.domain.errors import DbError, HpcplaneError
from hpcplane.domain.resources import ClusterStatus, NodeStatus
from hpcplane.providers.base import Provider
from hpcplane.providers.nodes import NodeRef
from hpcplane.store import reconcile as store
from hpcplane.store.db import Database

log = structlog.get_logger("hpcplane.reconciler")

# The statuses the reconciler may move a node between; others belong to a task.
OBSERVED = frozenset({NodeStatus.RUNNING.value, NodeStatus.STOPPED.value, NodeStatus.EXCEPTION.value})


class Reconciler:
    def __init__(self, db: Database, clock: Clock, provider: Provider, *, host: str, owner: str) -> None:
        self._db = db
        self._clock = clock
        self._provider = provider
        self._host = host
        self._owner = owner
        self._recovered = False

    def round(self) -> None:
        """Recover once (the first round), then observe every owned running cluster."""
        if not self._recovered:
            self.recover()
            self._recovered = True
        self.observe()

    def recover(self) -> None:
        with self._db.read() as conn:
            owned = store.owned_clusters(conn, self._host, ClusterStatus.RUNNING.value)
        for cluster_id in owned:
            with self._db.read() as conn:
                # Nodes stopped on purpose (StopNodes) stay stopped.
                nodes = store.idle_nodes(conn, cluster_id)
                refs = [_ref(n) for n in nodes if n["status"] != NodeStatus.STOPPED.value]
            try:
                self._provider.ensure_cluster_running(f"recover:{self._owner}", cluster_id, refs)
            except DbError:
                raise
            except HpcplaneError as error:
                log.warning("could not recover the cluster", cluster_id=cluster_id, error=error.message)
            else:
                log.info("cluster recovered", cluster_id=cluster_id)

    def observe(self) -> int:
        """Observe each owned running cluster; returns how many node statuses changed."""
        with self._db.read() as conn:
            owned = store.owned_clusters(conn, self._host, ClusterStatus.RUNNING.value)
        changed = 0
        for cluster_id in owned:
            # Read before observing: a node a task changes meanwhile no longer matches `was` below.
            with self._db.read() as conn:
                before = store.idle_nodes(conn, cluster_id)
            states = self._provider.observe_nodes(cluster_id)
            if states is None:
                continue
            by_host = {s.hostname: s.status for s in states}
            with self._db.write() as conn:
                now = self._clock.now()
                for node in before:
                    seen = by_host.get(node["hostname"])
                    if seen is None or node["status"] not in OBSERVED or seen == node["status"]:
                        continue
                    if store.set_observed(conn, node["id"], node["status"], seen, now):
                        changed += 1
                        log.info("node observed", hostname=node["hostname"], was=node["status"], now=seen)
        return changed


def _ref(node: dict[str, str]) -> NodeRef:
    return NodeRef(node["id"], node["hostname"], node["role"], node["private_ip"])
