"""The engine benchmark (bench/engine_steps.py) while `hpcplane serve` answers ListTasks polls.

Each run is engine_steps.run_engine with an API process added: a fresh database, N StopClusters enqueued
and held, the worker processes started, then one `hpcplane serve` (no in-process worker) on the same
database, polled by wrk at a fixed rate (POLL_RATE req/s, signed ListTasks, PageSize=10 Archived=true on
a random one of the clusters being stopped) from just before the tasks are released until the last one
has finished. Steps/s are counted as in engine_steps (release to the last finished_at); the polls' p99 is
the API's latency while the engine runs. Nothing is pinned here: workers, server, wrk and PostgreSQL
share both cores as they would in production. With --plain (the full `python -m bench`), the unpolled
engine_steps runs and their raw-UPDATE baselines are measured as well.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench import loadgen
from bench.common import free_port, rss_mb, serve_command, serve_env, start_server
from bench.engine_steps import (
    STEPS,
    Baseline,
    EngineRun,
    PostgresDatabases,
    SqliteDatabases,
    enqueue,
    outcome,
    run_baseline,
    run_engine,
    set_due,
    settings_for,
    start_workers,
    stop_workers,
    wait_until_done,
    worker_env,
)
from bench.listtasks import SHALLOW, LoadRun, make_run
from hpcplane.config import Settings
from hpcplane.store.tables import clusters
from hpcplane.wiring import build_services

POLL_RATE = 200.0
POLL_CONNECTIONS = 32


@dataclass
class PolledRun:
    """An engine run and the ListTasks polls answered during it."""

    engine: EngineRun
    polling: LoadRun


@dataclass
class EngineResults:
    polled: list[PolledRun] = field(default_factory=list)
    plain: list[EngineRun] = field(default_factory=list)
    baselines: list[Baseline] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


def run_polled(
    backend: str, url: str, home: Path, count: int, workers: int, concurrency: int, timeout: float
) -> PolledRun:
    """engine_steps.run_engine, with `hpcplane serve` polled by wrk from the release to the end."""
    began = time.monotonic()
    services = build_services(settings_for(home, url))
    processes = []
    server = None
    load: loadgen.Background | None = None
    try:
        enqueue(services, count)
        set_due(services, services.clock.now() + timedelta(days=1))
        with services.db.read() as conn:
            rows = conn.execute(select(clusters.c.id, clusters.c.account_id)).all()
        issued = services.accounts.create_key(rows[0].account_id)
        setup = time.monotonic() - began
        port = free_port()
        server = start_server(serve_command(port), serve_env(home, url), port, home / "serve.log", None)
        # Enough signed polls for the run at a pessimistic 500 steps/s, plus the start.
        expected = count * STEPS / 500 + 5
        corpus = loadgen.sign_corpus(
            home / "polls.txt",
            "ListTasks",
            SHALLOW,
            (issued.access_key_id, issued.access_key_secret),
            [r.id for r in rows],
            int(POLL_RATE * expected * 1.2),
        )
        began = time.monotonic()
        processes = start_workers(workers, worker_env(home, url, concurrency), home, timeout=120)
        startup = time.monotonic() - began
        interval = loadgen.interval_ms(POLL_RATE)
        load = loadgen.Background(server.port, corpus, POLL_CONNECTIONS, interval, None)
        time.sleep(0.2)
        released = datetime.now(UTC)
        set_due(services, released)
        wait_until_done(services, processes, timeout)
        result = load.stop()
        load = None
        rss = rss_mb(server.pid)
        ended, steps, statuses = outcome(services)
    finally:
        if load is not None:
            load.stop()
        stop_workers(processes)
        if server is not None:
            server.stop()
        services.close()
    engine = EngineRun.measured(
        backend, workers, concurrency, count, released, ended, steps, statuses, setup, startup
    )
    polling = make_run(
        "ListTasks during engine",
        backend,
        count,
        "poll",
        POLL_CONNECTIONS,
        result,
        corpus,
        rss,
        POLL_RATE,
        server=server,
    )
    return PolledRun(engine, polling)


def engine_suite(
    backends: list[str],
    quick: bool,
    work: Path,
    pg_admin: str,
    pg_skip: str | None,
    plain: bool,
    poll: bool = True,
) -> EngineResults:
    """Polled runs with 1 and 2 worker processes on each backend, and the plain ones when asked (or when
    there is no wrk to poll with)."""
    plain = plain or not poll
    # The polled runs count 1,000 tasks in the quick set too: 100 tasks (one run of 0.6 s) measured the
    # workers' start as much as their steps.
    count = 1000
    concurrency = int(Settings.model_fields["worker_concurrency"].default)
    budget = 1.5 if quick else 5.0
    timeout = 300.0 if quick else 1800.0
    results = EngineResults(
        options={
            "tasks": count,
            "steps_per_task": STEPS,
            "workers": [1, 2],
            "concurrency": concurrency,
            "poll_rate": POLL_RATE,
            "poll_connections": POLL_CONNECTIONS,
            "plain": plain,
        }
    )
    for name in backends:
        databases: SqliteDatabases | PostgresDatabases
        if name == "postgres":
            if pg_skip:
                results.skipped["postgres"] = pg_skip
                continue
            databases = PostgresDatabases(pg_admin)
        else:
            databases = SqliteDatabases(work)
        for workers in (1, 2):
            if poll:
                results.polled.append(
                    run_one_polled(databases, name, work, count, workers, concurrency, timeout)
                )
            if not plain:
                continue
            print(f"engine on {name}: {count} tasks, {workers} worker(s), no polling ...", flush=True)
            with databases.fresh() as url:
                run = run_engine(
                    name, url, work / f"plain-{name}-{workers}", count, workers, concurrency, timeout
                )
                results.plain.append(run)
                print(f"  {run.steps_per_s:.0f} steps/s", flush=True)
                if workers == 1:
                    results.baselines.append(run_baseline(name, url, count * STEPS, budget))
    return results


def run_one_polled(
    databases: SqliteDatabases | PostgresDatabases,
    name: str,
    work: Path,
    count: int,
    workers: int,
    concurrency: int,
    timeout: float,
) -> PolledRun:
    home = work / f"engine-{name}-{workers}"
    print(f"engine on {name}: {count} tasks, {workers} worker(s), ListTasks polled ...", flush=True)
    with databases.fresh() as url:
        polled = run_polled(name, url, home, count, workers, concurrency, timeout)
    poll = polled.polling
    print(
        f"  {polled.engine.steps_per_s:.0f} steps/s; ListTasks meanwhile {poll.requests_per_s:.0f} req/s,"
        f" p99 {poll.p99_ms:.2f} ms, non-2xx {poll.non_2xx}" + (f"  [{poll.note}]" if poll.note else ""),
        flush=True,
    )
    return polled
