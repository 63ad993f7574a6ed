"""`LocalProvider`: the Provider contract (providers/base.py) over `LocalClusters`, real Slurm clusters.

Each call maps the store's nodes (instance id, host name, role) to the facade's host names and back:
manager and login nodes are the cluster's controller, compute nodes its slurmd namespaces. Records
live under HPCPLANE_HOME/local/; the owning host is this machine's name, so only its workers claim
the tasks of its clusters. The job and user methods are the job half, inherited from `LocalJobs`
(jobs_provider.py).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from hpcplane.domain.errors import ClusterNotFound, InvalidParams, ProviderFailed
from hpcplane.domain.tasks import TaskType
from hpcplane.providers.faults import Fault
from hpcplane.providers.local.core import NodesResult
from hpcplane.providers.local.facade import LocalClusters
from hpcplane.providers.local.jobs_provider import LocalJobs
from hpcplane.providers.local.observe import NodeObservation
from hpcplane.providers.nodes import NodeRef, NodesOutcome, NodeState

NO_FAULT = Fault()


class LocalProvider(LocalJobs):
    """Real clusters on this machine: no step delay, no injected fault, capacity bound by the machine."""

    name = "local"

    def __init__(self, clusters: LocalClusters, *, host: str | None = None, capacity: int = 64) -> None:
        LocalJobs.__init__(self, clusters)
        self._host = host or socket.gethostname()
        self._capacity = capacity

    @classmethod
    def at(cls, home: Path, network_range: str, prefix: str = "hp") -> LocalProvider:
        return cls(LocalClusters(home, network_range=network_range, prefix=prefix))

    @property
    def owner_host(self) -> str | None:
        return self._host

    # --- Clusters and nodes ----------------------------------------------------------------------

    def prepare_cluster(self, token: str, cluster_id: str, nodes: list[NodeRef]) -> NodesOutcome:
        managers = [n for n in nodes if n.role == "manager"]
        logins = [n for n in nodes if n.role == "login"]
        extra = managers[1:] + logins[1:]
        if extra:
            names = ", ".join(n.hostname for n in extra)
            raise InvalidParams("EcsOrder", f"a local cluster has one manager and one login node ({names})")
        manager = managers[0].hostname if managers else "manager"
        login = logins[0].hostname if logins else "login"
        addresses = self.clusters.ensure_network(token, cluster_id, manager=manager, login=login)
        return NodesOutcome({n.instance_id: addresses.get(n.hostname, n.ip) for n in nodes}, {})

    def ensure_controller(self, token: str, cluster_id: str) -> None:
        self.clusters.ensure_controller(token, cluster_id)

    def ensure_nodes_running(
        self, token: str, cluster_id: str, nodes: list[NodeRef], *, new: bool
    ) -> NodesOutcome:
        computes = [n for n in nodes if n.role == "compute"]
        if new:
            if not computes:
                return self._confirm(cluster_id, nodes, NodesResult())
            result = self.clusters.ensure_nodes(token, cluster_id, [n.hostname for n in computes])
            return self._confirm(cluster_id, nodes, result)
        return self._each(cluster_id, nodes, token, self.clusters.ensure_node_running)

    def ensure_nodes_stopped(self, token: str, cluster_id: str, nodes: list[NodeRef]) -> NodesOutcome:
        def stop(node_token: str, cluster: str, hostname: str) -> NodesResult:
            self.clusters.ensure_node_stopped(node_token, cluster, hostname)
            return NodesResult([hostname])

        return self._each(cluster_id, nodes, token, stop)

    def reset_nodes(self, token: str, cluster_id: str, nodes: list[NodeRef]) -> NodesOutcome:
        return self._each(cluster_id, nodes, token, self.clusters.reset_node)

    def ensure_nodes_absent(
        self, token: str, cluster_id: str, nodes: list[NodeRef], *, release: bool
    ) -> NodesOutcome:
        # Untracking (release=False) would leave a namespace nobody manages: a local node always goes.
        computes = [n.hostname for n in nodes if n.role == "compute"]
        if computes:
            self.clusters.ensure_nodes_absent(token, cluster_id, computes)
        return NodesOutcome({n.instance_id: n.ip for n in nodes}, {})

    def ensure_cluster_stopped(self, token: str, cluster_id: str, nodes: list[NodeRef]) -> NodesOutcome:
        self.clusters.ensure_cluster_stopped(token, cluster_id)
        return NodesOutcome({n.instance_id: n.ip for n in nodes}, {})

    def ensure_cluster_running(self, token: str, cluster_id: str, nodes: list[NodeRef]) -> NodesOutcome:
        result = self.clusters.ensure_cluster_running(token, cluster_id)
        # Nodes stopped one by one (StopNodes) start too: StartCluster's targets are all its nodes.
        ready, failed = list(result.ready), dict(result.failed)
        for node in nodes:
            if node.role == "compute" and node.hostname not in ready and node.hostname not in failed:
                started = self._one(f"{token}:{node.hostname}", cluster_id, node.hostname)
                ready += started.ready
                failed.update(started.failed)
        return self._confirm(cluster_id, nodes, NodesResult(ready, failed))

    def destroy_cluster(
        self, token: str, cluster_id: str, nodes: list[NodeRef], *, release: bool
    ) -> NodesOutcome:
        self.clusters.destroy(cluster_id)
        return NodesOutcome({n.instance_id: n.ip for n in nodes}, {})

    def observe_nodes(self, cluster_id: str) -> list[NodeState] | None:
        try:
            observed = self.clusters.observe_nodes(cluster_id)
        except ClusterNotFound:
            return None
        return [node_state(o) for o in observed]

    # --- helpers ---------------------------------------------------------------------------------

    def _one(self, token: str, cluster_id: str, hostname: str) -> NodesResult:
        try:
            return self.clusters.ensure_node_running(token, cluster_id, hostname)
        except (ProviderFailed, InvalidParams) as error:
            return NodesResult([], {hostname: error.message})

    def _each(
        self,
        cluster_id: str,
        nodes: list[NodeRef],
        token: str,
        call: Callable[[str, str, str], NodesResult],
    ) -> NodesOutcome:
        """A per-node call for each compute node (token per node); a node's failure is its own."""
        ready: list[str] = []
        failed: dict[str, str] = {}
        for node in nodes:
            if node.role != "compute":
                ready.append(node.hostname)
                continue
            try:
                result = call(f"{token}:{node.hostname}", cluster_id, node.hostname)
            except (ProviderFailed, InvalidParams) as error:
                reason = getattr(error, "reason", "")
                failed[node.hostname] = f"{error.message} {reason}".strip()
                continue
            ready += result.ready
            failed.update(result.failed)
        return self._confirm(cluster_id, nodes, NodesResult(ready, failed))

    def _confirm(self, cluster_id: str, nodes: list[NodeRef], result: NodesResult) -> NodesOutcome:
        """The facade's answer by host name, as the engine's by instance id with the nodes' real IPs."""
        record = self.clusters.record(cluster_id)
        ready: dict[str, str] = {}
        failed: dict[str, str] = {}
        for node in nodes:
            found = record.find(node.hostname)
            if node.hostname in result.failed:
                failed[node.instance_id] = result.failed[node.hostname]
            elif node.role != "compute" or node.hostname in result.ready:
                ready[node.instance_id] = found.address if found is not None else node.ip
            else:
                failed[node.instance_id] = "not confirmed by the machine"
        return NodesOutcome(ready, failed)

    # --- The simulated cloud's knobs: none here --------------------------------------------------

    def step_delay(self) -> float:
        return 0.0

    def fault(self, task_type: TaskType) -> Fault:
        return NO_FAULT

    def node_fails(self, task_type: TaskType, hostname: str) -> bool:
        return False

    def capacity(self) -> int:
        return self._capacity


def node_state(observed: NodeObservation) -> NodeState:
    """ListNodes' Status and StateInSched from what the machine says (as ParallelCluster's clustermgtd)."""
    slurm = observed.slurm
    if observed.is_down and not (observed.desired == "stopped" and observed.is_stopped):
        return NodeState(observed.hostname, "exception", "down" if observed.role == "compute" else "")
    if observed.is_stopped:
        return NodeState(observed.hostname, "stopped", "down" if observed.role == "compute" else "")
    if observed.role != "compute":
        return NodeState(observed.hostname, "running")
    if slurm is not None and slurm.is_drained:
        return NodeState(observed.hostname, "stopped", "drain")
    sched = "alloc" if slurm is not None and slurm.is_running_job else "idle"
    return NodeState(observed.hostname, "running", sched)
