"""The processes a chaos run starts: API processes, workers, the paths to PostgreSQL and Redis, a netns."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.common import clean_env, free_port


@dataclass
class Proc:
    """One `hpcplane serve` or `hpcplane worker` process we started."""

    name: str
    role: str  # "api" (serve --no-worker), "serve" (with its worker) or "worker"
    command: list[str]
    env: dict[str, str]
    log: Path
    port: int | None = None
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    log_from: int = 0  # where this start's output begins in the log (earlier starts wrote before it)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 90.0, *, wait: bool = True) -> None:
        with self.log.open("ab") as out:
            self.log_from = out.tell()
            self.process = subprocess.Popen(self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 90.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start in {timeout:.0f}s: {self.tail()}")
            time.sleep(0.05)

    def ready(self) -> bool:
        """An API answers /healthz; a worker printed its banner in this start's output (the log is
        appended to, so the banner of a start before a SIGKILL must not count)."""
        if self.port is None:
            with self.log.open("rb") as log:
                log.seek(self.log_from)
                return b"hpcplane worker" in log.read()
        try:
            return httpx.get(f"http://{self.endpoint}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: no cleanup, leases and open transactions left as they were."""
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def restart(self) -> float:
        """Start it again; the seconds until it answered (an API) or printed its banner (a worker)."""
        self.restarts += 1
        started = time.monotonic()
        self.start()
        return time.monotonic() - started

    def stop(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines: int = 8) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Topology:
    """Process settings shared by every process of a run, and the processes themselves."""

    workdir: Path
    database_url: str | None  # None: the embedded SQLite file under home
    redis_url: str | None
    settings: dict[str, str]
    procs: list[Proc] = field(default_factory=list)

    def env(self, database_url: str | None = None, **extra: str) -> dict[str, str]:
        values = {
            "HPCPLANE_HOME": str(self.workdir / "home"),
            "HPCPLANE_DEMO": "false",
            "HPCPLANE_LOG_FORMAT": "json",
            "HPCPLANE_LOG_LEVEL": "warning",
            **{f"HPCPLANE_{k.upper()}": v for k, v in self.settings.items()},
            **{f"HPCPLANE_{k.upper()}": v for k, v in extra.items()},
        }
        url = database_url or self.database_url
        if url:
            values["HPCPLANE_DATABASE_URL"] = url
        if self.redis_url and "HPCPLANE_REDIS_URL" not in values:
            values["HPCPLANE_REDIS_URL"] = self.redis_url
        return clean_env(**values)

    def api(self, name: str, *, worker: bool = False, wait: bool = True, **extra: str) -> Proc:
        port = free_port()
        proc = Proc(
            name,
            "serve" if worker else "api",
            [sys.executable, "-m", "hpcplane", "serve", "--port", str(port)]
            + ([] if worker else ["--no-worker"]),
            self.env(**extra),
            self.workdir / f"{name}.log",
            port=port,
        )
        proc.start(wait=wait)
        self.procs.append(proc)
        return proc

    def worker(
        self,
        name: str,
        *,
        database_url: str | None = None,
        prefix: list[str] | None = None,
        wait: bool = True,
    ) -> Proc:
        env = self.env(database_url)
        env.pop("HPCPLANE_REDIS_URL", None)  # a worker checks no nonce
        proc = Proc(
            name,
            "worker",
            [*(prefix or []), sys.executable, "-m", "hpcplane", "worker"],
            env,
            self.workdir / f"{name}.log",
        )
        proc.start(wait=wait)
        self.procs.append(proc)
        return proc

    def wait_ready(self) -> None:
        for proc in self.procs:
            proc.wait_ready()

    def of(self, role: str) -> list[Proc]:
        return [p for p in self.procs if p.role == role]

    def endpoints(self) -> list[str]:
        return [p.endpoint for p in self.procs if p.port is not None]

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


class Netns:
    """A network namespace of our own joined to this one by a veth pair on a private /30 (root only).

    Only the two addresses of the pair are used, both on this machine; `cut()` takes the host side of
    the link down (the namespace's packets go nowhere), `mend()` brings it back."""

    def __init__(self, index: int) -> None:
        tag = f"{os.getpid() % 10000}{index}"
        self.name = f"hpcchaos{tag}"
        self.host_if = f"hch{tag}"[:15]
        self.ns_if = f"hcn{tag}"[:15]
        octet = 4 * (os.getpid() % 60) + 4
        self.host_ip = f"10.213.{index}.{octet + 1}"
        self.ns_ip = f"10.213.{index}.{octet + 2}"
        self.created = False

    @staticmethod
    def available() -> str | None:
        """None when namespaces can be made here, else why not."""
        if os.geteuid() != 0:
            return "network cut needs root (ip netns, veth)"
        if subprocess.run(["ip", "netns", "list"], capture_output=True, check=False).returncode != 0:
            return "ip netns is not available"
        return None

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    def create(self) -> None:
        self._ip("netns", "add", self.name)
        self.created = True
        self._ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        self._ip("link", "set", self.ns_if, "netns", self.name)
        self._ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        self._ip("link", "set", self.host_if, "up")
        self._ip("netns", "exec", self.name, "ip", "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if)
        self._ip("netns", "exec", self.name, "ip", "link", "set", self.ns_if, "up")
        self._ip("netns", "exec", self.name, "ip", "link", "set", "lo", "up")

    def prefix(self) -> list[str]:
        """The command prefix that runs a program inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def cut(self) -> None:
        self._ip("link", "set", self.host_if, "down")

    def mend(self) -> None:
        self._ip("link", "set", self.host_if, "up")

    def delete(self) -> None:
        if self.created:
            subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, check=False)
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)
            self.created = False
