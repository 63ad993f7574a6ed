"""What the benchmark modules share: ports, server processes, RSS, PostgreSQL databases, machine facts."""

from __future__ import annotations

import importlib.util
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url

PG_ADMIN = os.environ.get(
    "HPCPLANE_BENCH_PG_ADMIN",
    os.environ.get("HPCPLANE_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"),
)
REDIS_URL = os.environ.get("HPCPLANE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
# Every benchmark run gets an id; its PostgreSQL databases are named after it and dropped at the end.
RUN_ID = uuid.uuid4().hex[:8]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    """The process's resident set size in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def clean_env(**values: str) -> dict[str, str]:
    """This process's environment without any HPCPLANE_* variable, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPCPLANE_")}
    env.update(values)
    return env


@dataclass
class Server:
    """A server process we started, with its port and log file."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 3) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(
    command: Sequence[str], env: dict[str, str], port: int, log: Path, core: int | None, timeout: float = 60
) -> Server:
    """Start `command` (pinned to `core` with taskset when given) and wait until it answers HTTP."""
    pinned = ["taskset", "-c", str(core), *command] if core is not None else list(command)
    with log.open("ab") as out:
        process = subprocess.Popen(pinned, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(process, port, log)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {server.log_tail(5)}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return server
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"server did not answer in {timeout:.0f}s: {server.log_tail(5)}") from None
            time.sleep(0.1)


def serve_command(port: int) -> list[str]:
    return [sys.executable, "-m", "hpcplane", "serve", "--port", str(port)]


def serve_env(home: Path, database_url: str | None, redis_url: str | None = None) -> dict[str, str]:
    """`hpcplane serve` with no in-process worker, no demo account and warnings only in its log."""
    values = {
        "HPCPLANE_HOME": str(home),
        "HPCPLANE_WORKER": "false",
        "HPCPLANE_DEMO": "false",
        "HPCPLANE_LOG_LEVEL": "warning",
        # The load generator sends tens of thousands of calls a second from one AccessKey: a quota it
        # never reaches, so every call pays the check but none is refused.
        "HPCPLANE_RATE_LIMIT": "1000000000",
        "HPCPLANE_RATE_BURST": "1000000000",
    }
    if database_url:
        values["HPCPLANE_DATABASE_URL"] = database_url
    if redis_url:
        values["HPCPLANE_REDIS_URL"] = redis_url
    return clean_env(**values)


# --- PostgreSQL ----------------------------------------------------------------------------------


def pg_reachable(admin_url: str) -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        psycopg.connect(admin_url, connect_timeout=3).close()
    except psycopg.Error as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return f"PostgreSQL not reachable at {admin_url} ({type(error).__name__}: {first})"
    return None


def pg_create(admin_url: str, name: str) -> str:
    """Create database `name`; its SQLAlchemy URL."""
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    # Through SQLAlchemy's URL, so that a query (?host=/var/run/postgresql: the Unix socket) is kept.
    url = make_url(admin_url).set(drivername="postgresql+psycopg", database=name)
    return url.render_as_string(hide_password=False)


def pg_drop(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def driver_dsn(sqlalchemy_url: str) -> str:
    """A postgresql+psycopg:// URL as psycopg itself takes it."""
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


def redis_reachable(url: str) -> str | None:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        client.ping()
        client.close()
    except redis.RedisError as error:
        return f"Redis not reachable at {url} ({type(error).__name__}: {error})"
    return None


def redis_forget(url: str, access_key_id: str) -> int:
    """Delete the nonces a run left in Redis for this (benchmark-only) AccessKey."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        deleted = 0
        batch: list[Any] = []
        for key in client.scan_iter(match=f"hpcplane:nonce:{access_key_id}:*", count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                deleted += int(client.delete(*batch))
                batch = []
        if batch:
            deleted += int(client.delete(*batch))
        return deleted
    finally:
        client.close()


# --- the machine ---------------------------------------------------------------------------------


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_info() -> dict[str, Any]:
    """CPU count, platform, Python, the HTTP/loop implementations uvicorn will pick, load average now."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "uvicorn_http": "httptools" if importlib.util.find_spec("httptools") else "h11",
        "uvicorn_loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "load_start": load_average(),
    }
