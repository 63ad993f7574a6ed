"""`python -m bench.chaos.soak [--seconds N]`: hours-long behaviour at half load, no faults injected.

Two API processes and two workers on PostgreSQL + Redis, half the chaos suite's clients (3 callers, a
call every 0.1 s each), for N seconds (default: $SOAK_SECONDS, else 1800). Prints the calls and errors
(per code, and per hour), each process's RSS after the warm-up and at the end with its growth per hour,
and the tasks lost / stuck / applied twice. Exit status 1 when any call failed or an invariant broke.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.chaos.load import Load
from bench.chaos.observe import Observer
from bench.chaos.report import Run
from bench.chaos.run import make_keys, pg_database, process_settings, settle
from bench.chaos.scenarios import FULL, Context
from bench.chaos.topology import Topology
from bench.common import PG_ADMIN, REDIS_URL, pg_reachable, redis_reachable, rss_mb

CALLERS = 3
PACE = 0.1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS") or 1800))
    args = parser.parse_args(argv)
    for reason in (pg_reachable(PG_ADMIN), redis_reachable(REDIS_URL)):
        if reason:
            print(f"soak: {reason}", file=sys.stderr)
            return 2
    workdir = Path(tempfile.mkdtemp(prefix="hpcplane-soak-"))
    run = Run(f"soak, {args.seconds:.0f} s at half load")
    redis_url = REDIS_URL
    with pg_database(os.urandom(4).hex()) as (url, _role):
        topology = Topology(workdir, url, redis_url, process_settings(FULL))
        observer = Observer(url, None, None)
        load: Load | None = None
        try:
            keys = make_keys(topology, url, CALLERS)
            apis = [topology.api(f"api{n}", wait=False) for n in (1, 2)]
            for n in (1, 2):
                topology.worker(f"worker{n}", wait=False)
            topology.wait_ready()
            load = Load(lambda: [p.endpoint for p in apis], keys, pace=PACE, create_every=FULL.create_every)
            load.start()
            warm = min(30.0, args.seconds / 10)
            time.sleep(warm)
            first = {p.name: rss_mb(p.pid) for p in topology.procs}
            start = time.monotonic()
            time.sleep(max(0.0, args.seconds - warm))
            last = {p.name: rss_mb(p.pid) for p in topology.procs}
            measured = time.monotonic() - start
            load.stop()
            ctx = Context(FULL, topology, load, observer, run, "postgres", random.Random(0))
            settle(ctx, load)
        finally:
            if load is not None:
                load.stop()
            topology.stop()
            observer.close()
    hours = max(measured, 1.0) / 3600
    outcomes = load.outcomes()
    errors = sum(n for code, n in outcomes.items() if code != "ok")
    print(f"soak: {args.seconds:.0f} s at half load ({CALLERS} callers, a call every {PACE} s each)")
    print(f"calls {sum(outcomes.values())}, errors {errors} ({errors / hours:.1f}/hour)", end="")
    print("".join(f", {code} {n}" for code, n in sorted(outcomes.items()) if code != "ok"))
    for what, n in load.transport_errors.most_common(5):
        print(f"  transport: {n} x {what}")
    for name in first:
        growth = (last[name] - first[name]) / hours
        print(f"RSS {name}: {first[name]:.1f} MB -> {last[name]:.1f} MB ({growth:+.1f} MB/hour)")
    print(
        f"tasks accepted {run.accepted} / lost {run.lost} / stuck {run.stuck}"
        f" / applied twice {run.applied_twice}"
    )
    broken = errors or run.lost or run.stuck or run.applied_twice
    if broken:
        print(f"logs in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
