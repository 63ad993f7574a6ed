"""Leftovers of local clusters found by their names' prefix, for when a record was lost (tests, crashes)."""

from __future__ import annotations

import pwd
import re
from dataclasses import dataclass, field
from pathlib import Path

from hpcplane.providers.local import processes
from hpcplane.providers.local.commands import Runner, SubprocessRunner


@dataclass(slots=True)
class Leftovers:
    """What exists on the machine under a prefix (and, for mounts and processes, under a directory)."""

    namespaces: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.namespaces or self.links or self.accounts or self.mounts or self.pids)


def find(prefix: str, root: Path | None = None, runner: Runner | None = None) -> Leftovers:
    """Namespaces, interfaces, accounts named with `prefix`; mounts and live processes under `root`."""
    runner = runner or SubprocessRunner()
    listed = runner.run(["ip", "netns", "list"], check=False).stdout.split("\n")
    found = Leftovers()
    found.namespaces = [line.split()[0] for line in listed if line.startswith(f"{prefix}-")]
    found.links = sorted(
        p.name
        for p in Path("/sys/class/net").iterdir()
        if re.match(rf"^{re.escape(prefix)}[bvp][0-9a-f]{{6}}", p.name)
    )
    found.accounts = [
        entry.pw_name
        for entry in pwd.getpwall()
        if re.match(rf"^{re.escape(prefix)}[0-9a-f]{{6}}-", entry.pw_name)
    ]
    if root is not None:
        found.mounts = _mounts_under(root.resolve())
        found.pids = _processes_naming(str(root.resolve()))
    return found


def sweep(prefix: str, root: Path | None = None, runner: Runner | None = None) -> Leftovers:
    """Remove everything `find` reports; returns what it found."""
    runner = runner or SubprocessRunner()
    found = find(prefix, root, runner)
    for namespace in found.namespaces:
        pids = runner.run(["ip", "netns", "pids", namespace], check=False).stdout.split()
        processes.kill_all([int(p) for p in pids if p.isdigit()])
        runner.run(["ip", "netns", "del", namespace], check=False)
    processes.kill_all(found.pids)
    for link in found.links:
        if Path(f"/sys/class/net/{link}").exists():
            runner.run(["ip", "link", "del", link], check=False)
    for mount in sorted(found.mounts, reverse=True):
        runner.run(["umount", mount], check=False)
    for account in found.accounts:
        runner.run(["userdel", account], check=False)
    return found


def _mounts_under(root: Path) -> list[str]:
    with open("/proc/self/mountinfo") as handle:
        points = [line.split()[4] for line in handle]
    return [p for p in points if Path(p).is_relative_to(root)]


def _processes_naming(text: str) -> list[int]:
    """Live (non-zombie) processes whose command line names `text`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and processes.running(int(entry.name), text):
            pids.append(int(entry.name))
    return pids
