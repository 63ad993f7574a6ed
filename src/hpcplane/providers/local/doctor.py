"""`hpcplane doctor`: what the local provider needs from the machine, and the commands that provide it."""

from __future__ import annotations

import os
import pwd
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path

from hpcplane.domain.errors import AddressRangeUnavailable, ProviderFailed
from hpcplane.providers.local import network

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21

# Each program, and the Debian package that ships it.
PROGRAMS = {
    "slurmctld": "slurmctld",
    "slurmd": "slurmd",
    "sbatch": "slurm-client",
    "scontrol": "slurm-client",
    "srun": "slurm-client",
    "scancel": "slurm-client",
    "munged": "munge",
    "mungekey": "munge",
    "ip": "iproute2",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "runuser": "util-linux",
    "useradd": "passwd",
    "userdel": "passwd",
}
ACCOUNTS = {"munge": "munge", "slurm": "slurm-client"}


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass(slots=True)
class Probe:
    """The machine as doctor sees it; tests give their own."""

    which: Callable[[str], str | None] = shutil.which
    effective_caps: Callable[[], int] = lambda: _effective_caps()
    account_exists: Callable[[str], bool] = lambda name: _account_exists(name)
    routes: Callable[[], Sequence[IPv4Network]] = field(default=lambda: _routes())


def checks(probe: Probe, network_range: str, home: Path) -> list[Check]:
    """Every requirement, in the order a fix should be applied."""
    return [_privileges(probe), *_packages(probe), _network(probe, network_range), _home(home)]


def render(results: Sequence[Check]) -> str:
    lines = []
    for check in results:
        lines.append(f"{'ok     ' if check.ok else 'MISSING'}  {check.name}: {check.detail}")
        if not check.ok and check.fix:
            lines.append(f"         fix: {check.fix}")
    missing = [c for c in results if not c.ok]
    lines.append("local provider: ready" if not missing else f"local provider: {len(missing)} missing")
    return "\n".join(lines)


def _privileges(probe: Probe) -> Check:
    caps = probe.effective_caps()
    needed = (1 << CAP_NET_ADMIN) | (1 << CAP_SYS_ADMIN)
    if caps & needed == needed:
        return Check("privileges", True, "CAP_NET_ADMIN and CAP_SYS_ADMIN")
    return Check(
        "privileges",
        False,
        "namespaces, veths and bridges need CAP_NET_ADMIN and CAP_SYS_ADMIN",
        "run hpcplane as root (sudo -E hpcplane ...)",
    )


def _packages(probe: Probe) -> list[Check]:
    missing_programs = [name for name in PROGRAMS if probe.which(name) is None]
    missing_accounts = [name for name in ACCOUNTS if not probe.account_exists(name)]
    packages = sorted({PROGRAMS[p] for p in missing_programs} | {ACCOUNTS[a] for a in missing_accounts})
    if not packages:
        return [Check("packages", True, "slurmctld slurmd slurm-client munge iproute2 util-linux")]
    detail = "missing " + " ".join(missing_programs + [f"user:{a}" for a in missing_accounts])
    fix = f"apt-get update && apt-get install -y --no-install-recommends {' '.join(packages)}"
    return [Check("packages", False, detail, fix)]


def _network(probe: Probe, network_range: str) -> Check:
    routes = list(probe.routes())
    try:
        plan = network.AddressPlan.checked(network_range, routes)
    except AddressRangeUnavailable as error:
        free = network.free_suggestion(routes)
        fix = f"export HPCPLANE_LOCAL_NETWORK={free}" if free else "choose a private /16 free of routes"
        return Check("address range", False, error.message, fix)
    return Check("address range", True, f"{plan.network} overlaps no route of this machine")


def _home(home: Path) -> Check:
    """Job users reach their homes under HPCPLANE_HOME/local: every directory above must let them pass."""
    target = (home / "local").resolve()
    for directory in [target, *target.parents]:
        if directory.exists() and not os.stat(directory).st_mode & 0o001:
            return Check(
                "home",
                False,
                f"{directory} is closed to the cluster's unprivileged users",
                f"chmod o+x {directory}",
            )
    return Check("home", True, f"{target} is reachable by the cluster's users")


def _effective_caps() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def _account_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _routes() -> list[IPv4Network]:
    from hpcplane.providers.local.commands import SubprocessRunner
    from hpcplane.providers.local.facade import machine_routes

    try:
        return machine_routes(SubprocessRunner())
    except ProviderFailed:  # no `ip`: the packages check says so; read the kernel's table instead
        return network.routes_from_proc(Path("/proc/net/route").read_text())
