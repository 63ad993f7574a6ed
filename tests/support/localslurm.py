"""Real local Slurm clusters for the tests: requirements (skip, or fail under CI=true) and clean-up."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hpcplane.providers.jobs import JobSubmission
from hpcplane.providers.local import cleanup
from hpcplane.providers.local.doctor import PROGRAMS
from hpcplane.providers.local.facade import LocalClusters
from hpcplane.providers.local.records import tag_of
from tests.support.backends import IN_CI

PREFIX = "hx"  # every kernel object and account of a test cluster starts with it: the sweep's key
NETWORK = "10.249.0.0/16"


def require_local() -> None:
    """Skip with a one-line reason without root or the packages; under CI=true, fail instead."""
    missing = [name for name in PROGRAMS if shutil.which(name) is None]
    reason = ""
    if os.geteuid() != 0:
        reason = "local Slurm clusters need root"
    elif missing:
        reason = f"local Slurm clusters need {' '.join(missing)} (see hpcplane doctor)"
    if reason and IN_CI:
        pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
    if reason:
        pytest.skip(reason)


@contextmanager
def swept_home(prefix: str, name: str) -> Iterator[Path]:
    """A new HPCPLANE_HOME that unprivileged job users can traverse (the cluster users' homes are below
    it), after the requirements are checked; every kernel object and account starting with `prefix` is
    swept before and after, then the directory removed."""
    require_local()
    cleanup.sweep(prefix)
    home = Path(tempfile.mkdtemp(prefix=f"hpcplane-{name}-"))
    home.chmod(0o711)
    try:
        yield home
    finally:
        cleanup.sweep(prefix, home)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def local_home() -> Iterator[Path]:
    """The facade tests' HPCPLANE_HOME, swept before and after the run."""
    with swept_home(PREFIX, "slurm") as home:
        yield home


@pytest.fixture(scope="session")
def clusters(local_home: Path) -> LocalClusters:
    return LocalClusters(local_home, network_range=NETWORK, prefix=PREFIX, register_timeout=60.0)


def token() -> str:
    """A fresh (TaskId, step) token."""
    return f"T-{uuid.uuid4().hex[:12]}:0"


def submission(cluster_id: str, command_line: str, runas_user: str = "alice", **params: Any) -> JobSubmission:
    """A job for the facade's submit_job, in the cluster's default queue; `runas_user` as ensure_user
    took it."""
    return JobSubmission(cluster_id, "1.manager", command_line, runas_user, "comp", True, **params)


def new_cluster_id() -> str:
    return f"ehpc-test-{uuid.uuid4().hex[:8]}"


def node_shell(home: Path, cluster_id: str, hostname: str, *command: str) -> str:
    """What `command` prints run on the node with `hpcplane node-shell` (the test fails if it fails)."""
    done = subprocess.run(
        [sys.executable, "-m", "hpcplane", "node-shell", "--home", str(home), cluster_id, hostname, *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def assert_nothing_left(prefix: str, cluster_id: str, root: Path) -> None:
    """Nothing of the cluster on the machine (what cleanup.find sees of `prefix`): no namespace, link or
    account with its tag, no mount, no live daemon; and its directory `root` gone."""
    tag = tag_of(cluster_id)
    left = cleanup.find(prefix, root)
    assert [n for n in left.namespaces if tag in n] == []
    assert [n for n in left.links if tag in n] == []
    assert [a for a in left.accounts if tag in a] == []
    assert left.mounts == []
    assert left.pids == []
    assert not root.exists()


def poll(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait for a condition with a deadline; fail naming it."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.3)
