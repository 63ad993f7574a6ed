"""ListTasks under load: signed requests replayed by wrk against `hpcplane serve`, beside a bare ASGI app.

Fair by construction: every request is signed for real (fresh nonce, valid timestamp) shortly before its
run, so the server keeps all its checks (signature, timestamp, nonce replay, authorization) and wrk only
replays bytes, each request once; the server runs on core 0 and wrk on core 1 (taskset); the baseline
(bench/bare.py) runs under the same uvicorn settings and answers a body as long as a real page of 10
tasks. A run that outlasts its corpus shows up as non-2xx answers (SignatureNonceUsed) and is flagged.

listtasks_vs_bare = ListTasks (PageSize=10, Archived=true, random cluster) at full load on SQLite with
10k tasks (the smallest count run), req/s / the bare app's req/s at full load.

`python -m bench.listtasks` runs these alone (`python -m bench` runs them with everything else).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx

from bench import loadgen
from bench.common import Server, free_port, rss_mb, serve_command, serve_env, start_server
from bench.cpu import CpuCost, Meter, Profile
from bench.seeding import Dataset
from hpcplane.testing import sign_v1

SERVER_CORE = 0
HALF_CONNECTIONS = 8


def half_connections(rate: float) -> int:
    """8 connections, more at high rates (up to 32) so that each waits at least ~10 ms between requests:
    wrk's timers have millisecond resolution and fire late, which matters less on longer waits."""
    return max(HALF_CONNECTIONS, min(32, math.ceil(rate / 100)))


SHALLOW = {"Archived": "true", "PageSize": "10"}
DEEP = {**SHALLOW, "PageNumber": "999"}
TARGETS = (("ListTasks", SHALLOW), ("ListTasks PageNumber=999", DEEP))


@dataclass
class LoadRun:
    """One load run against one server (or, for the multi-process run, the sum over two)."""

    target: str
    backend: str
    tasks: int
    load: str  # full: closed loop; half: a fixed rate, half the full-load req/s just measured
    processes: int
    connections: int
    target_rps: float | None
    requests: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int
    corpus: int
    sign_seconds: float
    rss_mb: float
    note: str = ""
    # CPU per request over the run (bench/cpu.py): the server process's, and PostgreSQL's processes'.
    server_cpu_us: float | None = None
    db_cpu_us: float | None = None
    profile: str = ""  # --profile: the flame graph written during the full-load run, or why none

    @property
    def kind(self) -> str:
        return "bare" if self.target.startswith("bare") else "deep" if "999" in self.target else "shallow"


def make_run(
    target: str,
    backend: str,
    tasks: int,
    load: str,
    connections: int,
    result: loadgen.WrkResult,
    corpus: loadgen.Corpus,
    rss: float,
    target_rps: float | None = None,
    processes: int = 1,
    server: Server | None = None,
    probe: Callable[[], str] | None = None,
    cpu: CpuCost | None = None,
) -> LoadRun:
    run = LoadRun(
        target=target,
        backend=backend,
        tasks=tasks,
        load=load,
        processes=processes,
        connections=connections,
        target_rps=round(target_rps, 1) if target_rps else None,
        requests=result.requests,
        seconds=result.seconds,
        requests_per_s=result.requests_per_s,
        p50_ms=result.p50_ms,
        p90_ms=result.p90_ms,
        p99_ms=result.p99_ms,
        max_ms=result.max_ms,
        non_2xx=result.non_2xx,
        socket_errors=result.socket_errors,
        corpus=corpus.size,
        sign_seconds=corpus.sign_seconds,
        rss_mb=rss,
        server_cpu_us=cpu.server_us if cpu else None,
        db_cpu_us=cpu.database_us if cpu and backend == "postgres" else None,
    )
    run.note = flag(run, server, probe)
    return run


def flag(run: LoadRun, server: Server | None, probe: Callable[[], str] | None = None) -> str:
    """Why the run's figures should not be trusted, or ''."""
    notes = []
    if run.requests and run.non_2xx > 0.01 * run.requests:
        if run.corpus and run.requests > run.corpus:
            notes.append(
                f"corpus exhausted ({run.requests} requests > {run.corpus} signed): "
                "the replays were answered SignatureNonceUsed"
            )
        else:
            tail = server.log_tail(2).replace("\n", " | ") if server else ""
            notes.append(
                f"{run.non_2xx} non-2xx answers"
                + (f"; {probe()}" if probe else "")
                + (f" (server log: {tail})" if tail else "")
            )
    if run.requests and run.socket_errors > 0.01 * run.requests:
        notes.append(f"{run.socket_errors} socket errors/timeouts")
    if run.target_rps and not 0.9 <= run.requests_per_s / run.target_rps <= 1.1:
        notes.append(f"achieved {run.requests_per_s / run.target_rps:.0%} of the target rate")
    return "; ".join(notes)


def fresh_answer(port: int, dataset: Dataset, params: dict[str, str]) -> str:
    """What the server answers one freshly signed request now (why a run saw non-2xx answers)."""
    signed = sign_v1(
        "ListTasks", {**params, "ClusterId": dataset.cluster_ids[0]}, dataset.access_key_id, dataset.secret
    )
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}{signed.url_path}", timeout=10)
    except httpx.HTTPError as error:
        return f"a fresh request now fails: {type(error).__name__}"
    if answer.status_code == 200:
        return "a fresh request now answers 200"
    try:
        code = str(answer.json().get("Code", ""))
    except ValueError:
        code = ""
    return f"a fresh request now answers {answer.status_code} {code}".strip()


def page_body_bytes(port: int, dataset: Dataset) -> int:
    """The length of one real ListTasks page of 10 tasks, checking TotalCount against the seeded count."""
    signed = sign_v1(
        "ListTasks", {**SHALLOW, "ClusterId": dataset.cluster_ids[1]}, dataset.access_key_id, dataset.secret
    )
    answer = httpx.get(f"http://127.0.0.1:{port}{signed.url_path}", timeout=30)
    if answer.status_code != 200:
        raise RuntimeError(f"ListTasks answered {answer.status_code}: {answer.text[:300]}")
    body = answer.json()
    page = body.get("Tasks")
    listed = len(page.get("TaskInfo", [])) if isinstance(page, dict) else len(page or [])
    expected = dataset.tasks // len(dataset.cluster_ids)
    if body.get("TotalCount") != expected or listed != min(10, expected):
        print(
            f"  warning: ListTasks answered TotalCount={body.get('TotalCount')} and {listed} tasks,"
            f" expected {expected} and {min(10, expected)}",
            flush=True,
        )
    return len(answer.content)


def corpus_size(rate: float, seconds: float) -> int:
    return int(rate * seconds * 1.2) + 100


@dataclass
class Sizing:
    """How many requests to sign for a full-load run: enough for twice the best ListTasks rate seen so far
    (the bare app's rate before any); a run that comes within 5% of using up its corpus is run again with
    one for `ceiling` req/s (the bare app's, which no server beats). The guess saves signing time:
    ListTasks runs far below the bare app's rate."""

    ceiling: float
    best: float = 0.0  # the best full-load ListTasks req/s seen so far

    @property
    def guess(self) -> float:
        return min(self.ceiling, 2 * self.best) if self.best else self.ceiling

    def seen(self, runs: list[LoadRun]) -> Sizing:
        rates = [r.requests_per_s for r in runs if r.load == "full" and r.processes == 1]
        return Sizing(self.ceiling, max([self.best, *rates]))


def signed(path: Path, sign: tuple[Dataset, dict[str, str]] | None, size: int) -> loadgen.Corpus:
    """`size` requests signed now for the dataset, or the bare app's single unsigned path."""
    if sign is None:
        return loadgen.plain_corpus(path)
    dataset, params = sign
    key = (dataset.access_key_id, dataset.secret)
    return loadgen.sign_corpus(path, "ListTasks", params, key, dataset.cluster_ids, size)


def full_load(
    port: int,
    path: Path,
    sign: tuple[Dataset, dict[str, str]] | None,
    seconds: float,
    connections: int,
    sizing: Sizing,
    core: int | None = loadgen.WRK_CORE,
    meter: Callable[[], Meter] | None = None,
) -> tuple[loadgen.WrkResult, loadgen.Corpus, CpuCost | None]:
    """A closed-loop run with a corpus sized by `sizing` (and a second one if the first nearly ran out),
    and, with `meter`, the CPU each request of the run (the last) cost."""
    for rate in sorted({min(sizing.guess, sizing.ceiling), sizing.ceiling}):
        corpus = signed(path, sign, corpus_size(rate, seconds))
        started = meter() if meter else None
        result = loadgen.run_wrk(port, corpus, seconds, connections, core=core)
        cost = started.stop(result.requests) if started else None
        if sign is None or result.requests < 0.95 * corpus.size or rate >= sizing.ceiling:
            break
        print(
            f"  {result.requests} requests nearly used up {corpus.size} signed: again, with more", flush=True
        )
    return result, corpus, cost


def load_pair(
    server: Server,
    work: Path,
    label: str,
    backend: str,
    tasks: int,
    seconds: float,
    connections: int,
    sizing: Sizing,
    sign: tuple[Dataset, dict[str, str]] | None,
    profile_dir: Path | None = None,
) -> list[LoadRun]:
    """A full-load run, then a half-load run at half the req/s it measured, against one server.

    `sign` is the dataset and parameters to sign corpora for (None: the bare app, one unsigned path);
    `profile_dir`: write a py-spy flame graph of the server during the full-load run there."""
    stem = f"{label}-{backend}-{tasks}".replace(" ", "_").replace("=", "")
    probe = partial(fresh_answer, server.port, *sign) if sign else None
    meter = partial(Meter, [server.pid], backend == "postgres")
    spy = Profile(server.pid, profile_dir / f"profile-{stem}.svg", seconds) if profile_dir else None
    result, corpus, cpu = full_load(
        server.port, work / f"{stem}-full.txt", sign, seconds, connections, sizing, meter=meter
    )
    full = make_run(
        label,
        backend,
        tasks,
        "full",
        connections,
        result,
        corpus,
        rss_mb(server.pid),
        server=server,
        probe=probe,
        cpu=cpu,
    )
    if spy:
        full.profile = spy.stop()
    print(describe(full), flush=True)
    rate = full.requests_per_s / 2
    corpus = signed(work / f"{stem}-half.txt", sign, corpus_size(rate, seconds))
    connections = half_connections(rate)
    started = meter()
    result = loadgen.fixed_rate(server.port, corpus, seconds, connections, rate)
    cpu = started.stop(result.requests)
    half = make_run(
        label,
        backend,
        tasks,
        "half",
        connections,
        result,
        corpus,
        rss_mb(server.pid),
        rate,
        server=server,
        probe=probe,
        cpu=cpu,
    )
    print(describe(half), flush=True)
    return [full, half]


def describe(run: LoadRun) -> str:
    rate = f" (target {run.target_rps:.0f}/s)" if run.target_rps else ""
    cpu = f", server CPU {run.server_cpu_us:.0f} us/req" if run.server_cpu_us is not None else ""
    if run.db_cpu_us is not None:
        cpu += f", database CPU {run.db_cpu_us:.0f} us/req"
    return (
        f"  {run.target} {run.load} load: {run.requests_per_s:.0f} req/s{rate}, p50 {run.p50_ms:.2f} ms, "
        f"p99 {run.p99_ms:.2f} ms, non-2xx {run.non_2xx}, RSS {run.rss_mb:.0f} MB{cpu}"
        + (f"  [{run.note}]" if run.note else "")
        + (f"  profile: {run.profile}" if run.profile else "")
    )


def measure_bare(work: Path, body_bytes: int, seconds: float, connections: int) -> list[LoadRun]:
    port = free_port()
    env = serve_env(work, None)
    env["HPCPLANE_BENCH_BODY_BYTES"] = str(body_bytes)
    command = [sys.executable, "-m", "bench.bare", "--port", str(port), "--log-level", "warning"]
    server = start_server(command, env, port, work / "bare.log", SERVER_CORE)
    try:
        return load_pair(server, work, "bare ASGI", "-", 0, seconds, connections, Sizing(0), None)
    finally:
        server.stop()


def start_serve(dataset: Dataset, work: Path, core: int | None, redis_url: str | None = None) -> Server:
    port = free_port()
    env = serve_env(dataset.home, dataset.database_url, redis_url)
    log = work / f"serve-{dataset.backend}-{dataset.tasks}-{port}.log"
    return start_server(serve_command(port), env, port, log, core)


def measure_dataset(
    dataset: Dataset,
    server: Server,
    work: Path,
    seconds: float,
    connections: int,
    sizing: Sizing,
    profile_dir: Path | None = None,
) -> list[LoadRun]:
    """Shallow and deep ListTasks, each at full then half load, on one running server."""
    runs: list[LoadRun] = []
    for label, params in TARGETS:
        runs += load_pair(
            server,
            work,
            label,
            dataset.backend,
            dataset.tasks,
            seconds,
            connections,
            sizing,
            (dataset, params),
            profile_dir,
        )
        sizing = sizing.seen(runs)
    return runs


def main(argv: list[str] | None = None) -> int:
    from bench.run import main as run_main

    return run_main(argv, prog="python -m bench.listtasks", engine=False)


if __name__ == "__main__":
    sys.exit(main())
