"""The local provider's contract: token-keyed "make it so" operations on real Slurm clusters, and observation.

Every operation takes the token of its (TaskId, step). A token already done returns what it returned
the first time without acting; a token not done acts only where the machine differs from the record,
so a worker killed half-way and retried with the same token finishes the work, never doubles it.
The record is saved before a kernel object is made, so destroy always knows what to remove.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpcplane.domain.errors import ProviderFailed
from hpcplane.providers.local import commands as cmd
from hpcplane.providers.local import network, processes
from hpcplane.providers.local.core import NodesResult, as_dict, as_result, check_hostname, machine_routes
from hpcplane.providers.local.machine import remove_tree
from hpcplane.providers.local.observe import NodeObservation
from hpcplane.providers.local.records import ClusterRecord, KernelNames, tag_of
from hpcplane.providers.local.workload import Workload, account_exists

__all__ = ["LocalClusters", "NodesResult", "machine_routes"]


class LocalClusters(Workload):
    """Real Slurm clusters on this machine, their records under `home`/local."""

    # --- the controller -------------------------------------------------------------------------

    def ensure_controller(
        self, token: str, cluster_id: str, *, manager: str = "manager", login: str = "login"
    ) -> list[str]:
        """A bridge and subnet, a manager running munged and slurmctld, a login node. Host names."""
        for name in (manager, login):
            check_hostname(name)
        with self.store.locked(cluster_id):
            record = self._load_or_plan(cluster_id, manager, login)
            return self._once(record, token, "ensure_controller", lambda: self._bring_up(record))

    def ensure_network(
        self, token: str, cluster_id: str, *, manager: str = "manager", login: str = "login"
    ) -> dict[str, str]:
        """The bridge and subnet, and the manager and login namespaces (no daemon yet): host name -> IP.

        The first half of `ensure_controller`, for a CreateCluster step of its own (run-instances)."""
        for name in (manager, login):
            check_hostname(name)
        with self.store.locked(cluster_id):
            record = self._load_or_plan(cluster_id, manager, login)

            def work() -> dict[str, str]:
                machine = self._machine(record)
                machine.layout()
                machine.write_config()
                machine.ensure_bridge()
                for node in record.nodes:
                    if node.role != "compute":
                        machine.ensure_node_namespace(node)
                return {n.hostname: n.address for n in record.nodes if n.role != "compute"}

            return self._once(record, token, "ensure_network", work)

    def _load_or_plan(self, cluster_id: str, manager: str, login: str) -> ClusterRecord:
        if self.store.exists(cluster_id):
            return self.store.load(cluster_id)
        plan = network.AddressPlan.checked(self.network_range, machine_routes(self.runner))
        names = KernelNames(self.prefix, tag_of(cluster_id))
        if Path(f"/sys/class/net/{names.bridge}").exists():
            raise ProviderFailed(what="plan the cluster", reason=f"{names.bridge} exists already")
        with self.store.planning():
            subnet = plan.subnet_for(r.subnet for r in self.store.all())
            record = ClusterRecord(cluster_id, self.prefix, names.tag, str(subnet), names.bridge)
            self._add_record_node(record, manager, "manager")
            self._add_record_node(record, login, "login")
            self.store.save(record)
        return record

    def _bring_up(self, record: ClusterRecord) -> list[str]:
        machine = self._machine(record)
        machine.layout()
        machine.write_config()
        machine.ensure_bridge()
        for node in record.nodes:
            machine.ensure_node_namespace(node)
        machine.ensure_munge()
        machine.ensure_slurmctld()
        return [n.hostname for n in record.nodes if n.role != "compute"]

    # --- compute nodes --------------------------------------------------------------------------

    def ensure_nodes(self, token: str, cluster_id: str, hostnames: list[str]) -> NodesResult:
        """These compute nodes exist and run slurmd, registered with slurmctld (AddNodes)."""
        for name in hostnames:
            check_hostname(name)
        with self.store.locked(cluster_id):
            record = self.store.load(cluster_id)

            def work() -> dict[str, Any]:
                new = [h for h in hostnames if record.find(h) is None]
                for hostname in new:
                    self._add_record_node(record, hostname, "compute")
                for hostname in hostnames:
                    self._compute(record, hostname).desired = "running"
                self.store.save(record)
                machine = self._machine(record)
                for hostname in hostnames:
                    machine.ensure_node_namespace(record.node(hostname))
                machine.write_config()
                # Observed, not assumed: after a crash the record may hold nodes slurmctld never loaded.
                known = machine.slurm_nodes() if machine.slurmctld_pid() is not None else {}
                if any(hostname not in known for hostname in hostnames):
                    machine.restart_slurmctld()
                return as_dict(self._start_and_wait(machine, hostnames))

            return as_result(self._once(record, token, "ensure_nodes", work))

    def ensure_node_running(self, token: str, cluster_id: str, hostname: str) -> NodesResult:
        """slurmd runs on the node and the node takes work again (StartNodes)."""
        with self.store.locked(cluster_id):
            record = self.store.load(cluster_id)

            def work() -> dict[str, Any]:
                self._compute(record, hostname).desired = "running"
                self.store.save(record)
                machine = self._machine(record)
                machine.ensure_node_namespace(record.node(hostname))
                return as_dict(self._start_and_wait(machine, [hostname]))

            return as_result(self._once(record, token, "ensure_node_running", work))

    def ensure_node_stopped(self, token: str, cluster_id: str, hostname: str) -> None:
        """The node is drained and nothing runs in it: slurmd and its jobs' processes gone (StopNodes)."""
        with self.store.locked(cluster_id):
            record = self.store.load(cluster_id)

            def work() -> None:
                node = self._compute(record, hostname)
                node.desired = "stopped"
                self.store.save(record)
                machine = self._machine(record)
                machine.scontrol(
                    "update", f"NodeName={hostname}", "State=DRAIN", "Reason=hpcplane-stop", check=False
                )
                machine.stop_slurmd(node)
                processes.kill_all(machine.netns_pids(node.netns))

            self._once(record, token, "ensure_node_stopped", work)

    def reset_node(self, token: str, cluster_id: str, hostname: str) -> NodesResult:
        """The node's state wiped (spool, processes) and slurmd started clean, once per token."""
        with self.store.locked(cluster_id):
            record = self.store.load(cluster_id)

            def work() -> dict[str, Any]:
                node = self._compute(record, hostname)
                machine = self._machine(record)
                machine.stop_slurmd(node)
                processes.kill_all(machine.netns_pids(node.netns))
                remove_tree(machine.paths.spool(hostname))
                node.desired = "running"
                self.store.save(record)
                machine.ensure_node_namespace(node)
                return as_dict(self._start_and_wait(machine, [hostname], clean=True))

            return as_result(self._once(record, token, "reset_node", work))

    def ensure_nodes_absent(self, token: str, cluster_id: str, hostnames: list[str]) -> None:
        """The nodes are out of Slurm and their namespaces, veths and files are gone (DeleteNodes)."""
        with self.store.locked(cluster_id):
            record = self.store.load(cluster_id)

            def work() -> None:
                machine = self._machine(record)
                present = [self._compute(record, h) for h in hostnames if record.find(h) is not None]
                for node in present:
                    machine.stop_slurmd(node)
                    machine.remove_node_namespace(node)
                    remove_tree(machine.paths.spool(node.hostname))
                record.nodes = [n for n in record.nodes if n not in present]
                self.store.save(record)
                machine.write_config()
                # A retry after a crash finds the record without them: slurmctld may still hold them.
                known = machine.slurm_nodes() if machine.slurmctld_pid() is not None else {}
                if present or any(hostname in known for hostname in hostnames):
                    machine.restart_slurmctld()

            self._once(record, token, "ensure_nodes_absent", work)

    # --- the whole cluster ----------------------------------------------------------------------

    def ensure_cluster_stopped(self, token: str, cluster_id: str) -> None:
        """Every daemon of the cluster stopped; namespaces and files stay (StopCluster)."""
        with self.store.locked(cluster_id):
            record = self.store.load(cluster_id)

            def work() -> None:
                record.running = False
                self.store.save(record)
                machine = self._machine(record)
                for node in record.by_role("compute"):
                    machine.stop_slurmd(node)
                machine.stop_slurmctld()
                machine.stop_munge()

            self._once(record, token, "ensure_cluster_stopped", work)

    def ensure_cluster_running(self, token: str, cluster_id: str) -> NodesResult:
        """Every daemon the record wants is running again (StartCluster, and recovery after a reboot)."""
        with self.store.locked(cluster_id):
            record = self.store.load(cluster_id)

            def work() -> dict[str, Any]:
                record.running = True
                self.store.save(record)
                self._bring_up(record)
                machine = self._machine(record)
                wanted = [n.hostname for n in record.by_role("compute") if n.desired == "running"]
                return as_dict(self._start_and_wait(machine, wanted))

            return as_result(self._once(record, token, "ensure_cluster_running", work))

    def destroy(self, cluster_id: str) -> None:
        """Nothing of the cluster left: processes, namespaces, veths, bridge, mounts, accounts, files."""
        if not self.store.exists(cluster_id):
            remove_tree(self.store.paths(cluster_id).root)
            return
        with self.store.locked(cluster_id):
            record = self.store.load(cluster_id)
            machine = self._machine(record)
            for node in record.nodes:
                machine.remove_node_namespace(node)
            machine.stop_munge()
            machine.remove_bridge()
            for account in record.users.values():
                if account_exists(account):
                    self.runner.run(cmd.userdel(account), check=False)
        remove_tree(self.store.paths(cluster_id).root)

    def observe_nodes(self, cluster_id: str) -> list[NodeObservation]:
        record = self.store.load(cluster_id)
        machine = self._machine(record)
        slurm = machine.slurm_nodes() if machine.slurmctld_pid() is not None else {}
        observed = []
        for node in record.nodes:
            if node.role == "compute":
                alive = machine.slurmd_pid(node) is not None
            elif node.role == "manager":
                alive = machine.slurmctld_pid() is not None
            else:
                alive = Path(f"/run/netns/{node.netns}").exists()
            observed.append(
                NodeObservation(
                    node.hostname, node.role, node.address, node.desired, alive, slurm.get(node.hostname)
                )
            )
        return observed
