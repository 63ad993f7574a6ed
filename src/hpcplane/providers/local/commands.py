"""The commands the local provider runs, built by pure functions, and the one runner that runs them."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hpcplane.domain.errors import ProviderFailed
from hpcplane.providers.local.records import ClusterPaths, KernelNames, NodeRecord

# Daemons and jobs get this environment, never the server's (which may hold secrets).
BASE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}

Argv = list[str]


@dataclass(frozen=True, slots=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class Runner(Protocol):
    """Runs one command; `daemon` ones fork and leave, so their output is not captured."""

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float = 60.0,
        daemon: bool = False,
    ) -> Completed: ...


class SubprocessRunner:
    """The real runner: no shell, a clean environment, a timeout, stderr's last line on failure."""

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float = 60.0,
        daemon: bool = False,
    ) -> Completed:
        environment = {**BASE_ENV, **(env or {})}
        try:
            if daemon:
                # A daemon keeps inherited pipes open after its parent exits: give it none.
                code = subprocess.run(  # noqa: S603 - argv lists built in this module, no shell
                    list(argv),
                    env=environment,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=timeout,
                    start_new_session=True,
                    check=False,
                ).returncode
                result = Completed(tuple(argv), code, "", "")
            else:
                done = subprocess.run(  # noqa: S603 - argv lists built in this module, no shell
                    list(argv), env=environment, capture_output=True, text=True, timeout=timeout, check=False
                )
                result = Completed(tuple(argv), done.returncode, done.stdout, done.stderr)
        except FileNotFoundError:
            raise ProviderFailed(
                what=f"run {argv[0]}", reason="not installed (see hpcplane doctor)"
            ) from None
        except subprocess.TimeoutExpired:
            raise ProviderFailed(
                what=f"run {' '.join(argv[:3])}", reason=f"no answer in {timeout}s"
            ) from None
        if check and result.returncode != 0:
            raise ProviderFailed(what=f"run {' '.join(argv[:4])}", reason=last_line(result))
        return result


def last_line(result: Completed) -> str:
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[-1][:300] if lines else f"exit status {result.returncode}"


# --- Kernel objects --------------------------------------------------------------------------------


def bridge_up(names: KernelNames) -> list[Argv]:
    return [
        ["ip", "link", "add", names.bridge, "type", "bridge"],
        ["ip", "link", "set", names.bridge, "up"],
    ]


def bridge_down(names: KernelNames) -> list[Argv]:
    return [["ip", "link", "del", names.bridge]]


def node_network(names: KernelNames, node: NodeRecord, prefixlen: int) -> list[Argv]:
    """A namespace, a veth pair with one end on the bridge and the other as the node's eth0."""
    peer = names.peer(node.slot)
    ns = node.netns
    return [
        ["ip", "netns", "add", ns],
        ["ip", "link", "add", node.veth, "type", "veth", "peer", "name", peer],
        ["ip", "link", "set", node.veth, "master", names.bridge, "up"],
        ["ip", "link", "set", peer, "netns", ns],
        ["ip", "-n", ns, "link", "set", peer, "name", "eth0"],
        ["ip", "-n", ns, "addr", "add", f"{node.address}/{prefixlen}", "dev", "eth0"],
        ["ip", "-n", ns, "link", "set", "eth0", "up"],
        ["ip", "-n", ns, "link", "set", "lo", "up"],
    ]


def uts_namespace(paths: ClusterPaths, node: NodeRecord) -> Argv:
    """A persistent UTS namespace bound on a file under the cluster's root, holding the host name."""
    return ["unshare", f"--uts={paths.uts(node.hostname)}", "hostname", node.hostname]


def in_node(paths: ClusterPaths, node: NodeRecord, argv: Sequence[str]) -> Argv:
    """`argv` inside the node: its network and its host name (the mount namespace stays the host's)."""
    return ["nsenter", f"--net=/run/netns/{node.netns}", f"--uts={paths.uts(node.hostname)}", "--", *argv]


# --- Daemons ----------------------------------------------------------------------------------------


def mungekey(paths: ClusterPaths) -> Argv:
    return ["runuser", "-u", "munge", "--", "mungekey", "--create", f"--keyfile={paths.munge_key}"]


def munged(paths: ClusterPaths) -> Argv:
    return [
        "runuser",
        "-u",
        "munge",
        "--",
        "munged",
        f"--socket={paths.munge_socket}",
        f"--key-file={paths.munge_key}",
        f"--pid-file={paths.munge_pid}",
        f"--log-file={paths.munge / 'munged.log'}",
        f"--seed-file={paths.munge / 'munged.seed'}",
    ]


def slurmctld(paths: ClusterPaths) -> Argv:
    return ["slurmctld", "-f", str(paths.slurm_conf)]


def slurmd(paths: ClusterPaths, *, clean: bool = False) -> Argv:
    """slurmd; `clean` (-c) starts with no job state left from before (ResetNodes)."""
    return ["slurmd", "-f", str(paths.slurm_conf), *(["-c"] if clean else [])]


def slurm_env(paths: ClusterPaths) -> dict[str, str]:
    return {"SLURM_CONF": str(paths.slurm_conf)}


def scontrol(*args: str) -> Argv:
    return ["scontrol", *args]


def useradd(account: str, home: Path) -> Argv:
    """An unprivileged account with its own group, no password, its home under the cluster's root."""
    return [
        "useradd",
        "--home-dir",
        str(home),
        "--no-create-home",
        "--shell",
        "/bin/sh",
        "--user-group",
        account,
    ]


def userdel(account: str) -> Argv:
    return ["userdel", account]
