"""What a batched step's timestamps cost (store/json_rows.py, `json_value` and `field`): the ISO text
they were sent as before against the whole microseconds since the epoch they are sent as now, on both
sides of the wire, in alternating repeats of one process.

The worker: json.dumps of a round's rows (16 steps, two timestamps each) with each encoder as `default`.
PostgreSQL (when reachable): what parsing one value costs the server, text -> timestamp against
text -> bigint -> timestamp, over a million generated values, less the cost of generating them.

    python -m bench.step_encoding [--pg-admin URL]
"""

from __future__ import annotations

import argparse
import json
import timeit
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from bench.common import pg_reachable
from bench.engine_steps import DEFAULT_PG_ADMIN
from hpcplane.store.json_rows import json_value

_ROUND = 16  # steps a worker thread records together (engine/worker.py, CLAIM_BATCH)
_VALUES = 1_000_000


def _iso(value: Any) -> Any:
    """The encoding before: an aware datetime as naive UTC ISO text."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat()
    raise TypeError(type(value).__name__)


def worker_us_per_step(default: Any, *, number: int = 20_000, repeat: int = 5) -> float:
    """The best of `repeat` timings of json.dumps over one round's rows, in us per step."""
    now = datetime.now(UTC)
    rows = [[seq, "host:123:0a1b2c3d", 3, 5, now, now + timedelta(seconds=30)] for seq in range(_ROUND)]
    best = min(
        timeit.repeat(
            lambda: json.dumps(rows, separators=(",", ":"), default=default), number=number, repeat=repeat
        )
    )
    return best / number / _ROUND * 1e6


_PG_QUERIES = {
    "iso": "SELECT count(({text})::timestamp) FROM generate_series(1, {n}) g",
    "micros": "SELECT count(timestamp '1970-01-01' + ({text})::bigint * interval '1 microsecond')"
    " FROM generate_series(1, {n}) g",
    "iso-text": "SELECT count({text}) FROM generate_series(1, {n}) g",
    "micros-text": "SELECT count({text}) FROM generate_series(1, {n}) g",
}
_PG_TEXT = {
    "iso": "'2026-12-03T15:00:00.' || lpad((g % 999999)::text, 6, '0')",
    "micros": "(1764774000000000 + g)::text",
}


def pg_us_per_value(url: str, *, repeat: int = 3) -> dict[str, float]:
    """PostgreSQL's cost of turning one value's text into a timestamp, per encoding (us)."""
    best: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(repeat):
            for name, query in _PG_QUERIES.items():
                text = _PG_TEXT[name.removesuffix("-text")]
                sql = query.format(text=text, n=_VALUES)
                started = conn.execute("SELECT clock_timestamp()").fetchone()
                conn.execute(sql).fetchone()
                ended = conn.execute("SELECT clock_timestamp()").fetchone()
                assert started is not None
                assert ended is not None
                seconds = (ended[0] - started[0]).total_seconds()
                best[name] = min(best.get(name, seconds), seconds)
    return {name: (best[name] - best[f"{name}-text"]) / _VALUES * 1e6 for name in ("iso", "micros")}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.step_encoding", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--pg-admin", default=DEFAULT_PG_ADMIN, help="PostgreSQL admin URL")
    args = parser.parse_args()
    iso = micros = float("inf")
    for _ in range(2):  # alternating, so a drift of the machine's speed touches both alike
        iso, micros = min(iso, worker_us_per_step(_iso)), min(micros, worker_us_per_step(json_value))
    print(f"worker, json.dumps per step: ISO {iso:.2f} us, microseconds {micros:.2f} us")
    print(f"  ratio {micros / iso:.2f}, {iso - micros:.2f} us a step saved")
    why = pg_reachable(args.pg_admin)
    if why is not None:
        print(f"postgres: {why}, skipped")
        return
    pg = pg_us_per_value(args.pg_admin)
    print(f"postgres, per timestamp parsed: ISO {pg['iso']:.3f} us, microseconds {pg['micros']:.3f} us")
    print(f"  ratio {pg['micros'] / pg['iso']:.2f}, {2 * (pg['iso'] - pg['micros']):.2f} us a step saved")


if __name__ == "__main__":
    main()
