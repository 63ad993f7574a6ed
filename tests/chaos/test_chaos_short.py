"""The chaos suite's short variant (`python -m bench.chaos --short`) as part of the test suite."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.backends import IN_CI

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.mark.timeout(600)
def test_short_chaos_run_keeps_every_invariant(pg_databases: object, redis_url: str) -> None:
    """Workers, API processes and the embedded server SIGKILLed, the database refusing, frozen and out of
    connections, Redis down, a worker's network cut in its own namespace (as root), overload: no task is
    lost, stuck or applied twice, clients see only documented codes, and every call stays bounded."""
    if os.geteuid() != 0 and IN_CI:
        pytest.fail("the network-cut scenario needs root (ip netns); CI=true requires it", pytrace=False)
    result = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--short"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=570,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "invariants: all hold" in output, output
    assert "lost 0 / stuck 0 / steps applied twice 0" in output, output
    if os.geteuid() == 0:
        assert not re.search(r"network cut \(netns\)\s*\|\s*postgres\s*\|\s*skipped", output), output
