"""The headline figures, each beside its target, and the tables `python -m bench` prints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.engine_load import EngineResults
from bench.listtasks import LoadRun

# figure -> (comparison, bound)
TARGETS: dict[str, tuple[str, float]] = {
    "listtasks_vs_bare": (">=", 0.3),
    "listtasks_vs_bare_pg": (">=", 0.2),
    "p99_ms_half_load": ("<", 10.0),
    "latency_growth": ("<=", 1.5),
    "rss_mb": ("<", 150.0),
    "engine_steps_per_s_pg": (">=", 10000.0),
}


def _met(value: float | None, comparison: str, bound: float) -> bool | None:
    if value is None:
        return None
    return {">=": value >= bound, "<": value < bound, "<=": value <= bound}[comparison]


def _shallow_full(runs: Sequence[LoadRun], backend: str) -> LoadRun | None:
    """The shallow full-load run on `backend` at the smallest task count measured."""
    found = [r for r in runs if r.backend == backend and r.kind == "shallow" and r.load == "full"]
    return min(found, key=lambda r: r.tasks) if found else None


def _cpu_ratio(bare: LoadRun | None, run: LoadRun | None) -> float | None:
    if not (bare and run and bare.server_cpu_us and run.server_cpu_us):
        return None
    return round(bare.server_cpu_us / run.server_cpu_us, 3)


def latency_growths(runs: Sequence[LoadRun]) -> dict[str, float]:
    """Half-load p50 at the largest task count / at the smallest, per backend and page depth."""
    growth: dict[str, float] = {}
    for backend in ("sqlite", "postgres"):
        for kind in ("shallow", "deep"):
            half = [r for r in runs if r.backend == backend and r.kind == kind and r.load == "half"]
            if len({r.tasks for r in half}) < 2:
                continue
            low = min(half, key=lambda r: r.tasks)
            high = max(half, key=lambda r: r.tasks)
            if low.p50_ms > 0:
                growth[f"{backend} {kind} {high.tasks}/{low.tasks}"] = round(high.p50_ms / low.p50_ms, 2)
    return growth


def headline(
    bare: Sequence[LoadRun], runs: Sequence[LoadRun], multi: Sequence[LoadRun], engine: EngineResults | None
) -> dict[str, Any]:
    """One dict of headline figures, with `targets` (the bound of each) and `met` (whether it holds)."""
    bare_full = next((r for r in bare if r.load == "full"), None)
    sqlite, pg = _shallow_full(runs, "sqlite"), _shallow_full(runs, "postgres")
    half = [r for r in runs if r.load == "half"]
    worst_p99 = max(half, key=lambda r: r.p99_ms, default=None)
    growth = latency_growths(runs)
    worst_growth = max(growth.items(), key=lambda item: item[1], default=None)
    figures: dict[str, Any] = {
        "listtasks_cpu_us_sqlite": sqlite.server_cpu_us if sqlite else None,
        "listtasks_cpu_us_pg": pg.server_cpu_us if pg else None,
        "listtasks_db_cpu_us_pg": pg.db_cpu_us if pg else None,
        "bare_cpu_us": bare_full.server_cpu_us if bare_full else None,
        # The ratio in CPU: bare's CPU per request / ListTasks'. On a shared machine the req/s of two runs
        # a minute apart move with the load; the CPU each request costs much less.
        "listtasks_vs_bare_cpu": _cpu_ratio(bare_full, sqlite),
        "listtasks_vs_bare_cpu_pg": _cpu_ratio(bare_full, pg),
        "listtasks_vs_bare": round(sqlite.requests_per_s / bare_full.requests_per_s, 3)
        if sqlite and bare_full
        else None,
        "listtasks_vs_bare_pg": round(pg.requests_per_s / bare_full.requests_per_s, 3)
        if pg and bare_full
        else None,
        "listtasks_vs_bare_at": f"sqlite {sqlite.tasks} tasks, shallow, full load" if sqlite else None,
        "bare_rps": bare_full.requests_per_s if bare_full else None,
        "listtasks_rps_sqlite": sqlite.requests_per_s if sqlite else None,
        "listtasks_rps_pg": pg.requests_per_s if pg else None,
        "p99_ms_half_load": worst_p99.p99_ms if worst_p99 else None,
        "p99_ms_half_load_at": f"{worst_p99.backend} {worst_p99.tasks} {worst_p99.kind}"
        if worst_p99
        else None,
        "latency_growth": worst_growth[1] if worst_growth else None,
        "latency_growth_at": worst_growth[0] if worst_growth else None,
        "latency_growth_all": growth,
        "rss_mb": max((r.rss_mb for r in runs), default=None),
    }
    single = next((r for r in multi if r.processes == 1), None)
    double = next((r for r in multi if r.processes == 2), None)
    figures["multiprocess_rps_pg"] = double.requests_per_s if double else None
    figures["multiprocess_vs_single"] = (
        round(double.requests_per_s / single.requests_per_s, 2) if double and single else None
    )
    # The polled runs; the unpolled ones only when there are none (no wrk to poll with).
    engine_runs = ([p.engine for p in engine.polled] or engine.plain) if engine else []
    figures["engine_source"] = (
        None if not engine_runs else "polled" if engine and engine.polled else "unpolled (no wrk)"
    )
    for backend, key in (("sqlite", "engine_steps_per_s_sqlite"), ("postgres", "engine_steps_per_s_pg")):
        best = max(
            (r for r in engine_runs if r.backend == backend), key=lambda r: r.steps_per_s, default=None
        )
        figures[key] = best.steps_per_s if best else None
        figures[key.replace("steps_per_s", "workers")] = best.workers if best else None
    pg2 = [r for r in engine_runs if r.backend == "postgres" and r.workers == 2]
    figures["engine_steps_per_s_pg_2_workers"] = pg2[0].steps_per_s if pg2 else None
    figures["listtasks_p99_ms_during_engine"] = (
        max((p.polling.p99_ms for p in engine.polled), default=None) if engine else None
    )
    figures["targets"] = {name: f"{op} {bound:g}" for name, (op, bound) in TARGETS.items()}
    figures["met"] = {name: _met(figures[name], op, bound) for name, (op, bound) in TARGETS.items()}
    return figures


# --- tables --------------------------------------------------------------------------------------


def _row(cells: Sequence[object], widths: Sequence[int]) -> str:
    return " ".join(
        f"{cell!s:<{w}}" if i == 0 else f"{cell!s:>{w}}"
        for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
    )


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_load_table(bare: Sequence[LoadRun], runs: Sequence[LoadRun], multi: Sequence[LoadRun]) -> None:
    bare_full = next((r for r in bare if r.load == "full"), None)
    widths = (24, 8, 8, 5, 5, 8, 8, 7, 8, 8, 8, 7, 8, 8, 4)
    print()
    print("ListTasks (PageSize=10, Archived=true, random cluster) and the bare ASGI baseline")
    heads = (
        "target",
        "backend",
        "tasks",
        "load",
        "conn",
        "req/s",
        "target/s",
        "vs bare",
        "p50 ms",
        "p99 ms",
        "non-2xx",
        "RSS MB",
        "srv us/r",
        "db us/r",
        "flag",
    )
    header = _row(heads, widths)
    print(header)
    print("-" * len(header))
    notes: list[str] = []
    for run in [*bare, *runs, *multi]:
        ratio = run.requests_per_s / bare_full.requests_per_s if bare_full and run.load == "full" else None
        mark = ""
        if run.note:
            notes.append(run.note)
            mark = f"!{len(notes)}"
        cells = (
            run.target.replace("ListTasks PageNumber=999", "ListTasks page 999"),
            run.backend,
            run.tasks or "-",
            run.load,
            run.connections,
            _num(run.requests_per_s),
            _num(run.target_rps),
            _num(ratio, 2),
            _num(run.p50_ms, 2),
            _num(run.p99_ms, 2),
            run.non_2xx,
            _num(run.rss_mb),
            _num(run.server_cpu_us),
            _num(run.db_cpu_us),
            mark,
        )
        print(_row(cells, widths))
    for i, note in enumerate(notes, 1):
        print(f"  !{i} {note}")
    print(
        "srv us/r, db us/r: CPU (user + system, /proc) per request over the run, of the server process "
        "and of every PostgreSQL process on the machine (SQLite's cost is in the server's)."
    )
    print(
        f"full: wrk closed loop (-t1 -c{bare_full.connections if bare_full else 32}); half: a fixed rate "
        "of half the full-load req/s just measured on "
        "the same server (wrk delay(), 8 connections or more at high rates); target/s is that rate, req/s "
        "what was achieved."
    )
    print(
        "server on core 0, wrk on core 1 (taskset); every request signed beforehand and sent once; "
        "RSS: the server's after the run."
    )
    if multi:
        print(
            "multi-process: two `hpcplane serve` (cores 0 and 1) on one PostgreSQL database, nonces in "
            "Redis, two unpinned wrk (-c16 each), req/s summed; 'ListTasks 1 process' is the same set-up "
            "with one server. CAVEAT: with only 2 cores, both wrk and PostgreSQL share them with the servers."
        )


def print_engine_table(engine: EngineResults) -> None:
    polled = {(p.engine.backend, p.engine.workers): p for p in engine.polled}
    plain = {(r.backend, r.workers): r for r in engine.plain}
    raw = {b.backend: b for b in engine.baselines}
    options = engine.options
    print()
    print(
        f"engine: {options.get('tasks')} tasks x {options.get('steps_per_task')} steps (StopCluster), sim "
        f"step 0 s, {options.get('concurrency')} threads per worker"
        + (
            f"; `hpcplane serve` polled with ListTasks at {options.get('poll_rate'):.0f} req/s during a run"
            if polled
            else "; no ListTasks polls (no wrk)"
        )
    )
    names = ("backend", "workers", "steps", "seconds", "steps/s", "unpolled", "raw UPD/s", "poll r/s")
    widths = (9, 7, 7, 8, 8, 9, 9, 9, 9, 7, 4)
    header = _row((*names, "poll p99", "non-2xx", "flag"), widths)
    print(header)
    print("-" * len(header))
    notes: list[str] = []
    for key in sorted({*polled, *plain}, key=lambda k: (k[0] != "sqlite", k[1])):
        found, other, base = polled.get(key), plain.get(key), raw.get(key[0])
        run = found.engine if found else other
        assert run is not None
        poll = found.polling if found else None
        mark = ""
        if poll and poll.note:
            notes.append(poll.note)
            mark = f"!{len(notes)}"
        cells = (
            run.backend,
            run.workers,
            run.steps,
            f"{run.seconds:.2f}",
            _num(run.steps_per_s) if found else "-",
            _num(other.steps_per_s) if other else "-",
            _num(base.raw_per_s) if base else "-",
            _num(poll.requests_per_s) if poll else "-",
            _num(poll.p99_ms, 2) if poll else "-",
            poll.non_2xx if poll else "-",
            mark,
        )
        print(_row(cells, widths))
    for backend, reason in engine.skipped.items():
        print(f"{backend:<9} skipped: {reason}")
    for i, note in enumerate(notes, 1):
        print(f"  !{i} {note}")
    print(
        "steps/s: from the release of the held tasks to the last finished_at, with the polls running "
        "(seconds: that run's, or the unpolled one's when there is no polled run); unpolled / raw UPD/s: "
        "the plain engine_steps run and its one-UPDATE loop (full run, or no wrk)."
    )


def print_headline_table(figures: dict[str, Any]) -> None:
    print()
    print("headline")
    widths = (32, 10, 9, 5, 40)
    header = _row(("figure", "value", "target", "met", "measured on"), widths)
    print(header)
    print("-" * len(header))
    src = figures.get("engine_source") or "-"
    rows = (
        ("listtasks_vs_bare", 3, figures.get("listtasks_vs_bare_at")),
        ("listtasks_vs_bare_pg", 3, "postgres, shallow, full load, smallest task count"),
        ("listtasks_vs_bare_cpu", 3, "bare CPU us/req / ListTasks' (SQLite): load-independent"),
        ("listtasks_vs_bare_cpu_pg", 3, "bare CPU us/req / ListTasks' (PostgreSQL)"),
        ("listtasks_rps_sqlite", 0, "shallow, full load, smallest task count"),
        ("listtasks_cpu_us_sqlite", 0, "server CPU us per request (/proc), the same run"),
        ("listtasks_cpu_us_pg", 0, "server CPU us per request (/proc), the same run"),
        ("listtasks_db_cpu_us_pg", 0, "PostgreSQL processes' CPU us per request, the same run"),
        ("bare_cpu_us", 0, "the bare app's CPU us per request"),
        ("listtasks_rps_pg", 0, "shallow, full load, smallest task count"),
        ("p99_ms_half_load", 2, f"worst half-load run: {figures.get('p99_ms_half_load_at')}"),
        ("latency_growth", 2, f"worst p50 ratio: {figures.get('latency_growth_at')}"),
        ("rss_mb", 0, "largest `hpcplane serve` RSS after a run"),
        (
            "engine_steps_per_s_sqlite",
            0,
            f"best of 1/2 workers ({figures.get('engine_workers_sqlite')}), {src}",
        ),
        ("engine_steps_per_s_pg", 0, f"best of 1/2 workers ({figures.get('engine_workers_pg')}), {src}"),
        ("engine_steps_per_s_pg_2_workers", 0, f"2 workers, {src}"),
        ("listtasks_p99_ms_during_engine", 2, "worst poll p99 during an engine run"),
        ("multiprocess_vs_single", 2, "2 API processes / 1 (PostgreSQL + Redis)"),
    )
    for name, digits, where in rows:
        bound = figures["targets"].get(name, "-")
        met = figures["met"].get(name)
        shown = "-" if name not in figures["met"] else "n/a" if met is None else "yes" if met else "NO"
        print(_row((name, _num(figures.get(name), digits), bound, shown, where or "-"), widths))
