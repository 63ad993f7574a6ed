"""Issue 11's "Done when", end to end as a new user would, with the README's own example run as printed:
`hpcplane serve --provider local`, CreateCluster (2 compute nodes) through the official SDK, AddUsers,
SubmitJob `srun hostname` with Node=2, GetJobLog prints both compute nodes' host names; DeleteCluster
leaves the machine as it was.

Needs root and the Debian packages; skips with a reason (fails under CI=true) otherwise. Its kernel
objects and accounts carry a prefix of their own (HPCPLANE_LOCAL_PREFIX), so the sweeps before and after
never touch another server's clusters.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.test_readme import blocks
from tests.support.families import poll
from tests.support.live import LiveServer
from tests.support.localslurm import NETWORK, swept_home

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(600)]

PREFIX = "he"  # every kernel object and account of this test's clusters starts with it


def machine_state() -> dict[str, list[str]]:
    """What a cluster may leave behind: namespaces, links, accounts, mounts, processes of its daemons."""

    def lines(*argv: str) -> list[str]:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        return sorted(done.stdout.splitlines())

    mounts = Path("/proc/self/mounts").read_text().splitlines()
    return {
        "netns": lines("ip", "netns", "list"),
        "links": [line.split(":")[1].strip() for line in lines("ip", "-o", "link", "show") if ":" in line],
        "accounts": sorted(p.pw_name for p in pwd.getpwall()),
        "mounts": sorted(m for m in mounts if "hpcplane" in m or "/run/netns/" in m),
        # Live daemons only: an exited one stays a zombie until this machine's init reaps it.
        "daemons": sorted(
            line
            for name in ("slurmctld", "slurmd", "munged")
            for line in lines("pgrep", "-a", "-x", name)
            if not line.endswith("<defunct>")
        ),
    }


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with swept_home(PREFIX, "e2e") as home:
        live = LiveServer(home, provider="local", local_network=NETWORK, local_prefix=PREFIX, demo="false")
        live.start(timeout=float(os.environ.get("HPCPLANE_TEST_START_TIMEOUT", "120")))
        try:
            yield live
        finally:
            live.stop()


README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "Real Slurm clusters on this machine: `--provider local`"


def readme_example() -> str:
    """The section's Python blocks, in order: the second continues the first."""
    code = [b.code for b in blocks(README.read_text()) if b.section == SECTION and b.language == "python"]
    assert len(code) == 2, code
    return "\n".join(code)


def test_the_readme_example_runs_a_job_on_two_real_nodes(server: LiveServer, tmp_path: Path) -> None:
    before = machine_state()
    key = server.new_account("e2e")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HPCPLANE_", "ALIBABA_CLOUD_"))}
    env.update(
        HOME=str(tmp_path),
        HPCPLANE_ENDPOINT=server.endpoint,
        ALIBABA_CLOUD_ACCESS_KEY_ID=key["AccessKeyId"],
        ALIBABA_CLOUD_ACCESS_KEY_SECRET=key["AccessKeySecret"],
    )
    ran = subprocess.run(
        [sys.executable, "-c", readme_example()],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=480,
        check=False,
    )
    assert ran.returncode == 0, f"{ran.stdout}\n{ran.stderr}\n{server.log_path.read_text()[-4000:]}"
    lines = ran.stdout.splitlines()
    # ListNodes' lines: host name, address, status, state; the job's log: one host name per line.
    nodes = [line.split() for line in lines if len(line.split()) == 4]
    computes = sorted(n[0] for n in nodes if n[0].startswith("compute"))
    assert len(computes) == 2, ran.stdout
    assert all(n[2] == "running" for n in nodes), ran.stdout
    logged = sorted(line.strip() for line in lines if len(line.split()) == 1)
    assert logged == computes, ran.stdout

    def gone() -> bool | None:
        clusters = server.call("tea-v3", key, "ListClusters")["Clusters"]["ClusterInfoSimple"]  # type: ignore[index]
        return True if not clusters else None

    poll("the cluster to be deleted", gone, timeout=180, pause=0.5)
    after = machine_state()
    assert after == before, json.dumps({k: sorted(set(after[k]) ^ set(before[k])) for k in after}, indent=1)
    assert [p.name for p in (server.home / "local").glob("*") if p.is_dir()] == []
