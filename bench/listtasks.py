"""ListTasks under load: signed requests replayed by wrk against `hpcplane serve`, beside a bare ASGI app.

Fair by construction: every request is signed for real (fresh nonce, valid timestamp) before the run, so
the server keeps all its checks (signature, timestamp, nonce replay, authorization) and the generator
only replays bytes; wrk runs on one core and the server on the other (taskset). Each request is sent once;
a run that outlasts its corpus shows up as non-2xx answers, which are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import insert

from hpcplane.config import Settings
from hpcplane.domain.tasks import TaskStatus, TaskType
from hpcplane.store.tables import clusters, tasks
from hpcplane.testing import sign_v1
from hpcplane.wiring import build_services

RESULTS = Path(__file__).with_name("results")
PG_ADMIN = os.environ.get("HPCPLANE_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
CLUSTERS = 1000
LUA = """
local paths = {}
for line in io.lines("%s") do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[((i - 1) %% #paths) + 1])
end
"""


@dataclass
class LoadRun:
    """One wrk run against one server."""

    target: str
    backend: str
    tasks: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    rss_mb: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("server did not start")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def seed(settings: Settings, count: int) -> tuple[str, str, str, list[str]]:
    """One account, CLUSTERS clusters and `count` tasks spread over them (a tenth still running)."""
    services = build_services(settings)
    try:
        issued = services.accounts.create_account(f"bench-{uuid.uuid4().hex[:6]}")
        now = datetime.now(UTC)
        cluster_ids = [f"ehpc-hz-bench{i:05d}" for i in range(CLUSTERS)]
        with services.db.write() as conn:
            conn.execute(
                insert(clusters),
                [
                    {
                        "id": cid,
                        "account_id": issued.account_id,
                        "region_id": "cn-hangzhou",
                        "name": cid,
                        "status": "running",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for cid in cluster_ids
                ],
            )
        start = now - timedelta(seconds=count)
        for offset in range(0, count, 20000):
            rows = []
            for n in range(offset, min(count, offset + 20000)):
                running = n % 10 == 0
                created = start + timedelta(seconds=n)
                rows.append(
                    {
                        "task_id": str(uuid.uuid4()).upper(),
                        "account_id": issued.account_id,
                        "cluster_id": cluster_ids[n % CLUSTERS],
                        "task_type": TaskType.STOP_CLUSTER.value,
                        "status": (TaskStatus.PROCESSING if running else TaskStatus.SUCCESS).value,
                        "current_step": 16 if running else 35,
                        "total_steps": 35,
                        "result": "{}",
                        "errors": "[]",
                        "request": json.dumps(
                            {
                                "requestId": str(uuid.uuid4()).upper(),
                                "uid": issued.account_id,
                                "clusterId": cluster_ids[n % CLUSTERS],
                            }
                        ),
                        "created_at": created,
                        "updated_at": created,
                        "finished_at": None if running else created,
                    }
                )
            with services.db.write() as conn:
                conn.execute(insert(tasks), rows)
        return issued.account_id, issued.access_key_id, issued.access_key_secret, cluster_ids
    finally:
        services.close()


def corpus(path: Path, key: tuple[str, str], cluster_ids: list[str], size: int, deep: bool) -> None:
    """`size` distinct signed ListTasks requests, one URL path per line."""
    rng = random.Random(7)
    with path.open("w") as out:
        for _ in range(size):
            params = {"ClusterId": rng.choice(cluster_ids), "Archived": "true", "PageSize": "10"}
            if deep:
                params["PageNumber"] = "999"
            out.write(sign_v1("ListTasks", params, key[0], key[1]).url_path + "\n")


def run_wrk(
    port: int, script: Path | None, seconds: int, connections: int
) -> tuple[float, float, float, int]:
    """Requests/s, p50 and p99 in ms, and the number of non-2xx answers."""
    command = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run(
        [*command, f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]

    def percentile(name: str) -> float:
        value, unit = re.search(rf"{name}%\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return rps, percentile("50"), percentile("99"), int(non_2xx.group(1)) if non_2xx else 0


def start(command: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        ["taskset", "-c", "0", *command], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_up(port, process)
    return process


def measure(backend: str, count: int, seconds: int, connections: int, work: Path) -> list[LoadRun]:
    env = {
        **os.environ,
        "HPCPLANE_LOG_LEVEL": "warning",
        "HPCPLANE_WORKER": "false",
        "HPCPLANE_DEMO": "false",
    }
    home = work / f"{backend}-{count}"
    database_url = None
    if backend == "postgres":
        name = f"hpcplane_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        database_url = (
            PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + name
        )
        env["HPCPLANE_DATABASE_URL"] = database_url
    env["HPCPLANE_HOME"] = str(home)
    settings = Settings(home=home, database_url=database_url)
    _, key_id, secret, cluster_ids = seed(settings, count)
    runs = []
    for target, deep in (("ListTasks", False), ("ListTasks PageNumber=999", True)):
        port = free_port()
        paths = work / f"paths-{backend}-{count}-{deep}.txt"
        corpus(paths, (key_id, secret), cluster_ids, 4000 * seconds, deep)
        script = work / f"replay-{backend}-{count}-{deep}.lua"
        script.write_text(LUA % paths)
        server = start([sys.executable, "-m", "hpcplane", "serve", "--port", str(port)], env, port)
        try:
            rps, p50, p99, bad = run_wrk(port, script, seconds, connections)
            runs.append(LoadRun(target, backend, count, rps, p50, p99, bad, rss_mb(server.pid)))
        finally:
            server.terminate()
            server.wait(15)
    if backend == "postgres":
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    return runs


def baseline(seconds: int, connections: int) -> LoadRun:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.bare:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    process = subprocess.Popen(
        ["taskset", "-c", "0", *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.2)
    try:
        rps, p50, p99, bad = run_wrk(port, None, seconds, connections)
        return LoadRun("bare ASGI", "-", 0, rps, p50, p99, bad, rss_mb(process.pid))
    finally:
        process.terminate()
        process.wait(15)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="10000,100000", help="task counts, comma-separated")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="10k tasks, 5 s runs")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("needs wrk and taskset (Debian: apt-get install wrk util-linux)", file=sys.stderr)
        return 2
    counts = [10000] if args.quick else [int(n) for n in args.tasks.split(",")]
    seconds = 5 if args.quick else args.seconds
    runs = [baseline(seconds, args.connections)]
    with tempfile.TemporaryDirectory(prefix="hpcplane-bench-") as tmp:
        for backend in args.backends.split(","):
            for count in counts:
                print(f"{backend}: {count} tasks ...", flush=True)
                runs.extend(measure(backend, count, seconds, args.connections, Path(tmp)))
    bare = runs[0].requests_per_s
    print(
        f"\n{'target':<26}{'backend':<10}{'tasks':>9}{'req/s':>10}{'vs bare':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'non-2xx':>9}{'RSS MB':>8}"
    )
    for run in runs:
        print(
            f"{run.target:<26}{run.backend:<10}{run.tasks:>9}{run.requests_per_s:>10.0f}"
            f"{run.requests_per_s / bare:>9.2f}{run.p50_ms:>9.2f}{run.p99_ms:>9.2f}"
            f"{run.non_2xx:>9}{run.rss_mb:>8.0f}"
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"listtasks-{datetime.now(UTC):%Y-%m-%d}{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps({"runs": [asdict(run) for run in runs], "load": os.getloadavg()}, indent=2))
    shallow = [r for r in runs[1:] if "999" not in r.target]
    headline: dict[str, Any] = {
        "listtasks_vs_bare": round(max(r.requests_per_s for r in shallow) / bare, 3) if shallow else None,
        "listtasks_rps_sqlite": max(
            (r.requests_per_s for r in shallow if r.backend == "sqlite"), default=None
        ),
        "listtasks_rps_pg": max((r.requests_per_s for r in shallow if r.backend == "postgres"), default=None),
        "rss_mb": max((r.rss_mb for r in runs[1:]), default=None),
    }
    print(json.dumps(headline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
