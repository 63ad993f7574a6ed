"""One cluster's real objects on the machine: namespaces, veths, bridge, munged, slurmctld, slurmd."""

from __future__ import annotations

import os
import pwd
import shutil
from collections.abc import Sequence
from ipaddress import IPv4Network
from pathlib import Path

from hpcplane.domain.errors import ProviderFailed
from hpcplane.providers.local import commands as cmd
from hpcplane.providers.local import processes, slurmconf, slurmstate
from hpcplane.providers.local.commands import Completed, Runner
from hpcplane.providers.local.records import ClusterPaths, ClusterRecord, NodeRecord

START_TIMEOUT = 30.0


class Machine:
    """Acts on one cluster's objects; each method makes one thing so (and does nothing if it is)."""

    def __init__(
        self, runner: Runner, record: ClusterRecord, paths: ClusterPaths, start_timeout: float = START_TIMEOUT
    ) -> None:
        self.runner = runner
        self.record = record
        self.paths = paths
        self.start_timeout = start_timeout

    # --- files ----------------------------------------------------------------------------------

    def layout(self) -> None:
        """The directories, with the owners and modes munged and slurmctld insist on."""
        p = self.paths
        for directory in (p.etc, p.run, p.log, p.ns, p.home, p.spool_root):
            directory.mkdir(parents=True, exist_ok=True)
        p.root.chmod(0o755)  # job users traverse it to their homes and their output files
        munge = pwd.getpwnam("munge")
        slurm = pwd.getpwnam("slurm")
        p.munge.mkdir(exist_ok=True)
        os.chown(p.munge, munge.pw_uid, munge.pw_gid)
        p.munge.chmod(0o755)  # munged requires a socket directory that everyone may enter
        p.state.mkdir(parents=True, exist_ok=True)
        os.chown(p.state, slurm.pw_uid, slurm.pw_gid)
        p.state.chmod(0o700)

    def write_config(self) -> None:
        for path, text in (
            (self.paths.slurm_conf, slurmconf.slurm_conf(self.record, self.paths)),
            (self.paths.cgroup_conf, slurmconf.cgroup_conf()),
        ):
            temporary = path.with_suffix(".tmp")
            temporary.write_text(text)
            temporary.chmod(0o644)
            os.replace(temporary, path)

    # --- kernel objects -----------------------------------------------------------------------

    def ensure_bridge(self) -> None:
        argvs = cmd.bridge_up(self.record.names)
        self._all(argvs[1:] if _link_exists(self.record.bridge) else argvs)

    def ensure_node_namespace(self, node: NodeRecord) -> None:
        """The node's namespace with its address on eth0; one left half-built by a crash is rebuilt."""
        if not self._node_network_ready(node):
            if Path(f"/run/netns/{node.netns}").exists():
                processes.kill_all(self.netns_pids(node.netns))
                self.runner.run(["ip", "netns", "del", node.netns])
            prefixlen = IPv4Network(self.record.subnet).prefixlen
            _cleanup_link(self.runner, node.veth)
            _cleanup_link(self.runner, self.record.names.peer(node.slot))
            self._all(cmd.node_network(self.record.names, node, prefixlen))
        uts = self.paths.uts(node.hostname)
        if not _is_mount(uts):
            uts.touch()
            self.runner.run(cmd.uts_namespace(self.paths, node))

    def _node_network_ready(self, node: NodeRecord) -> bool:
        if not Path(f"/run/netns/{node.netns}").exists() or not _link_exists(node.veth):
            return False
        done = self.runner.run(
            ["ip", "-n", node.netns, "-o", "-4", "addr", "show", "dev", "eth0"], check=False
        )
        return done.returncode == 0 and f" {node.address}/" in done.stdout

    def remove_node_namespace(self, node: NodeRecord) -> None:
        """The node's processes, namespace (and with it both veth ends) and UTS mount: gone."""
        if Path(f"/run/netns/{node.netns}").exists():
            processes.kill_all(self.netns_pids(node.netns))
            self.runner.run(["ip", "netns", "del", node.netns])
        _cleanup_link(self.runner, node.veth)
        uts = self.paths.uts(node.hostname)
        if _is_mount(uts):
            self.runner.run(["umount", str(uts)])
        uts.unlink(missing_ok=True)

    def remove_bridge(self) -> None:
        _cleanup_link(self.runner, self.record.bridge)

    def netns_pids(self, netns: str) -> list[int]:
        done = self.runner.run(["ip", "netns", "pids", netns], check=False)
        return [int(p) for p in done.stdout.split() if p.isdigit()]

    # --- daemons --------------------------------------------------------------------------------

    def ensure_munge(self) -> None:
        manager = self.manager
        if not self.paths.munge_key.exists():
            self.runner.run(cmd.mungekey(self.paths))
            self.paths.munge_key.chmod(0o400)
        if self.munged_pid() is None:
            self.runner.run(cmd.in_node(self.paths, manager, cmd.munged(self.paths)), daemon=True)
            if not processes.wait_for(
                lambda: self.munged_pid() is not None and self.paths.munge_socket.exists(),
                timeout=self.start_timeout,
            ):
                raise ProviderFailed(what="start munged", reason=self._log_tail("munge/munged.log"))

    def munged_pid(self) -> int | None:
        return processes.daemon_pid(self.paths.munge_pid, str(self.paths.munge_socket))

    def stop_munge(self) -> None:
        processes.stop(self.paths.munge_pid, str(self.paths.munge_socket), what="munged")

    def slurmctld_pid(self) -> int | None:
        return processes.daemon_pid(self.paths.slurmctld_pid, self._marker("slurmctld"))

    def ensure_slurmctld(self) -> None:
        if self.slurmctld_pid() is None:
            self.runner.run(cmd.in_node(self.paths, self.manager, cmd.slurmctld(self.paths)), daemon=True)
        if not processes.wait_for(self._controller_answers, timeout=self.start_timeout, interval=0.3):
            raise ProviderFailed(what="start slurmctld", reason=self._log_tail("log/slurmctld.log"))

    def stop_slurmctld(self) -> None:
        processes.stop(self.paths.slurmctld_pid, self._marker("slurmctld"), what="slurmctld")

    def restart_slurmctld(self) -> None:
        """Slurm 22.05 refuses `scontrol reconfigure` when the node count changes: restart instead."""
        self.stop_slurmctld()
        self.ensure_slurmctld()
        self.scontrol("reconfigure", check=False)

    def slurmd_pid(self, node: NodeRecord) -> int | None:
        return processes.daemon_pid(self.paths.slurmd_pid(node.hostname), self._marker("slurmd"))

    def start_slurmd(self, node: NodeRecord, *, clean: bool = False) -> None:
        if self.slurmd_pid(node) is None:
            self.paths.spool(node.hostname).mkdir(parents=True, exist_ok=True)
            argv = cmd.in_node(self.paths, node, cmd.slurmd(self.paths, clean=clean))
            self.runner.run(argv, daemon=True)
            if not processes.wait_for(lambda: self.slurmd_pid(node) is not None, timeout=self.start_timeout):
                raise ProviderFailed(
                    what=f"start slurmd on {node.hostname}",
                    reason=self._log_tail(f"log/slurmd-{node.hostname}.log"),
                )

    def stop_slurmd(self, node: NodeRecord) -> None:
        processes.stop(self.paths.slurmd_pid(node.hostname), self._marker("slurmd"), what="slurmd")

    # --- Slurm's clients, run on the login node ------------------------------------------------

    def client(
        self, argv: Sequence[str], *, env: dict[str, str] | None = None, check: bool = True
    ) -> Completed:
        login = self.record.by_role("login")[0]
        environment = {**cmd.slurm_env(self.paths), **(env or {})}
        return self.runner.run(cmd.in_node(self.paths, login, argv), env=environment, check=check, timeout=30)

    def scontrol(self, *args: str, check: bool = True) -> Completed:
        return self.client(cmd.scontrol(*args), check=check)

    def slurm_nodes(self) -> dict[str, slurmstate.SlurmNode]:
        done = self.scontrol("show", "node", "-o", check=False)
        return slurmstate.parse_nodes(done.stdout) if done.returncode == 0 else {}

    def slurm_jobs(self, job_id: str | None = None) -> list[slurmstate.SlurmJob]:
        args = ["show", "job", "-o", *([job_id] if job_id else [])]
        done = self.scontrol(*args, check=False)
        return slurmstate.parse_jobs(done.stdout) if done.returncode == 0 else []

    @property
    def manager(self) -> NodeRecord:
        return self.record.by_role("manager")[0]

    def _controller_answers(self) -> bool:
        if self.slurmctld_pid() is None:
            return False
        done = self.scontrol("ping", check=False)
        return done.returncode == 0 and " is UP" in done.stdout

    def _marker(self, daemon: str) -> str:
        return f"{daemon} -f {self.paths.slurm_conf}"

    def _log_tail(self, relative: str) -> str:
        try:
            lines = (self.paths.root / relative).read_text(errors="replace").strip().splitlines()
        except FileNotFoundError:
            return "the daemon did not start and wrote no log"
        errors = [line for line in lines if "error" in line.lower() or "fatal" in line.lower()]
        return (errors or lines or ["no log lines"])[-1][:300]

    def _all(self, argvs: list[cmd.Argv]) -> None:
        for argv in argvs:
            self.runner.run(argv)


def _link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def _cleanup_link(runner: Runner, name: str) -> None:
    if _link_exists(name):
        runner.run(["ip", "link", "del", name], check=False)


def _is_mount(path: Path) -> bool:
    target = str(path)
    try:
        with open("/proc/self/mountinfo") as handle:
            return any(line.split()[4] == target for line in handle)
    except OSError:
        return False


def remove_tree(path: Path) -> None:
    """The cluster's directory, after its mounts are gone (never follows a mount out of it)."""
    if path.exists():
        shutil.rmtree(path)
