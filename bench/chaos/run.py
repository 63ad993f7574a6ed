"""`python -m bench.chaos [--short] [--seed N] [--json FILE]`: real processes, faults, a table, invariants.

On PostgreSQL + Redis: two API processes and two workers (plus one in a network namespace of its own
when run as root), every path to PostgreSQL and Redis through a proxy process the suite controls. Then
the embedded mode: one `serve` on SQLite. Exit status 1 when an invariant breaks (a task lost, stuck or
applied twice, an undocumented error code, a call past its bound, a takeover past lease + slack, more
connections than the budget, a throttled AccessKey answered past its quota), 2 when PostgreSQL or Redis
is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url
from tests.support.pathproxy import PathProxy

from bench.chaos import scenarios
from bench.chaos.load import Load
from bench.chaos.observe import Observer, utcnow
from bench.chaos.report import Run, table
from bench.chaos.scenarios import FULL, SHORT, Context, Profile
from bench.chaos.topology import Topology
from bench.common import PG_ADMIN, REDIS_URL, pg_reachable, redis_reachable
from hpcplane.config import Settings
from hpcplane.wiring import build_services

API_POOL, API_OVERFLOW, CONCURRENCY = 3, 3, 3


def process_settings(profile: Profile) -> dict[str, str]:
    return {
        "lease_seconds": str(profile.lease),
        "db_timeout": str(profile.db_timeout),
        "sim_step_seconds": str(profile.step),
        "sim_jitter": "0.25",
        "max_attempts": "6",
        "worker_concurrency": str(CONCURRENCY),
        "poll_interval": "0.1",
        "db_pool_size": str(API_POOL),
        "db_max_overflow": str(API_OVERFLOW),
    }


def make_keys(topology: Topology, database_url: str | None, count: int) -> list[dict[str, str]]:
    """Accounts made straight in the store (the processes are not what this measures)."""
    settings = Settings(home=topology.workdir / "home", database_url=database_url, redis_url=None)
    services = build_services(settings)
    try:
        keys = []
        for n in range(count):
            issued = services.accounts.create_account(f"chaos-{n}-{uuid.uuid4().hex[:6]}")
            keys.append({"AccessKeyId": issued.access_key_id, "AccessKeySecret": issued.access_key_secret})
        return keys
    finally:
        services.close()


def warm_up(load: Load, tasks: int, limit: float = 60.0) -> None:
    """Wait until clients have `tasks` tasks accepted, so the first fault finds work in flight."""
    deadline = time.monotonic() + limit
    while len(load.accepted) < tasks and time.monotonic() < deadline:
        time.sleep(0.1)


def settle(ctx: Context, load: Load, limit: float = 600.0) -> None:
    """Wait for every accepted task to end; then count lost, stuck and applied twice.

    A task is stuck when it has not ended and no worker recorded any step for two leases plus the
    slack (a backlog that still moves is not stuck, however long it is); `limit` caps the wait."""
    ids = [a.task_id for a in load.accepted]
    deadline = time.monotonic() + limit
    idle_limit = 2 * ctx.profile.lease + scenarios.TAKEOVER_SLACK
    left = ctx.observer.unfinished(ids)
    while left and time.monotonic() < deadline:
        since, moment = time.monotonic(), utcnow()
        if ctx.observer.wait_first_step(moment, since, idle_limit) is None:
            break  # nothing moved for two leases: what is left is stuck
        left = ctx.observer.unfinished(left)
    if not left and ctx.last_fault_end:
        drain = time.monotonic() - ctx.last_fault_end
        ctx.run.drain = round(max(ctx.run.drain or 0.0, drain), 2)
    missing = ctx.observer.missing(ids)
    ctx.run.accepted += len(ids)
    ctx.run.lost += len(missing)
    ctx.run.stuck += len(left - missing)
    ctx.run.applied_twice += ctx.observer.applied_twice()
    for status, n in ctx.observer.statuses().items():
        ctx.run.statuses[status] = ctx.run.statuses.get(status, 0) + n
    ctx.run.codes.update(load.outcomes())


@contextmanager
def pg_database(run_id: str) -> Iterator[tuple[str, str]]:
    """A database owned by a role of its own (so its CONNECTION LIMIT applies); (URL, role)."""
    name = role = f"hpcplane_chaos_{run_id}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
        admin.execute(f'CREATE DATABASE "{name}" OWNER "{role}"')
    admin_url = make_url(PG_ADMIN)
    url = admin_url.set(drivername="postgresql+psycopg", username=role, database=name)
    try:
        yield url.render_as_string(hide_password=False), role
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def check_budgets(run: Run, peaks: dict[str, int], small_pid: int) -> None:
    """Each process's peak connections (by application_name "hpcplane <role> <pid>") within budget."""
    budgets = {"api": API_POOL + API_OVERFLOW, "engine": CONCURRENCY + 2, "listen": 1}
    for name, peak in peaks.items():
        _, role, pid = name.split()
        budget = 2 if role == "api" and int(pid) == small_pid else budgets.get(role, 0)
        key = f"{role} (pid {pid})" if budget == 2 and role == "api" else role
        previous = run.connections.get(key, (0, budget))
        run.connections[key] = (max(previous[0], peak), budget)
        if peak > budget:
            run.breach(f"{name} held {peak} connections (budget {budget})")


def postgres_phase(profile: Profile, run: Run, workdir: Path, rng: random.Random) -> None:
    run_id = uuid.uuid4().hex[:8]
    redis_target = make_url(REDIS_URL.replace("redis://", "redis+x://", 1))
    with pg_database(run_id) as (direct_url, role):
        direct = make_url(direct_url)
        pg_host, pg_port = direct.host or "127.0.0.1", direct.port or 5432
        db_proxy = PathProxy(pg_host, pg_port)
        redis_proxy = PathProxy(redis_target.host or "127.0.0.1", redis_target.port or 6379)
        via = direct.set(port=db_proxy.port).render_as_string(hide_password=False)
        redis_db = (redis_target.database or "0").lstrip("/") or "0"
        topology = Topology(
            workdir / "pg", via, f"redis://{redis_proxy.endpoint}/{redis_db}", process_settings(profile)
        )
        topology.workdir.mkdir(parents=True)
        observer = Observer(
            direct_url, PG_ADMIN.replace("postgresql+psycopg://", "postgresql://", 1), direct.database
        )
        load: Load | None = None
        try:
            keys = make_keys(topology, direct_url, profile.clients + 2)
            apis = [topology.api(f"api{n}", wait=False) for n in (1, 2)]
            workers = [topology.worker(f"worker{n}", wait=False) for n in (1, 2)]
            topology.wait_ready()
            load = Load(
                lambda: [p.endpoint for p in apis], keys[: profile.clients], create_every=profile.create_every
            )
            ctx = Context(profile, topology, load, observer, run, "postgres", rng)
            observer.start()
            load.start()
            warm_up(load, profile.clients * 2)
            for _ in range(profile.kills):
                scenarios.kill_worker(ctx, rng.choice(workers))
            scenarios.kill_api(ctx, rng.choice(apis))
            scenarios.db_refuse(ctx, db_proxy)
            scenarios.db_freeze(ctx, db_proxy)
            scenarios.redis_down(ctx, redis_proxy)
            scenarios.exhaustion(ctx, PG_ADMIN, role, limit=4)
            scenarios.network_cut(
                ctx,
                pg_host,
                pg_port,
                lambda host, port: direct.set(host=host, port=port).render_as_string(False),
            )
            # The throttle pair starts while the overload runs (starting a process is slow under load).
            throttled = [scenarios.start_throttled(topology, f"api-throttle{n}") for n in (1, 2)]
            overloaded = topology.api(
                "api-overload", max_concurrency="2", api_threads="2", db_pool_size="2", db_max_overflow="0"
            )
            scenarios.overload(ctx, overloaded, callers=6)
            scenarios.throttle(ctx, throttled, keys[profile.clients], keys[profile.clients + 1])
            load.stop()
            settle(ctx, load)
            check_budgets(run, observer.peak, overloaded.pid)
        finally:
            if load is not None:
                load.stop()
            topology.stop()
            observer.close()
            db_proxy.close()
            redis_proxy.close()


def sqlite_phase(profile: Profile, run: Run, workdir: Path, rng: random.Random) -> None:
    settings = process_settings(profile)
    topology = Topology(workdir / "sqlite", None, None, settings)
    topology.workdir.mkdir(parents=True)
    url = f"sqlite:///{(topology.workdir / 'home' / 'hpcplane.db').resolve()}"
    observer = Observer(url, None, None)
    load: Load | None = None
    try:
        keys = make_keys(topology, None, max(2, profile.clients // 2))
        serve = topology.api("serve", worker=True)
        load = Load(lambda: [serve.endpoint], keys, create_every=profile.create_every)
        ctx = Context(profile, topology, load, observer, run, "sqlite", rng)
        load.start()
        warm_up(load, len(keys) * 2)
        for _ in range(max(1, profile.kills - 1)):
            scenarios.kill_serve(ctx, serve)
        load.stop()
        settle(ctx, load)
    finally:
        if load is not None:
            load.stop()
        topology.stop()
        observer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--short", action="store_true", help="the CI variant: shorter faults, fewer kills")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    profile = SHORT if args.short else FULL
    for reason in (pg_reachable(PG_ADMIN), redis_reachable(REDIS_URL)):
        if reason:
            print(f"chaos: {reason}", file=sys.stderr)
            return 2
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    load_avg = " ".join(f"{x:.1f}" for x in os.getloadavg())
    run = Run(
        f"{profile.name}, seed {seed}, lease {profile.lease} s, HPCPLANE_DB_TIMEOUT {profile.db_timeout} s,"
        f" {os.cpu_count()} CPUs, load average at start {load_avg}"
    )
    workdir = Path(tempfile.mkdtemp(prefix="hpcplane-chaos-"))
    started = time.monotonic()
    try:
        postgres_phase(profile, run, workdir, rng)
        sqlite_phase(profile, run, workdir, rng)
    finally:
        for invariant, value in (
            ("lost", run.lost),
            ("stuck", run.stuck),
            ("applied twice", run.applied_twice),
        ):
            if value:
                run.breach(f"{value} tasks {invariant}")
        print(table(run))
        print(f"({time.monotonic() - started:.0f} s" + (f"; logs in {workdir})" if run.breaches else ")"))
        if not run.breaches:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(run.to_json(), indent=2))
    print(json.dumps(run.to_json()))
    return 1 if run.breaches else 0
