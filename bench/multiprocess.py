"""ListTasks on two API processes sharing one PostgreSQL database (and Redis for nonces), beside one.

The shallow full-load run against one `hpcplane serve` (core 0, one wrk with 32 connections), then against
two (cores 0 and 1), each driven by its own wrk with 16 connections, at the same time; the two req/s are
summed, and p50/p99 are the worse of the two wrk. Both set-ups use Redis for nonces (as several API
processes must share them), so the ratio compares like with like. On a 2-core machine both wrk and
PostgreSQL share the cores with the servers: the ratio understates what a machine with cores to spare
would show.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

from bench import loadgen
from bench.common import redis_forget, rss_mb
from bench.listtasks import (
    SERVER_CORE,
    SHALLOW,
    LoadRun,
    Sizing,
    corpus_size,
    describe,
    fresh_answer,
    full_load,
    make_run,
    signed,
    start_serve,
)
from bench.seeding import Dataset


def measure_multiprocess(
    dataset: Dataset, work: Path, seconds: float, connections: int, sizing: Sizing, redis_url: str | None
) -> list[LoadRun]:
    """Shallow ListTasks at full load on one API process, then on two sharing the database (and Redis)."""
    sign = (dataset, SHALLOW)
    runs: list[LoadRun] = []
    single = start_serve(dataset, work, SERVER_CORE, redis_url)
    try:
        result, corpus, _ = full_load(single.port, work / "mp-single.txt", sign, seconds, connections, sizing)
        runs.append(
            make_run(
                "ListTasks 1 process",
                dataset.backend,
                dataset.tasks,
                "full",
                connections,
                result,
                corpus,
                rss_mb(single.pid),
                server=single,
                probe=partial(fresh_answer, single.port, *sign),
            )
        )
        print(describe(runs[-1]), flush=True)
    finally:
        single.stop()
    # Each of two servers answers at most what one did alone (they share the cores with wrk).
    each = corpus_size(min(1.5 * runs[0].requests_per_s, sizing.ceiling), seconds)
    servers = [start_serve(dataset, work, core, redis_url) for core in (0, 1)]
    try:
        half = max(1, connections // 2)
        corpora = [signed(work / f"mp-{i}.txt", sign, each) for i in range(2)]
        # One wrk per server, unpinned: with two cores, the servers and both wrk share them.
        loads: list[loadgen.Background] = []
        try:
            for server, corpus in zip(servers, corpora, strict=True):
                loads.append(loadgen.Background(server.port, corpus, half, 0.0, None))
            time.sleep(seconds)
        finally:
            results = [load.stop() for load in loads]
        total = loadgen.WrkResult(
            requests=sum(r.requests for r in results),
            seconds=max(r.seconds for r in results),
            requests_per_s=round(sum(r.requests_per_s for r in results), 1),
            p50_ms=max(r.p50_ms for r in results),
            p90_ms=max(r.p90_ms for r in results),
            p99_ms=max(r.p99_ms for r in results),
            max_ms=max(r.max_ms for r in results),
            non_2xx=sum(r.non_2xx for r in results),
            socket_errors=sum(r.socket_errors for r in results),
        )
        both = loadgen.Corpus(corpora[0].path, 2 * each, sum(c.sign_seconds for c in corpora))
        runs.append(
            make_run(
                "ListTasks 2 processes",
                dataset.backend,
                dataset.tasks,
                "full",
                2 * half,
                total,
                both,
                max(rss_mb(s.pid) for s in servers),
                processes=2,
                server=servers[0],
                probe=partial(fresh_answer, servers[0].port, *sign),
            )
        )
        print(describe(runs[-1]), flush=True)
    finally:
        for server in servers:
            server.stop()
    if redis_url:
        redis_forget(redis_url, dataset.access_key_id)
    return runs
