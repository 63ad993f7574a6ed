"""`python -m bench`: every benchmark, its tables, bench/results/<date>.json and one JSON line of headlines.

Task counts: 10k, 100k, 1M and 10M (each seeded only where the disk has room). Order: per backend and
task count, seed the dataset once, start one `hpcplane serve` on it (core 0) and
run ListTasks shallow and deep, each at full then half load (wrk on core 1); before the first of these,
the bare ASGI baseline with a body as long as a real page. After the smallest PostgreSQL dataset, the
two-process run (PostgreSQL + Redis). Then the engine with 1 and 2 worker processes on each backend while
ListTasks is polled; last, where one ListTasks call's time goes (bench/stages.py). `--quick`: 10k and
100k tasks, 5 s runs, the engine's polled runs only (1,000 tasks each, as in the full set).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import headline as report
from bench.common import (
    PG_ADMIN,
    REDIS_URL,
    load_average,
    machine_info,
    pg_drop,
    pg_reachable,
    redis_reachable,
)
from bench.engine_load import EngineResults, engine_suite
from bench.listtasks import (
    SERVER_CORE,
    LoadRun,
    Sizing,
    measure_bare,
    measure_dataset,
    page_body_bytes,
    start_serve,
)
from bench.multiprocess import measure_multiprocess
from bench.seeding import Dataset, disk_check, seed
from bench.stages import Stage
from bench.stages import print_table as print_stages
from bench.stages import run as run_stages

RESULTS = Path(__file__).with_name("results")
WRK_MISSING = (
    "wrk not found: ListTasks runs skipped (Debian/Ubuntu: apt-get install wrk; taskset: util-linux)"
)


class Bench:
    """What one invocation measured so far."""

    def __init__(self, args: argparse.Namespace, counts: list[int], backends: list[str]) -> None:
        self.args = args
        self.counts = counts
        self.backends = backends
        self.seconds: float = args.seconds
        self.datasets: list[Dataset] = []
        self.bare: list[LoadRun] = []
        self.runs: list[LoadRun] = []
        self.multi: list[LoadRun] = []
        self.engine: EngineResults | None = None
        self.stages: list[Stage] = []
        self.skipped: dict[str, str] = {}
        self.errors: list[str] = []

    def skip(self, what: str, reason: str) -> None:
        self.skipped[what] = reason
        print(f"{what} skipped: {reason}", flush=True)

    def listtasks(self, work: Path, pg_skip: str | None) -> None:
        for backend in self.backends:
            if backend == "postgres" and pg_skip:
                self.skip("postgres ListTasks", pg_skip)
                continue
            for count in self.counts:
                reason = disk_check(backend, count, work, self.args.pg_admin)
                if reason:
                    self.skip(f"{backend} {count} tasks", reason)
                    continue
                print(f"{backend}: seeding {count} tasks over 1,000 clusters ...", flush=True)
                try:
                    dataset = seed(backend, count, work, self.args.pg_admin)
                except Exception as error:
                    self.errors.append(f"seeding {backend} {count}: {type(error).__name__}: {error}")
                    traceback.print_exc()
                    shutil.rmtree(work / f"{backend}-{count}", ignore_errors=True)
                    continue
                self.datasets.append(dataset)
                print(f"  seeded in {dataset.seed_seconds} s ({dataset.size_mb} MB)", flush=True)
                try:
                    self.on_dataset(dataset, work)
                finally:
                    if dataset.pg_name:
                        pg_drop(self.args.pg_admin, dataset.pg_name)
                    shutil.rmtree(dataset.home, ignore_errors=True)

    def on_dataset(self, dataset: Dataset, work: Path) -> None:
        """Every run on one dataset, retried once (after a pause) if it fails."""
        for attempt in (1, 2):
            try:
                self._runs_on(dataset, work)
                break
            except Exception as error:
                message = f"{dataset.backend} {dataset.tasks}: {type(error).__name__}: {error}"
                if attempt == 2:
                    self.errors.append(message)
                    print(f"  failed again, giving up: {message}", flush=True)
                else:
                    print(f"  failed ({message}); retrying once in 5 s", flush=True)
                    self.runs = [
                        r for r in self.runs if (r.backend, r.tasks) != (dataset.backend, dataset.tasks)
                    ]
                    time.sleep(5)
        if dataset.backend == "postgres" and dataset.tasks == self.counts[0] and self.bare:
            redis_url: str | None = self.args.redis_url
            reason = redis_reachable(redis_url) if redis_url else "no Redis URL given"
            if reason:
                print(f"  {reason}: the two API processes share nonces through PostgreSQL", flush=True)
                redis_url = None
            print(f"postgres: {dataset.tasks} tasks, 1 then 2 API processes ...", flush=True)
            try:
                self.multi = measure_multiprocess(
                    dataset, work, self.seconds, self.args.connections, self.sizing(), redis_url
                )
            except Exception as error:
                self.errors.append(f"multi-process: {type(error).__name__}: {error}")
                traceback.print_exc()

    def sizing(self) -> Sizing:
        """Corpora for twice the best ListTasks rate seen so far, at most for the bare app's rate."""
        return Sizing(self.bare[0].requests_per_s).seen(self.runs)

    def _runs_on(self, dataset: Dataset, work: Path) -> None:
        server = start_serve(dataset, work, SERVER_CORE)
        try:
            if not self.bare:
                body = page_body_bytes(server.port, dataset)
                print(f"bare ASGI baseline, body of {body} bytes (one real page of 10 tasks) ...", flush=True)
                self.bare = measure_bare(work, body, self.seconds, self.args.connections)
            print(f"{dataset.backend}: {dataset.tasks} tasks, ListTasks ...", flush=True)
            profile_dir = RESULTS if self.args.profile else None
            if profile_dir:
                profile_dir.mkdir(exist_ok=True)
            self.runs += measure_dataset(
                dataset, server, work, self.seconds, self.args.connections, self.sizing(), profile_dir
            )
        finally:
            server.stop()


def parse(argv: list[str] | None, prog: str, engine: bool) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="10k and 100k tasks, 5 s runs, quick engine sizes"
    )
    parser.add_argument("--tasks", default=None, help="task counts, e.g. 10000,100000,1000000,10000000")
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite, postgres or both")
    parser.add_argument("--seconds", type=float, default=None, help="length of one load run (10; --quick 5)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections at full load")
    parser.add_argument("--pg-admin", default=PG_ADMIN, help="PostgreSQL admin URL")
    parser.add_argument("--redis-url", default=REDIS_URL, help="Redis for the two-process run's nonces")
    parser.add_argument("--workdir", default=None, help="where datasets go (default: a temporary directory)")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="write a py-spy flame graph of the server during each full-load ListTasks run to "
        "bench/results/profile-*.svg (needs py-spy: pip install -e '.[bench]')",
    )
    if engine:
        parser.add_argument("--no-engine", action="store_true", help="skip the engine runs")
        parser.add_argument("--no-listtasks", action="store_true", help="skip the ListTasks runs")
    args = parser.parse_args(argv)
    if not engine:
        args.no_engine, args.no_listtasks = True, False
    if args.seconds is None:
        args.seconds = 5.0 if args.quick else 10.0
    return args


def main(argv: list[str] | None = None, *, prog: str = "python -m bench", engine: bool = True) -> int:
    args = parse(argv, prog, engine)
    began = time.monotonic()
    started = datetime.now(UTC)
    counts = sorted(
        {
            int(n)
            for n in (
                args.tasks or ("10000,100000" if args.quick else "10000,100000,1000000,10000000")
            ).split(",")
        }
    )
    backends = [b for b in args.backends.split(",") if b]
    for name in backends:
        if name not in ("sqlite", "postgres"):
            print(f"unknown backend {name!r}", file=sys.stderr)
            return 2
    bench = Bench(args, counts, backends)
    machine = machine_info()
    pg_skip = pg_reachable(args.pg_admin) if "postgres" in backends else None
    has_wrk = shutil.which("wrk") is not None and shutil.which("taskset") is not None
    with tempfile.TemporaryDirectory(prefix="hpcplane-bench-", dir=args.workdir) as tmp:
        work = Path(tmp)
        if not args.no_listtasks:
            if has_wrk:
                bench.listtasks(work, pg_skip)
            else:
                print(WRK_MISSING, flush=True)
                bench.skipped["ListTasks"] = WRK_MISSING
        if not args.no_engine:
            if not has_wrk:
                print("engine: wrk is missing, so the engine runs without ListTasks polls", flush=True)
            try:
                bench.engine = engine_suite(
                    backends, args.quick, work, args.pg_admin, pg_skip, plain=not args.quick, poll=has_wrk
                )
            except Exception as error:
                bench.errors.append(f"engine: {type(error).__name__}: {error}")
                traceback.print_exc()
        if not args.no_listtasks:
            print("where one ListTasks call's time goes (bench.stages) ...", flush=True)
            try:
                stages_backends = [b for b in backends if b == "sqlite" or not pg_skip]
                bench.stages = run_stages(stages_backends, 1000 if args.quick else 3000, args.pg_admin)
            except Exception as error:
                bench.errors.append(f"stages: {type(error).__name__}: {error}")
                traceback.print_exc()
    machine["load_end"] = load_average()
    figures = report.headline(bench.bare, bench.runs, bench.multi, bench.engine)
    ran = bool(bench.runs or bench.bare or (bench.engine and (bench.engine.polled or bench.engine.plain)))
    if bench.datasets:
        seeded = [f"{d.backend} {d.tasks} in {d.seed_seconds} s ({d.size_mb} MB)" for d in bench.datasets]
        print("\ndatasets seeded: " + ", ".join(seeded))
    if bench.bare or bench.runs:
        report.print_load_table(bench.bare, bench.runs, bench.multi)
    if bench.engine:
        report.print_engine_table(bench.engine)
    if bench.stages:
        print_stages(bench.stages)
    report.print_headline_table(figures)
    for what, reason in bench.skipped.items():
        print(f"skipped: {what}: {reason}")
    for failure in bench.errors:
        print(f"error: {failure}")
    wall = round(time.monotonic() - began, 1)
    print(
        f"machine: {machine['cpus']} CPUs, Python {machine['python']}, uvicorn "
        f"{machine['uvicorn_http']}/{machine['uvicorn_loop']}, load average {machine['load_start']} at "
        f"start, {machine['load_end']} at end; {wall} s in all"
    )
    if not args.no_write and ran:
        RESULTS.mkdir(exist_ok=True)
        stem = (
            ("" if engine else "listtasks-") + started.strftime("%Y-%m-%d") + ("-quick" if args.quick else "")
        )
        path = RESULTS / f"{stem}.json"
        path.write_text(json.dumps(record(bench, machine, started, wall, figures), indent=2) + "\n")
        print(f"wrote {path}")
    print(json.dumps({k: v for k, v in figures.items() if k != "latency_growth_all"}))
    return 0 if ran else 2


def record(
    bench: Bench, machine: dict[str, Any], started: datetime, wall: float, figures: dict[str, Any]
) -> dict[str, Any]:
    options = {k: v for k, v in vars(bench.args).items() if k not in ("pg_admin", "redis_url", "workdir")}
    return {
        "date": started.isoformat(timespec="seconds"),
        "wall_seconds": wall,
        "options": {**options, "tasks": bench.counts, "backends": bench.backends},
        "machine": machine,
        "datasets": [d.summary() for d in bench.datasets],
        "bare": [asdict(r) for r in bench.bare],
        "listtasks": [asdict(r) for r in bench.runs],
        "multiprocess": [asdict(r) for r in bench.multi],
        "engine": asdict(bench.engine) if bench.engine else None,
        "stages": [asdict(stage) for stage in bench.stages],
        "skipped": bench.skipped,
        "errors": bench.errors,
        "headline": figures,
    }
