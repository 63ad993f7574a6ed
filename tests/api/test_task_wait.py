"""`hpcplane task wait|watch` and `call --wait`: exit codes on each outcome (faults injected at runtime
through the control API), the progress bar in a pseudo-terminal, plain lines elsewhere."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcplane.progress import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, EXIT_TIMEOUT
from tests.support.clirun import run_cli, user_env
from tests.support.live import LiveServer


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("wait") / "home", sim_step_seconds="0").start()
    yield server
    server.stop()


@pytest.fixture
def env(live: LiveServer, tmp_path: Path) -> Iterator[dict[str, str | None]]:
    """A user whose only setting is HPCPLANE_HOME; the server's tuning is restored afterwards."""
    user = tmp_path / "user"
    user.mkdir()
    values = user_env(user, HPCPLANE_HOME=str(live.home))
    yield values
    assert run_cli("control", "faults", "default", env=values).code == 0
    assert run_cli("control", "timing", "--default", env=values).code == 0


def _cluster(env: dict[str, str | None]) -> str:
    created = run_cli("call", "CreateCluster", "--Name", "waits", "--KeyPairName", "k", "--wait", env=env)
    assert created.code == EXIT_OK, created.stderr
    return str(created.json()["ClusterId"])


def _add(env: dict[str, str | None], cluster: str, count: int) -> str:
    added = run_cli("call", "AddNodes", "--ClusterId", cluster, "--Count", str(count), env=env)
    assert added.code == 0, added.stderr
    return str(added.json()["TaskId"])


def test_success_exits_0_with_plain_progress_lines(env: dict[str, str | None]) -> None:
    """call --wait on AddNodes exits 0; off a terminal the progress is plain lines ending at 11/11."""
    cluster = _cluster(env)
    ran = run_cli("call", "AddNodes", "--ClusterId", cluster, "--Count", "2", "--wait", env=env)
    assert ran.code == EXIT_OK, ran.stderr
    assert ran.json()["TaskId"]
    assert ran.stderr.splitlines()[-1].split()[2:5] == ["Success", "step", "11/11"]


def test_failed_exits_4_and_prints_errors(env: dict[str, str | None]) -> None:
    """A fault set at runtime fails step 3: task wait exits 4, prints Errors, and prints the task."""
    cluster = _cluster(env)
    assert run_cli("control", "faults", "AddNodes.fail_step=3", env=env).code == 0
    task_id = _add(env, cluster, 1)
    ran = run_cli("task", "wait", task_id, "--cluster", cluster, env=env)
    assert ran.code == EXIT_FAILED
    assert "ended Failed" in ran.stderr
    assert "EcsError" in ran.stderr
    assert ran.json()["Status"] == "Failed"
    assert ran.json()["CurrentStep"] == 3


def test_partial_fail_exits_5(env: dict[str, str | None]) -> None:
    """Some nodes failing makes PartialFail: exit 5 with the NodeFailed errors."""
    cluster = _cluster(env)
    assert run_cli("control", "faults", "AddNodes.node_fail_rate=0.5", env=env).code == 0
    ran = run_cli("call", "AddNodes", "--ClusterId", cluster, "--Count", "6", "--wait", env=env)
    assert ran.code == EXIT_PARTIAL, ran.stderr
    assert "ended PartialFail" in ran.stderr
    assert "NodeFailed" in ran.stderr


def test_timeout_exits_6_then_steps_by_hand(env: dict[str, str | None]) -> None:
    """In manual timing a task waits: task wait times out (exit 6); `control step` runs exactly one
    step; `control advance` lets the next one run."""
    cluster = _cluster(env)
    assert run_cli("control", "timing", "--manual", env=env).code == 0
    task_id = _add(env, cluster, 1)
    waited = run_cli("task", "wait", task_id, "--cluster", cluster, "--timeout", "0.3", env=env)
    assert waited.code == EXIT_TIMEOUT
    assert "still Processing" in waited.stderr
    before = waited.json()["CurrentStep"]
    assert run_cli("control", "step", task_id, env=env).code == 0
    after = run_cli("call", "ListTasks", "--ClusterId", cluster, "--TaskId", task_id, env=env).json()
    assert after["Tasks"][0]["CurrentStep"] == before + 1
    assert run_cli("control", "advance", "1e12", env=env).code == 0
    deadline = time.monotonic() + 30
    step = before + 1
    while step == before + 1 and time.monotonic() < deadline:
        body = run_cli("call", "ListTasks", "--ClusterId", cluster, "--TaskId", task_id, env=env).json()
        step = body["Tasks"][0]["CurrentStep"]
    assert step == before + 2


def _in_pty(args: list[str], env: dict[str, str], timeout: float = 60.0) -> tuple[int, str]:
    """Run a command with a pseudo-terminal as stdout and stderr; return its exit code and output."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the terminal closed: the process is gone
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return process.wait(10), b"".join(chunks).decode(errors="replace")


def test_progress_bar_on_a_terminal(env: dict[str, str | None], live: LiveServer) -> None:
    """On a terminal, `call --wait` draws a rich progress bar (CurrentStep/TotalSteps, elapsed, ETA)."""
    cluster = _cluster(env)
    process_env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    process_env.update(TERM="xterm-256color", COLUMNS="100")
    process_env.pop("NO_COLOR", None)
    code, output = _in_pty(
        [
            sys.executable,
            "-m",
            "hpcplane",
            "call",
            "AddNodes",
            "--ClusterId",
            cluster,
            "--Count",
            "2",
            "--wait",
        ],
        process_env,
    )
    assert code == EXIT_OK, output
    assert "━" in output  # the bar
    assert "11/11" in output
    assert "ETA" in output
    assert "\x1b[" in output  # drawn with terminal control sequences, not plain lines
    assert "step 11/11" not in output


def test_watch_shows_tasks_until_none_runs(env: dict[str, str | None]) -> None:
    """task watch follows the cluster's running task until it ends, then exits 0."""
    cluster = _cluster(env)
    assert run_cli("control", "timing", "--manual", env=env).code == 0
    task_id = _add(env, cluster, 1)
    process_env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    watcher = subprocess.Popen(
        [sys.executable, "-m", "hpcplane", "task", "watch", cluster],
        env=process_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watcher.stdout is not None
    first = watcher.stdout.readline()
    assert first.split()[:3] == [task_id, "AddComputes", "Processing"]
    assert run_cli("control", "timing", "--default", env=env).code == 0
    assert run_cli("control", "advance", "1e12", env=env).code == 0
    out, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, err
    assert out.splitlines()[-1].split()[:5] == [task_id, "AddComputes", "Success", "step", "11/11"]
