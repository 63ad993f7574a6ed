"""What every local-provider operation shares: the records, the machine, tokens, and node start-up."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any, TypeVar

from hpcplane.domain.errors import IdempotentParameterMismatch, InvalidParams, ProviderFailed
from hpcplane.providers.local import network, processes
from hpcplane.providers.local.commands import Runner, SubprocessRunner
from hpcplane.providers.local.machine import START_TIMEOUT, Machine
from hpcplane.providers.local.records import HOSTNAME, ClusterRecord, NodeRecord, RecordStore, Role

T = TypeVar("T")
REGISTER_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class NodesResult:
    """Per node: ready, or the reason it is not (an AddNodes step's PartialFail)."""

    ready: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


NODE_MEMORY_MB = 1024


def node_memory_mb(meminfo: str | None = None) -> int:
    """What a node declares: 1024 MB, or less on a smaller machine (more than slurmd finds is INVALID)."""
    text = meminfo if meminfo is not None else Path("/proc/meminfo").read_text()
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return max(1, min(NODE_MEMORY_MB, int(line.split()[1]) // 1024 // 2))
    return NODE_MEMORY_MB


def machine_routes(runner: Runner) -> list[IPv4Network]:
    done = runner.run(["ip", "-j", "route", "show", "table", "all"], check=False)
    if done.returncode == 0 and done.stdout.strip():
        return network.routes_from_ip_json(done.stdout)
    return network.routes_from_proc(Path("/proc/net/route").read_text())


class Core:
    """The record store, the runner and the timeouts; token memo and node start-up for the operations."""

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

    def record(self, cluster_id: str) -> ClusterRecord:
        return self.store.load(cluster_id)

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
            memory_mb=node_memory_mb(),
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

    def _compute(self, record: ClusterRecord, hostname: str) -> NodeRecord:
        """A compute node of the record; manager and login are not the node operations' to change."""
        node = record.node(hostname)
        if node.role != "compute":
            raise InvalidParams("Hostname", f"{hostname!r} is the cluster's {node.role} node")
        return node


def check_hostname(name: str) -> None:
    if not HOSTNAME.match(name):
        raise InvalidParams("Hostname", f"{name!r}: a lowercase letter, then letters, digits or -")


def as_dict(result: NodesResult) -> dict[str, Any]:
    return {"ready": result.ready, "failed": result.failed}


def as_result(data: dict[str, Any]) -> NodesResult:
    return NodesResult(list(data["ready"]), dict(data["failed"]))
