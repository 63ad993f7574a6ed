"""The local provider's contract: token-keyed "make it so" operations on real Slurm clusters, and observation.

Every operation takes the token of its (TaskId, step). A token already done returns what it returned
the first time without acting; a token not done acts only where the machine differs from the record,
so a worker killed half-way and retried with the same token finishes the work, never doubles it.
The record is saved before a kernel object is made, so destroy always knows what to remove.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from hpcplane.domain.errors import IdempotentParameterMismatch, InvalidParams, ProviderFailed
from hpcplane.providers.local import commands as cmd
from hpcplane.providers.local import network, processes
from hpcplane.providers.local.commands import Runner, SubprocessRunner
from hpcplane.providers.local.machine import START_TIMEOUT, Machine, remove_tree
from hpcplane.providers.local.observe import JobOutput, NodeObservation, read_output
from hpcplane.providers.local.records import (
    HOSTNAME,
    ClusterRecord,
    KernelNames,
    NodeRecord,
    RecordStore,
    Role,
    tag_of,
)
from hpcplane.providers.local.sbatch import JobRequest, build_sbatch
from hpcplane.providers.local.slurmstate import SlurmJob

T = TypeVar("T")
REGISTER_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class NodesResult:
    """Per node: ready, or the reason it is not (an AddNodes step's PartialFail)."""

    ready: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def machine_routes(runner: Runner) -> list[IPv4Network]:
    done = runner.run(["ip", "-j", "route", "show", "table", "all"], check=False)
    if done.returncode == 0 and done.stdout.strip():
        return network.routes_from_ip_json(done.stdout)
    return network.routes_from_proc(Path("/proc/net/route").read_text())


class LocalClusters:
    """Real Slurm clusters on this machine, their records under `home`/local."""

    def __init__(
        self,
        home: Path,
        *,
        network_range: str = network.DEFAULT_NETWORK,
        prefix: str = "hp",
        runner: Runner | None = None,
        register_timeout: float = REGISTER_TIMEOUT,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.store = RecordStore(home.resolve() / "local")
        self.network_range = network_range
        self.prefix = prefix
        self.runner = runner or SubprocessRunner()
        self.register_timeout = register_timeout
        self.start_timeout = start_timeout

    # --- the controller -------------------------------------------------------------------------

    def ensure_controller(
        self, token: str, cluster_id: str, *, manager: str = "manager", login: str = "login"
    ) -> list[str]:
        """A bridge and subnet, a manager running munged and slurmctld, a login node. Host names."""
        for name in (manager, login):
            _check_hostname(name)
        with self.store.locked(cluster_id):
            record = self._load_or_plan(cluster_id, manager, login)
            return self._once(record, token, "ensure_controller", lambda: self._bring_up(record, []))

    def _load_or_plan(self, cluster_id: str, manager: str, login: str) -> ClusterRecord:
        if self.store.exists(cluster_id):
            return self.store.load(cluster_id)
        plan = network.AddressPlan.checked(self.network_range, machine_routes(self.runner))
        subnet = plan.subnet_for(r.subnet for r in self.store.all())
        names = KernelNames(self.prefix, tag_of(cluster_id))
        record = ClusterRecord(cluster_id, self.prefix, names.tag, str(subnet), names.bridge)
        if Path(f"/sys/class/net/{names.bridge}").exists():
            raise ProviderFailed(what="plan the cluster", reason=f"{names.bridge} exists already")
        self._add_record_node(record, manager, "manager")
        self._add_record_node(record, login, "login")
        self.store.paths(cluster_id).root.mkdir(parents=True, exist_ok=True)
        self.store.save(record)
        return record

    def _bring_up(self, record: ClusterRecord, hostnames: list[str]) -> list[str]:
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
            _check_hostname(name)
        with self.store.locked(cluster_id):
            record = self.store.load(cluster_id)

            def work() -> dict[str, Any]:
                new = [h for h in hostnames if record.find(h) is None]
                for hostname in new:
                    self._add_record_node(record, hostname, "compute")
                for hostname in hostnames:
                    record.node(hostname).desired = "running"
                self.store.save(record)
                machine = self._machine(record)
                for hostname in hostnames:
                    machine.ensure_node_namespace(record.node(hostname))
                machine.write_config()
                if new or machine.slurmctld_pid() is None:
                    machine.restart_slurmctld()
                return _as_dict(self._start_and_wait(machine, hostnames))

            return _as_result(self._once(record, token, "ensure_nodes", work))

    def ensure_node_running(self, token: str, cluster_id: str, hostname: str) -> NodesResult:
        """slurmd runs on the node and the node takes work again (StartNodes)."""
        with self.store.locked(cluster_id):
            record = self.store.load(cluster_id)

            def work() -> dict[str, Any]:
                record.node(hostname).desired = "running"
                self.store.save(record)
                machine = self._machine(record)
                machine.ensure_node_namespace(record.node(hostname))
                return _as_dict(self._start_and_wait(machine, [hostname]))

            return _as_result(self._once(record, token, "ensure_node_running", work))

    def ensure_node_stopped(self, token: str, cluster_id: str, hostname: str) -> None:
        """The node is drained and nothing runs in it: slurmd and its jobs' processes gone (StopNodes)."""
        with self.store.locked(cluster_id):
            record = self.store.load(cluster_id)

            def work() -> None:
                node = record.node(hostname)
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
                node = record.node(hostname)
                machine = self._machine(record)
                machine.stop_slurmd(node)
                processes.kill_all(machine.netns_pids(node.netns))
                remove_tree(machine.paths.spool(hostname))
                node.desired = "running"
                self.store.save(record)
                machine.ensure_node_namespace(node)
                return _as_dict(self._start_and_wait(machine, [hostname], clean=True))

            return _as_result(self._once(record, token, "reset_node", work))

    def ensure_nodes_absent(self, token: str, cluster_id: str, hostnames: list[str]) -> None:
        """The nodes are out of Slurm and their namespaces, veths and files are gone (DeleteNodes)."""
        with self.store.locked(cluster_id):
            record = self.store.load(cluster_id)

            def work() -> None:
                machine = self._machine(record)
                present = [n for n in record.nodes if n.hostname in hostnames and n.role == "compute"]
                for node in present:
                    machine.stop_slurmd(node)
                    machine.remove_node_namespace(node)
                    remove_tree(machine.paths.spool(node.hostname))
                record.nodes = [n for n in record.nodes if n not in present]
                self.store.save(record)
                machine.write_config()
                if present:
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
                self._bring_up(record, [])
                machine = self._machine(record)
                wanted = [n.hostname for n in record.by_role("compute") if n.desired == "running"]
                return _as_dict(self._start_and_wait(machine, wanted))

            return _as_result(self._once(record, token, "ensure_cluster_running", work))

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
                if _account_exists(account):
                    self.runner.run(cmd.userdel(account), check=False)
        remove_tree(self.store.paths(cluster_id).root)

    # --- users and jobs -------------------------------------------------------------------------

    def ensure_user(self, token: str, cluster_id: str, name: str) -> str:
        """An unprivileged machine account for cluster user `name`; returns the account's name."""
        with self.store.locked(cluster_id):
            record = self.store.load(cluster_id)

            def work() -> str:
                account = record.names.user(name)
                record.users[name] = account
                self.store.save(record)
                home = self.store.paths(cluster_id).user_home(account)
                if not _account_exists(account):
                    self.runner.run(cmd.useradd(account, home))
                entry = pwd.getpwnam(account)
                home.mkdir(parents=True, exist_ok=True)
                os.chown(home, entry.pw_uid, entry.pw_gid)
                home.chmod(0o750)
                return account

            return self._once(record, token, "ensure_user", work)

    def submit_job(self, token: str, cluster_id: str, request: JobRequest) -> str:
        """sbatch as the RunasUser's account (never root); the token is the job's comment, so a retry
        after a crash between sbatch and the record finds the job instead of submitting it twice."""
        with self.store.locked(cluster_id):
            record = self.store.load(cluster_id)
            account = record.users.get(request.runas_user)
            if account is None:
                raise InvalidParams("RunasUser", f"{request.runas_user!r} is not a user of {cluster_id}")
            home = self.store.paths(cluster_id).user_home(account)
            sbatch = build_sbatch(request, PurePosixPath(home), token)

            def work() -> str:
                machine = self._machine(record)
                for job in machine.slurm_jobs():
                    if job.comment == f"hpcplane:{token}":
                        return job.array_job_id or job.job_id
                argv = ["sbatch", f"--uid={account}", f"--gid={account}", *sbatch.options]
                env = {"HOME": str(home), "USER": account, "LOGNAME": account, **sbatch.environment}
                done = machine.client(argv, env=env)
                return done.stdout.strip().split(";", 1)[0]

            return self._once(record, token, "submit_job", work)

    def cancel_job(self, token: str, cluster_id: str, job_id: str) -> None:
        """scancel; a job already ended is cancelled enough."""
        self._job_command(token, cluster_id, "cancel_job", ["scancel", _job_id(job_id)])

    def requeue_job(self, token: str, cluster_id: str, job_id: str) -> None:
        """scontrol requeue, once per token (a second requeue would restart the job again)."""
        self._job_command(token, cluster_id, "requeue_job", ["scontrol", "requeue", _job_id(job_id)])

    def _job_command(self, token: str, cluster_id: str, op: str, argv: list[str]) -> None:
        with self.store.locked(cluster_id):
            record = self.store.load(cluster_id)
            self._once(record, token, op, lambda: self._machine(record).client(argv, check=False) and None)

    # --- observation ------------------------------------------------------------------------------

    def record(self, cluster_id: str) -> ClusterRecord:
        return self.store.load(cluster_id)

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

    def observe_jobs(self, cluster_id: str, job_id: str | None = None) -> list[SlurmJob]:
        machine = self._machine(self.store.load(cluster_id))
        return machine.slurm_jobs(_job_id(job_id) if job_id else None)

    def job_output(self, cluster_id: str, job_id: str) -> JobOutput:
        """The job's real stdout and stderr (the first task's, for an array)."""
        jobs = self.observe_jobs(cluster_id, job_id)
        if not jobs:
            raise InvalidParams("JobId", f"{job_id} is not a job of {cluster_id}")
        return read_output(jobs[0], self.store.paths(cluster_id).root)

    # --- helpers ------------------------------------------------------------------------------

    def _machine(self, record: ClusterRecord) -> Machine:
        return Machine(self.runner, record, self.store.paths(record.cluster_id), self.start_timeout)

    def _add_record_node(self, record: ClusterRecord, hostname: str, role: Role) -> NodeRecord:
        subnet = IPv4Network(record.subnet)
        address = network.next_address(subnet, [n.address for n in record.nodes])
        slot = int(address) - int(subnet.network_address)
        node = NodeRecord(
            hostname=hostname,
            role=role,
            address=str(address),
            slot=slot,
            netns=record.names.netns(hostname),
            veth=record.names.veth(slot),
            cpus=os.cpu_count() or 1,
            memory_mb=1024,
        )
        record.nodes.append(node)
        return node

    def _start_and_wait(self, machine: Machine, hostnames: list[str], *, clean: bool = False) -> NodesResult:
        failed: dict[str, str] = {}
        for hostname in hostnames:
            try:
                machine.start_slurmd(machine.record.node(hostname), clean=clean)
            except ProviderFailed as error:
                failed[hostname] = error.message
        waiting = [h for h in hostnames if h not in failed]
        for hostname in waiting:
            machine.scontrol("update", f"NodeName={hostname}", "State=RESUME", check=False)

        def registered() -> bool:
            nodes = machine.slurm_nodes()
            return all(h in nodes and nodes[h].is_registered for h in waiting)

        if not processes.wait_for(registered, timeout=self.register_timeout, interval=0.5):
            nodes = machine.slurm_nodes()
            for hostname in waiting:
                node = nodes.get(hostname)
                if node is None or not node.is_registered:
                    state = "+".join(sorted(node.states)) if node else "unknown to slurmctld"
                    failed[hostname] = f"slurmd on {hostname} did not register in time ({state})"
        return NodesResult([h for h in hostnames if h not in failed], failed)

    def _once(self, record: ClusterRecord, token: str, op: str, work: Callable[[], T]) -> T:
        done = record.tokens.get(token)
        if done is not None:
            if done["op"] != op:
                raise IdempotentParameterMismatch()
            result: T = done["result"]
            return result
        outcome = work()
        record.tokens[token] = {"op": op, "result": outcome}
        self.store.save(record)
        return outcome


def _check_hostname(name: str) -> None:
    if not HOSTNAME.match(name):
        raise InvalidParams("Hostname", f"{name!r}: a lowercase letter, then letters, digits or -")


def _job_id(job_id: str) -> str:
    if not job_id.replace("_", "").isdigit():
        raise InvalidParams("JobId", f"{job_id!r} is not a Slurm job id")
    return job_id


def _account_exists(account: str) -> bool:
    try:
        pwd.getpwnam(account)
    except KeyError:
        return False
    return True


def _as_dict(result: NodesResult) -> dict[str, Any]:
    return {"ready": result.ready, "failed": result.failed}


def _as_result(data: dict[str, Any]) -> NodesResult:
    return NodesResult(list(data["ready"]), dict(data["failed"]))
