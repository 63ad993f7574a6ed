"""`make fuzz`: a long fuzz run on SQLite, and on PostgreSQL when reachable; prints what it found.

FUZZ_SECONDS (default 300) is split between the stores; exit status 1 when a failure was found."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import httpx
import psycopg

from tests.fuzz.harness import Stats, fuzz_server, prepare, run
from tests.support.backends import PG_ADMIN_URL, PgDatabases


def main() -> int:
    seconds = float(os.environ.get("FUZZ_SECONDS", "300"))
    stores: list[str] = ["sqlite"]
    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
        stores.append("postgres")
    except psycopg.Error as error:
        print(f"PostgreSQL not reachable ({type(error).__name__}): SQLite only")
    databases = PgDatabases(PG_ADMIN_URL)
    failures = 0
    try:
        for store in stores:
            with tempfile.TemporaryDirectory() as folder:
                url = databases.create() if store == "postgres" else None
                stats = Stats()
                with (
                    fuzz_server(Path(folder) / "home", url) as server,
                    httpx.Client(trust_env=False) as client,
                ):
                    target = prepare(server, client, Path(folder))
                    run(target, seconds / len(stores), stats, batch=20)
                print(stats.summary(store, len(target.ops)), flush=True)
                print(f"  requests per action: {dict(sorted(stats.by_action.items()))}")
                print(f"  successes per action: {dict(sorted(stats.accepted.items()))}")
                for failure in stats.failures:
                    print(f"  FAILURE: {failure}")
                failures += len(stats.failures)
    finally:
        databases.drop_all()
    print(f"failures found: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
