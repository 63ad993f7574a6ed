"""The bounded fuzz run of every CI submission: signed V1/V3 calls over every action and parameter of
/openapi.json, on SQLite and PostgreSQL (`make fuzz` runs a long one)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.fuzz.harness import Stats, fuzz_server, prepare, run
from tests.support.backends import PgDatabases

SECONDS = float(os.environ.get("FUZZ_CI_SECONDS", "20"))


@pytest.mark.timeout(SECONDS + 180)
@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_fuzz_finds_no_failure(store: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """For generated calls, no 5xx, every body the envelope or the documented success fields, no row
    changed by a refused call, no call unanswered within its deadline; and every action was tried."""
    url = None
    if store == "postgres":
        databases: PgDatabases = request.getfixturevalue("pg_databases")
        url = databases.create()
    stats = Stats()
    with fuzz_server(tmp_path / "home", url) as server, httpx.Client(trust_env=False) as client:
        target = prepare(server, client, tmp_path)
        run(target, SECONDS, stats)
    print(stats.summary(store, len(target.ops)))
    assert stats.failures == []
    assert set(stats.by_action) == {op.action for op in target.ops}
    assert stats.requests > 50
