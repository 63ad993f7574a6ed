"""A real `hpcplane serve` process on a free port, and the in-process services beside it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner

from hpcplane.cli import main as cli_main
from hpcplane.config import Settings
from hpcplane.wiring import Services, build_services
from tests.support import sdkclients

# Seconds a server may take to answer /healthz; raise it on a heavily loaded machine. 60: with four xdist
# workers on a machine at load average 15-20 (other runs beside), starts of over 30 s were seen.
START_TIMEOUT = float(os.environ.get("HPCPLANE_TEST_START_TIMEOUT", "60"))


def free_port() -> int:
    """A port nothing listens on now, for a server that binds it a few seconds later.

    Under pytest-xdist each worker takes only ports of its own class (port // 2 modulo the number of
    workers; the kernel hands out ports of one parity to bind()), so two workers never pick the same port
    between one's pick and its server's bind."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    worker = int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else 0
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if (port // 2) % workers == worker % workers:
            return port


class LiveServer:
    """One server process; `env` is what it and the CLI calls against its store see."""

    def __init__(self, home: Path, database_url: str | None = None, **settings: str) -> None:
        self.home = home
        self.port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.env = {
            "HPCPLANE_HOME": str(home),
            "HPCPLANE_PORT": str(self.port),
            "HPCPLANE_LOG_FORMAT": "json",
            **({"HPCPLANE_DATABASE_URL": database_url} if database_url else {}),
            **{f"HPCPLANE_{k.upper()}": v for k, v in settings.items()},
        }
        self.log_path = home / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._services: Services | None = None

    def start(self, timeout: float = START_TIMEOUT) -> LiveServer:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env}
        env.pop("HTTP_PROXY", None)
        env.pop("http_proxy", None)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hpcplane", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"http://{self.endpoint}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.process.kill()  # not left running behind a failed fixture
        self.process.wait()
        raise RuntimeError(f"server did not start in {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._services is not None:
            self._services.close()
            self._services = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))
        return records

    @property
    def services(self) -> Services:
        """The store the server uses, opened in this process (to seed clusters and tasks)."""
        if self._services is None:
            self._services = build_services(self.settings(), run_migrations=False)
        return self._services

    def settings(self) -> Settings:
        return Settings(
            home=self.home,
            database_url=self.env.get("HPCPLANE_DATABASE_URL"),
            redis_url=self.env.get("HPCPLANE_REDIS_URL"),
        )

    def cli(self, *args: str) -> str:
        """Run an `hpcplane` command against this server's store; return its output (fails on exit != 0)."""
        result = CliRunner().invoke(cli_main, list(args), env=self.env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    def new_account(self, name: str) -> dict[str, str]:
        record: dict[str, str] = json.loads(self.cli("accounts", "create", name, "--json"))
        return record

    def call(self, kind: str, key: dict[str, str], action: str, **params: object) -> dict[str, object]:
        return sdkclients.call(
            kind, self.endpoint, key["AccessKeyId"], key["AccessKeySecret"], action, params
        )
