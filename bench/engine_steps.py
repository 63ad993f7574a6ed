"""Engine throughput: steps/s of `hpcplane worker` processes on SQLite and PostgreSQL, beside raw UPDATEs."""

# Each run gets a fresh database (a SQLite file, or a PostgreSQL database created and dropped here), N
# running clusters seeded and one StopCluster (35 steps) accepted on each through the Operations service,
# as the API writes them. The tasks are held (run_after a day ahead) until the worker processes are up,
# then released at once; the clock runs from the release to the last task's finished_at. The baseline is
# one `UPDATE tasks SET current_step=current_step+1 WHERE seq=?` per transaction in a tight loop on one
# connection of the same database: what a step costs with nothing else around it.

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url

from bench.cpu import Meter, Profile
from hpcplane import ids
from hpcplane.config import Settings
from hpcplane.domain.accounts import Principal
from hpcplane.domain.plans import plan_for
from hpcplane.domain.tasks import TaskType
from hpcplane.services.clusters import seed_cluster
from hpcplane.store import engine as engine_store
from hpcplane.store.db import Database
from hpcplane.store.tables import tasks
from hpcplane.wiring import Services, build_services

# The teammate's figures (issue 3, docs/decisions/0000): 1,000 tasks x 35 steps, one UPDATE per step.
REFERENCE = {"sqlite": (7000, 9000), "postgres": (9000, 11000)}
RESULTS = Path(__file__).with_name("results")
DEFAULT_PG_ADMIN = os.environ.get(
    "HPCPLANE_BENCH_PG_ADMIN",
    os.environ.get("HPCPLANE_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"),
)
STEPS = len(plan_for(TaskType.STOP_CLUSTER))
BASELINE_SQL = "UPDATE tasks SET current_step = current_step + 1 WHERE seq = {}"


@dataclass
class EngineRun:
    """One measured run of the engine."""

    backend: str
    workers: int
    concurrency: int
    tasks: int
    steps: int
    seconds: float
    steps_per_s: float
    statuses: dict[str, int]
    setup_seconds: float
    startup_seconds: float
    # CPU per step from the release to the end (bench/cpu.py): the worker processes', PostgreSQL's.
    worker_cpu_us: float | None = None
    db_cpu_us: float | None = None
    profiles: list[str] = field(default_factory=list)  # --profile: the files written, or why none

    @classmethod
    def measured(
        cls,
        backend: str,
        workers: int,
        concurrency: int,
        tasks: int,
        released: datetime,
        ended: datetime,
        steps: int,
        statuses: dict[str, int],
        setup: float,
        startup: float,
    ) -> EngineRun:
        """A run from its raw measurements: steps/s from the release of the tasks to the last end."""
        seconds = (ended - released).total_seconds()
        return cls(
            backend=backend,
            workers=workers,
            concurrency=concurrency,
            tasks=tasks,
            steps=steps,
            seconds=round(seconds, 3),
            steps_per_s=round(steps / seconds, 1),
            statuses=statuses,
            setup_seconds=round(setup, 1),
            startup_seconds=round(startup, 1),
        )


@dataclass
class Baseline:
    """The tight UPDATE loop on one connection of the same database."""

    backend: str
    updates: int
    seconds: float
    raw_per_s: float
    sqlalchemy_updates: int
    sqlalchemy_seconds: float
    sqlalchemy_per_s: float
    # PostgreSQL only: the raw loop with synchronous_commit=off (commits no longer wait for the WAL flush).
    raw_async_per_s: float | None = None


@dataclass
class Report:
    """Everything a run of the bench found, as written to bench/results/."""

    date: str
    machine: dict[str, Any]
    options: dict[str, Any]
    reference_steps_per_s: dict[str, tuple[int, int]]
    runs: list[EngineRun] = field(default_factory=list)
    baselines: list[Baseline] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


# --- databases -----------------------------------------------------------------------------------


class SqliteDatabases:
    """Fresh SQLite files in a temporary directory."""

    name = "sqlite"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.count = 0

    @contextmanager
    def fresh(self) -> Iterator[str]:
        self.count += 1
        path = self.root / f"bench-{self.count}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)


class PostgresDatabases:
    """Fresh PostgreSQL databases, created on the admin connection and dropped after use."""

    name = "postgres"

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.run = uuid.uuid4().hex[:8]
        self.count = 0

    def reachable(self) -> str | None:
        """None when the server answers, else the reason it does not."""
        try:
            psycopg.connect(self.admin_url, connect_timeout=3).close()
        except psycopg.Error as error:
            return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error) else ''}"
        return None

    @contextmanager
    def fresh(self) -> Iterator[str]:
        self.count += 1
        name = f"hpcplane_bench_{self.run}_{self.count}"
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        base = self.admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        try:
            yield f"{base}/{name}"
        finally:
            with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=3) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the engine run ------------------------------------------------------------------------------


def settings_for(home: Path, url: str) -> Settings:
    """This process's settings: the store only; it runs no worker."""
    return Settings(home=home, database_url=url, redis_url=None, sim_step_seconds=0.0, sim_faults="")


def worker_env(home: Path, url: str, concurrency: int) -> dict[str, str]:
    """A worker's environment: our HPCPLANE_* stripped, then the store and a zero step duration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPCPLANE_")}
    env.update(
        HPCPLANE_HOME=str(home),
        HPCPLANE_DATABASE_URL=url,
        HPCPLANE_SIM_STEP_SECONDS="0",
        HPCPLANE_WORKER_CONCURRENCY=str(concurrency),
        HPCPLANE_LOG_FORMAT="json",
    )
    return env


def enqueue(services: Services, count: int) -> None:
    """Seed `count` running clusters and accept one StopCluster on each, as the API would."""
    issued = services.accounts.create_account(f"bench-{uuid.uuid4().hex[:8]}")
    who = Principal(services.accounts.find(issued.account_id), issued.access_key_id)
    for n in range(count):
        cluster_id = seed_cluster(
            services.db,
            services.clock,
            account_id=who.account.id,
            region=services.settings.region,
            name=f"bench{n}",
        )
        services.operations.cluster_operation(
            who,
            ids.request_id(),
            TaskType.STOP_CLUSTER,
            cluster_id,
            {"Action": "StopCluster", "ClusterId": cluster_id},
        )


def set_due(services: Services, when: datetime) -> None:
    """Make every unfinished task due at `when` (and wake PostgreSQL's listeners)."""
    with services.db.write() as conn:
        conn.execute(update(tasks).where(tasks.c.finished_at.is_(None)).values(run_after=when))
        if services.db.is_postgres:
            engine_store.notify(conn)


def start_workers(
    count: int, env: dict[str, str], logs: Path, timeout: float
) -> list[subprocess.Popen[bytes]]:
    """Start `count` worker processes and wait until each printed its banner."""
    processes = []
    paths = []
    for n in range(count):
        path = logs / f"worker-{uuid.uuid4().hex[:6]}-{n}.log"
        with path.open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "hpcplane", "worker"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        paths.append(path)
    deadline = time.monotonic() + timeout
    for process, path in zip(processes, paths, strict=True):
        while "hpcplane worker" not in path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                stop_workers(processes)
                raise RuntimeError(f"worker did not start:\n{path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
    return processes


def stop_workers(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each worker, SIGKILL what does not stop in 15 s."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_engine(
    backend: str,
    url: str,
    home: Path,
    count: int,
    workers: int,
    concurrency: int,
    timeout: float,
    profile: str | None = None,
    gil: bool = False,
) -> EngineRun:
    """Enqueue `count` StopClusters, hold them, start the workers, release the tasks and time them.
    `profile` (a py-spy format, "flamegraph" or "raw"): record each worker process from the release to
    the end, into bench/results/engine-profile-<backend>-<workers>w-<n>.<svg|txt>."""
    began = time.monotonic()
    services = build_services(settings_for(home, url))
    try:
        enqueue(services, count)
        set_due(services, services.clock.now() + timedelta(days=1))
        setup = time.monotonic() - began
        began = time.monotonic()
        processes = start_workers(workers, worker_env(home, url, concurrency), home, timeout=120)
        startup = time.monotonic() - began
        spies: list[Profile] = []
        try:
            if profile:
                RESULTS.mkdir(exist_ok=True)
                suffix = "svg" if profile == "flamegraph" else "txt"
                spies = [
                    Profile(
                        p.pid,
                        RESULTS / f"engine-profile-{backend}-{workers}w-{n}.{suffix}",
                        timeout,
                        form=profile,
                        gil=gil,
                    )
                    for n, p in enumerate(processes)
                ]
            meter = Meter([p.pid for p in processes], backend == "postgres")
            released = datetime.now(UTC)
            set_due(services, released)
            wait_until_done(services, processes, timeout)
            meter.freeze()
        finally:
            written = [spy.stop(now=True) for spy in spies]
            stop_workers(processes)
        ended, steps, statuses = outcome(services)
    finally:
        services.close()
    run = EngineRun.measured(
        backend, workers, concurrency, count, released, ended, steps, statuses, setup, startup
    )
    cost = meter.per(steps)
    run.worker_cpu_us = cost.server_us
    run.db_cpu_us = cost.database_us if backend == "postgres" else None
    run.profiles = written
    return run


# --- the baseline --------------------------------------------------------------------------------


def wait_until_done(services: Services, processes: list[subprocess.Popen[bytes]], timeout: float) -> None:
    """Until every task has ended; fails past `timeout` or when a worker process exits."""
    deadline = time.monotonic() + timeout
    while True:
        with services.db.read() as conn:
            left = conn.execute(
                select(func.count()).select_from(tasks).where(tasks.c.finished_at.is_(None))
            ).scalar_one()
        if left == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{left} tasks unfinished after {timeout}s")
        if any(p.poll() is not None for p in processes):
            raise RuntimeError("a worker process exited during the run")
        time.sleep(0.1)


def outcome(services: Services) -> tuple[datetime, int, dict[str, int]]:
    """When the last task ended, how many steps ran in all, and how many tasks ended in each status."""
    with services.db.read() as conn:
        ended, steps = conn.execute(
            select(func.max(tasks.c.finished_at), func.sum(tasks.c.current_step))
        ).one()
        statuses = {
            status: n
            for status, n in conn.execute(select(tasks.c.status, func.count()).group_by(tasks.c.status))
        }
    return ended, int(steps), statuses


def task_seqs(url: str) -> list[int]:
    db = Database(url)
    try:
        with db.read() as conn:
            return list(conn.execute(select(tasks.c.seq).order_by(tasks.c.seq)).scalars())
    finally:
        db.dispose()


def raw_loop(
    url: str, seqs: list[int], limit: int, budget: float, *, wait_flush: bool = True
) -> tuple[int, float]:
    """One autocommitted UPDATE per step through the bare driver, as the product's connections are set."""
    parsed = make_url(url)
    done = 0
    started = time.perf_counter()
    if parsed.get_backend_name() == "sqlite":
        conn = sqlite3.connect(str(parsed.database), isolation_level=None, timeout=5.0)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            sql = BASELINE_SQL.format("?")
            while done < limit and time.perf_counter() - started < budget:
                conn.execute(sql, (seqs[done % len(seqs)],))
                done += 1
        finally:
            conn.close()
    else:
        dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as pg:
            if not wait_flush:
                pg.execute("SET synchronous_commit = off")
            sql = BASELINE_SQL.format("%s")
            while done < limit and time.perf_counter() - started < budget:
                pg.execute(sql, (seqs[done % len(seqs)],), prepare=True)
                done += 1
    return done, time.perf_counter() - started


def sqlalchemy_loop(url: str, seqs: list[int], limit: int, budget: float) -> tuple[int, float]:
    """The same UPDATE through the product's Database.write() and a SQLAlchemy Core statement."""
    db = Database(url)
    done = 0
    started = time.perf_counter()
    try:
        while done < limit and time.perf_counter() - started < budget:
            with db.write() as conn:
                conn.execute(
                    update(tasks)
                    .where(tasks.c.seq == seqs[done % len(seqs)])
                    .values(current_step=tasks.c.current_step + 1)
                )
            done += 1
    finally:
        db.dispose()
    return done, time.perf_counter() - started


def run_baseline(backend: str, url: str, limit: int, budget: float) -> Baseline:
    seqs = task_seqs(url)
    raw, raw_seconds = raw_loop(url, seqs, limit, budget)
    orm, orm_seconds = sqlalchemy_loop(url, seqs, limit, budget)
    fast: float | None = None
    if backend == "postgres":
        done, seconds = raw_loop(url, seqs, limit, budget, wait_flush=False)
        fast = round(done / seconds, 1)
    return Baseline(
        backend=backend,
        updates=raw,
        seconds=round(raw_seconds, 3),
        raw_per_s=round(raw / raw_seconds, 1),
        sqlalchemy_updates=orm,
        sqlalchemy_seconds=round(orm_seconds, 3),
        sqlalchemy_per_s=round(orm / orm_seconds, 1),
        raw_async_per_s=fast,
    )


# --- the report ----------------------------------------------------------------------------------


def print_table(report: Report) -> None:
    """The runs beside the same-run baselines and the teammate's reference figures."""
    baselines = {b.backend: b for b in report.baselines}
    columns = (
        ("backend", 9),
        ("workers", 7),
        ("steps", 7),
        ("seconds", 8),
        ("steps/s", 8),
        ("raw UPDATE/s", 13),
        ("engine/raw", 10),
        ("SQLA UPDATE/s", 14),
        ("raw no-wait/s", 14),
        ("reference", 10),
    )
    header = " ".join(
        f"{name:<{width}}" if i == 0 else f"{name:>{width}}" for i, (name, width) in enumerate(columns)
    )
    print()
    print(
        f"engine: {report.options['tasks']} tasks x {STEPS} steps (StopCluster), sim step 0 s, "
        f"{report.options['concurrency']} threads per worker process"
    )
    print(header)
    print("-" * len(header))
    for run in report.runs:
        base = baselines.get(run.backend)
        low, high = REFERENCE[run.backend]
        cells = [
            run.backend,
            str(run.workers),
            str(run.steps),
            f"{run.seconds:.2f}",
            f"{run.steps_per_s:.0f}",
            f"{base.raw_per_s:.0f}" if base else "-",
            f"{run.steps_per_s / base.raw_per_s:.3f}" if base else "-",
            f"{base.sqlalchemy_per_s:.0f}" if base else "-",
            f"{base.raw_async_per_s:.0f}" if base and base.raw_async_per_s else "-",
            f"{low // 1000}-{high // 1000}k",
        ]
        print(
            " ".join(
                f"{cell:<{width}}" if i == 0 else f"{cell:>{width}}"
                for i, (cell, (_, width)) in enumerate(zip(cells, columns, strict=True))
            )
        )
    for backend, reason in report.skipped.items():
        print(f"{backend:<9} skipped: {reason}")
    print()
    print(
        "reference (teammate, issue 3 / docs/decisions/0000, 1,000 tasks x 35 steps on this machine): "
        "SQLite 7-9k steps/s, PostgreSQL 9-11k steps/s"
    )
    print(
        "raw: one autocommitted UPDATE per loop on one bare driver connection; SQLA: the same through "
        "Database.write(); no-wait: PostgreSQL with synchronous_commit=off"
    )
    print(
        f"machine: {report.machine['cpus']} CPUs, load average at start {report.machine['load_start']}, "
        f"at end {report.machine['load_end']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engine_steps", description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=None, help="tasks per run (default 1000, --quick 100)")
    parser.add_argument("--quick", action="store_true", help="fewer tasks and a shorter baseline (< 2 min)")
    parser.add_argument("--workers", default="1,2", help="worker process counts to run, e.g. 1,2")
    parser.add_argument("--concurrency", type=int, default=None, help="threads per worker (default: setting)")
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite, postgres or both")
    parser.add_argument("--pg-admin", default=DEFAULT_PG_ADMIN, help="PostgreSQL admin URL")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    parser.add_argument(
        "--profile",
        choices=("flamegraph", "raw"),
        default=None,
        help="py-spy each worker process during each run: bench/results/engine-profile-* (SVG, or "
        "collapsed stacks with raw); needs py-spy (pip install -e '.[bench]'); slows the run",
    )
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="with --profile: only samples holding the GIL (the workers' Python CPU, not their waits)",
    )
    args = parser.parse_args(argv)
    count = args.tasks or (100 if args.quick else 1000)
    concurrency = args.concurrency or int(Settings.model_fields["worker_concurrency"].default)
    budget = 1.5 if args.quick else 5.0
    timeout = 300.0 if args.quick else 1800.0
    counts = [int(n) for n in args.workers.split(",") if n]
    started = datetime.now(UTC)
    report = Report(
        date=started.isoformat(timespec="seconds"),
        machine={
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_start": [round(x, 2) for x in os.getloadavg()],
        },
        options={"tasks": count, "steps_per_task": STEPS, "workers": counts, "concurrency": concurrency},
        reference_steps_per_s=REFERENCE,
    )
    with tempfile.TemporaryDirectory(prefix="hpcplane-bench-") as tmp:
        root = Path(tmp)
        backends: list[SqliteDatabases | PostgresDatabases] = []
        for name in args.backends.split(","):
            if name == "sqlite":
                backends.append(SqliteDatabases(root))
            elif name == "postgres":
                pg = PostgresDatabases(args.pg_admin)
                reason = pg.reachable()
                if reason is None:
                    backends.append(pg)
                else:
                    report.skipped["postgres"] = f"PostgreSQL not reachable at {args.pg_admin} ({reason})"
                    print(f"postgres skipped: {report.skipped['postgres']}", flush=True)
            else:
                parser.error(f"unknown backend {name!r}")
        for backend in backends:
            for workers in counts:
                home = root / f"home-{backend.name}-{workers}"
                with backend.fresh() as url:
                    print(f"{backend.name}: {count} tasks, {workers} worker(s) ...", flush=True)
                    run = run_engine(
                        backend.name,
                        url,
                        home,
                        count,
                        workers,
                        concurrency,
                        timeout,
                        args.profile,
                        args.profile_gil,
                    )
                    report.runs.append(run)
                    for written in run.profiles:
                        print(f"  profile: {written}", flush=True)
                    print(
                        f"  {run.steps} steps in {run.seconds:.2f}s = {run.steps_per_s:.0f} steps/s"
                        f" (worker CPU {run.worker_cpu_us} us/step, database {run.db_cpu_us} us/step)"
                        f" (setup {run.setup_seconds}s, workers up in {run.startup_seconds}s)",
                        flush=True,
                    )
                    if workers == counts[0]:
                        base = run_baseline(backend.name, url, count * STEPS, budget)
                        report.baselines.append(base)
                        print(
                            f"  baseline: {base.raw_per_s:.0f} raw UPDATE/s,"
                            f" {base.sqlalchemy_per_s:.0f} through Database.write()"
                            + (
                                f", {base.raw_async_per_s:.0f} raw with synchronous_commit=off"
                                if base.raw_async_per_s
                                else ""
                            ),
                            flush=True,
                        )
    report.machine["load_end"] = [round(x, 2) for x in os.getloadavg()]
    print_table(report)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        suffix = "-quick" if args.quick else ""
        path = RESULTS / f"engine-{started.strftime('%Y-%m-%d')}{suffix}.json"
        path.write_text(json.dumps(asdict(report), indent=2) + "\n")
        print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
