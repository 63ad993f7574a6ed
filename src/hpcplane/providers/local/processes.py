"""Daemons known by their pid files: alive only when the pid runs the expected command line."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from hpcplane.domain.errors import ProviderFailed


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip() or "0") or None
    except (FileNotFoundError, ValueError):
        return None


def running(pid: int, marker: str) -> bool:
    """True when `pid` lives, is no zombie, and its command line names `marker` (no reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    state = stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else "?"
    return state not in ("Z", "X") and marker in cmdline


def daemon_pid(pid_file: Path, marker: str) -> int | None:
    """The daemon's pid when it runs, else None."""
    pid = read_pid(pid_file)
    return pid if pid is not None and running(pid, marker) else None


def wait_for(condition: Callable[[], bool], *, timeout: float, interval: float = 0.2) -> bool:
    """Poll `condition` until true or the deadline; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def stop(pid_file: Path, marker: str, *, what: str, timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; returns once the daemon is gone."""
    pid = daemon_pid(pid_file, marker)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return
    _signal(pid, signal.SIGTERM)
    if not wait_for(lambda: not running(pid, marker), timeout=timeout, interval=0.1):
        _signal(pid, signal.SIGKILL)
        if not wait_for(lambda: not running(pid, marker), timeout=5.0, interval=0.1):
            raise ProviderFailed(what=f"stop {what}", reason=f"pid {pid} survives SIGKILL")
    pid_file.unlink(missing_ok=True)


def kill_all(pids: list[int]) -> None:
    """SIGKILL every pid (the clean-up of a namespace's leftovers) and wait until they are gone."""
    for pid in pids:
        _signal(pid, signal.SIGKILL)
    wait_for(lambda: not any(_alive(pid) for pid in pids), timeout=5.0, interval=0.1)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _signal(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
