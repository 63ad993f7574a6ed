"""ListTasks datasets at scale: one account, 1,000 clusters and N tasks, written with the bare drivers.

The account and its AccessKey are created through the product (`build_services`), which migrates the
schema and keeps the secret the server will decrypt; clusters and tasks then go in through sqlite3
`executemany` in big transactions or psycopg `COPY ... FROM STDIN`, followed by ANALYZE (VACUUM ANALYZE on
PostgreSQL, so index-only scans find an up-to-date visibility map). Every cluster's `task_count` (what
ListTasks with Archived=true answers as TotalCount) is written equal to its number of task rows, and checked.

Task n goes to cluster n mod 1,000, one second after task n-1. A tenth of each cluster's tasks (its 10th,
20th, ... task: with 10k, 100k or 1M tasks, its newest one among them) are still Processing (finished_at
NULL); the rest are archived (Success).
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from bench.common import RUN_ID, driver_dsn, pg_create, pg_drop
from hpcplane.config import Settings
from hpcplane.wiring import build_services

CLUSTERS = 1000
# Rough size on disk of one task row with its indexes, and the free space we require: twice that.
BYTES_PER_TASK = {"sqlite": 1000, "postgres": 1500}
TASK_COLUMNS = (
    "task_id",
    "account_id",
    "cluster_id",
    "task_type",
    "status",
    "current_step",
    "total_steps",
    "result",
    "errors",
    "request",
    "created_at",
    "updated_at",
    "finished_at",
)
CLUSTER_COLUMNS = ("id", "account_id", "region_id", "name", "status", "created_at", "updated_at")
Row = tuple[str | int | None, ...]


@dataclass
class Dataset:
    """A seeded store: where it is, and the account, key and clusters a load run signs requests for."""

    backend: str
    tasks: int
    home: Path
    database_url: str | None  # None: the embedded SQLite file under home
    pg_name: str | None
    account_id: str
    access_key_id: str
    secret: str = field(repr=False)
    cluster_ids: list[str] = field(repr=False)
    seed_seconds: float = 0.0
    size_mb: float = 0.0

    def summary(self) -> dict[str, object]:
        return {
            "backend": self.backend,
            "tasks": self.tasks,
            "clusters": len(self.cluster_ids),
            "seed_seconds": self.seed_seconds,
            "size_mb": self.size_mb,
        }


def _timestamp(when: datetime) -> str:
    """A naive UTC time as SQLAlchemy stores it on SQLite (and PostgreSQL's COPY reads it)."""
    return when.isoformat(" ", "microseconds")


def _ids(prefix: str) -> str:
    raw = uuid.uuid4().hex.upper()
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{prefix}{raw[17:20]}-"


def task_rows(account_id: str, cluster_ids: list[str], count: int, newest: datetime) -> Iterator[Row]:
    """The `count` task rows, oldest first (TASK_COLUMNS order)."""
    task_prefix, request_prefix = _ids("A"), _ids("B")
    start = newest.replace(tzinfo=None, microsecond=0) - timedelta(seconds=count)
    clusters = len(cluster_ids)
    for n in range(count):
        cluster_id = cluster_ids[n % clusters]
        stamp = _timestamp(start + timedelta(seconds=n))
        running = (n // clusters) % 10 == 9
        request = (
            f'{{"requestId": "{request_prefix}{n:012X}", "uid": "{account_id}", "clusterId": "{cluster_id}"}}'
        )
        yield (
            f"{task_prefix}{n:012X}",
            account_id,
            cluster_id,
            "StopCluster",
            "Processing" if running else "Success",
            16 if running else 35,
            35,
            "{}",
            "[]",
            request,
            stamp,
            stamp,
            None if running else stamp,
        )


def per_cluster(count: int, clusters: int) -> list[int]:
    """How many of `count` tasks dealt round-robin each cluster gets."""
    return [count // clusters + (1 if i < count % clusters else 0) for i in range(clusters)]


def disk_check(backend: str, count: int, work: Path, pg_admin: str) -> str | None:
    """None when there is room for the dataset (twice the estimate), else why it is skipped."""
    need = 2 * BYTES_PER_TASK[backend] * count
    where: Path | None = work
    if backend == "postgres":
        try:
            with psycopg.connect(pg_admin, connect_timeout=3) as conn:
                row = conn.execute("SHOW data_directory").fetchone()
            where = Path(str(row[0])) if row else None
        except psycopg.Error:
            where = None
        if where is None or not where.exists():
            if count <= 1_000_000:
                return None
            return f"cannot see PostgreSQL's data directory to check for {need / 1e9:.1f} GB free"
    assert where is not None
    free = shutil.disk_usage(where).free
    if free < need:
        return (
            f"needs {need / 1e9:.1f} GB free (2 x ~{BYTES_PER_TASK[backend]} bytes/task) on {where}, "
            f"has {free / 1e9:.1f} GB"
        )
    return None


def seed(backend: str, count: int, work: Path, pg_admin: str) -> Dataset:
    """Build the (backend, count) dataset: a SQLite file under `work`, or a PostgreSQL database."""
    began = time.monotonic()
    home = work / f"{backend}-{count}"
    url: str | None = None
    pg_name: str | None = None
    if backend == "postgres":
        pg_name = f"hpcplane_bench_{RUN_ID}_{count}"
        url = pg_create(pg_admin, pg_name)
    try:
        services = build_services(Settings(home=home, database_url=url, redis_url=None, demo=False))
        try:
            issued = services.accounts.create_account(f"bench-{RUN_ID}-{backend}-{count}")
            sqlite_path = services.settings.effective_database_url[len("sqlite:///") :]
        finally:
            services.close()
        cluster_ids = [f"ehpc-hz-bench{i:05d}" for i in range(CLUSTERS)]
        now = datetime.now(UTC)
        counts = per_cluster(count, CLUSTERS)
        stamp = _timestamp(now.replace(tzinfo=None) - timedelta(seconds=count + 60))
        clusters = [
            (cid, issued.account_id, "cn-hangzhou", cid, "running", stamp, stamp) for cid in cluster_ids
        ]
        rows = task_rows(issued.account_id, cluster_ids, count, now)
        if url is None:
            size = _seed_sqlite(Path(sqlite_path), clusters, counts, rows)
        else:
            size = _seed_postgres(driver_dsn(url), clusters, counts, rows)
    except BaseException:
        if pg_name is not None:
            pg_drop(pg_admin, pg_name)
        raise
    return Dataset(
        backend=backend,
        tasks=count,
        home=home,
        database_url=url,
        pg_name=pg_name,
        account_id=issued.account_id,
        access_key_id=issued.access_key_id,
        secret=issued.access_key_secret,
        cluster_ids=cluster_ids,
        seed_seconds=round(time.monotonic() - began, 1),
        size_mb=round(size / 1e6, 1),
    )


def _chunks(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    while chunk := list(itertools.islice(rows, size)):
        yield chunk


def _seed_sqlite(path: Path, clusters: Sequence[Row], counts: list[int], rows: Iterator[Row]) -> int:
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-262144")
        has_count = "task_count" in {r[1] for r in conn.execute("PRAGMA table_info(clusters)")}
        conn.execute("BEGIN")
        conn.executemany(
            f"INSERT INTO clusters ({', '.join(CLUSTER_COLUMNS)}) VALUES ({', '.join('?' * 7)})", clusters
        )
        if has_count:
            conn.executemany(
                "UPDATE clusters SET task_count = ? WHERE id = ?",
                [(n, c[0]) for n, c in zip(counts, clusters, strict=True)],
            )
        conn.execute("COMMIT")
        insert = (
            f"INSERT INTO tasks ({', '.join(TASK_COLUMNS)}) VALUES ({', '.join('?' * len(TASK_COLUMNS))})"
        )
        for chunk in _chunks(rows, 100_000):
            conn.execute("BEGIN")
            conn.executemany(insert, chunk)
            conn.execute("COMMIT")
        conn.execute("ANALYZE")
        if has_count:
            _check_counts(conn.execute(_MISMATCHES, (str(clusters[0][1]),)).fetchone())
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return path.stat().st_size


def _seed_postgres(dsn: str, clusters: Sequence[Row], counts: list[int], rows: Iterator[Row]) -> int:
    with psycopg.connect(dsn) as conn:
        has_count = (
            conn.execute(
                "SELECT 1 FROM information_schema.columns WHERE table_name = 'clusters'"
                " AND column_name = 'task_count'"
            ).fetchone()
            is not None
        )
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO clusters ({', '.join(CLUSTER_COLUMNS)}) VALUES ({', '.join(['%s'] * 7)})",
                clusters,
            )
            if has_count:
                cur.executemany(
                    "UPDATE clusters SET task_count = %s WHERE id = %s",
                    [(n, c[0]) for n, c in zip(counts, clusters, strict=True)],
                )
            with cur.copy(f"COPY tasks ({', '.join(TASK_COLUMNS)}) FROM STDIN") as copy:
                for chunk in _chunks(rows, 20_000):
                    # Text format: no value holds a tab, newline or backslash; NULL is \N.
                    copy.write(
                        "".join(
                            "\t".join("\\N" if v is None else str(v) for v in row) + "\n" for row in chunk
                        )
                    )
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE tasks")
        conn.execute("VACUUM ANALYZE clusters")
        # The seeding's dirty pages written now, not by the checkpointer during the runs that follow
        # (superuser or pg_checkpoint only: without the right the runs go on as they are).
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")
        if has_count:
            _check_counts(conn.execute(_MISMATCHES.replace("?", "%s"), (str(clusters[0][1]),)).fetchone())
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(size[0]) if size else 0


_MISMATCHES = (
    "SELECT COUNT(*) FROM clusters c WHERE c.account_id = ?"
    " AND c.task_count <> (SELECT COUNT(*) FROM tasks t WHERE t.cluster_id = c.id)"
)


def _check_counts(row: tuple[int, ...] | None) -> None:
    if row is None or row[0] != 0:
        raise RuntimeError(f"seeding left {row[0] if row else '?'} clusters whose task_count is wrong")
