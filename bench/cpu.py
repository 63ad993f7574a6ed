"""CPU time from /proc: the server's and the database's, per request or per step, and py-spy profiles.

A req/s figure on a shared machine moves with whatever else runs; the CPU a request costs does much
less. `Meter` reads utime + stime (user and system time, /proc/<pid>/stat fields 14 and 15, in clock
ticks) of the server process (and its threads) and of every PostgreSQL process on the machine before
and after a run; divided by the requests (or steps) of the run, that is the CPU each one cost. Other
engineers' PostgreSQL work on a shared machine lands in the database figure too: read it as an upper
bound. SQLite runs inside the server process, so its cost is in the server's figure.

`Profile` runs `py-spy record` against a pid for the length of a run and writes a flame graph (SVG);
py-spy is optional (`pip install -e '.[bench]'`), and without it the profile is skipped with a reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu(pid: int) -> float:
    """Seconds of CPU (user + system) the process has used so far; 0 when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name (field 2) is in parentheses and may hold spaces: split after its closing one.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def database_pids() -> list[int]:
    """Every PostgreSQL process on this machine (postmaster, backends, walwriter...)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def database_cpu() -> float:
    """Seconds of CPU used so far by the PostgreSQL processes alive now (backends that ended are lost,
    which is why the bench reads it around runs on connections held open for the whole run)."""
    return sum(process_cpu(pid) for pid in database_pids())


@dataclass
class CpuSample:
    server: float
    database: float


@dataclass
class CpuCost:
    """Microseconds of CPU per request (or step), from the server and from the database processes."""

    server_us: float
    database_us: float | None


class Meter:
    """Reads the CPU of `pids` (the server, or the workers) and of PostgreSQL at start and at `stop`."""

    def __init__(self, pids: list[int], database: bool) -> None:
        self._pids = pids
        self._database = database
        self._start = self._sample()
        self._end = self._start

    def _sample(self) -> CpuSample:
        return CpuSample(
            sum(process_cpu(pid) for pid in self._pids), database_cpu() if self._database else 0.0
        )

    def freeze(self) -> None:
        """Take the end sample now (the count is known later: `per`)."""
        self._end = self._sample()

    def per(self, count: int) -> CpuCost:
        return self._cost(self._end, count)

    def stop(self, count: int) -> CpuCost:
        return self._cost(self._sample(), count)

    def _cost(self, end: CpuSample, count: int) -> CpuCost:
        if count <= 0:
            return CpuCost(0.0, 0.0)
        database = end.database - self._start.database
        return CpuCost(
            round((end.server - self._start.server) * 1e6 / count, 1),
            # Negative when backends that had run ended during the run: no figure then.
            round(database * 1e6 / count, 1) if database >= 0 else None,
        )


def py_spy() -> str | None:
    """The py-spy executable beside this Python, or on PATH; None when it is not installed."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Profile:
    """`py-spy record` of one process for one run, written as a flame graph to `out` (SVG)."""

    def __init__(
        self, pid: int, out: Path, seconds: float, *, form: str = "flamegraph", gil: bool = False
    ) -> None:
        """`form`: py-spy's output format, "flamegraph" (SVG) or "raw" (collapsed stacks, one a line);
        `gil`: only the samples of the thread holding the GIL (where the Python CPU goes, not the waits)."""
        self.out = out
        self.process: subprocess.Popen[bytes] | None = None
        self.reason = ""
        exe = py_spy()
        if exe is None:
            self.reason = "py-spy not installed (pip install -e '.[bench]')"
            return
        command = [exe, "record", "--pid", str(pid), "--output", str(out), "--format", form]
        command += ["--duration", str(max(1, int(seconds))), "--rate", "200", "--nonblocking"]
        if gil:
            command.append("--gil")
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def stop(self, *, now: bool = False) -> str:
        """The path written, or why there is none; `now`: end the recording at once (SIGINT) rather than
        wait for its duration."""
        if self.process is None:
            return self.reason
        if now and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            out, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGINT)
            out, _ = self.process.communicate()
        if self.process.returncode != 0 or not self.out.exists():
            tail = out.decode(errors="replace").strip().splitlines()[-1:] if out else []
            return f"py-spy failed ({self.process.returncode}): {' '.join(tail)}"
        return str(self.out)
