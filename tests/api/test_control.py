"""The emulator control API: refused without its token (and audited), off unless enabled, resets, and
tuning that reaches a separate worker process; the init scripts run once the server answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hpcplane.progress import EXIT_FAILED
from tests.support.backends import PgDatabases
from tests.support.clirun import demo, run_cli, user_env
from tests.support.live import LiveServer


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("control") / "home", sim_step_seconds="0").start()
    yield server
    server.stop()


def _token(live: LiveServer) -> str:
    return (live.home / "control-token").read_text().strip()


def _audit(live: LiveServer, action: str, decision: str, count: int) -> list[dict[str, object]]:
    """The audit rows of `action` with `decision`, once at least `count` are there: the server writes its
    audit trail in batches, a moment after each call (so an early look may see only some of them)."""
    deadline = time.monotonic() + 30
    while True:
        rows = [
            json.loads(line)
            for line in live.cli("audit", "search", "--action", action, "--json").splitlines()
        ]
        found = [row for row in rows if row["Decision"] == decision]
        if len(found) >= count or time.monotonic() >= deadline:
            return found
        time.sleep(0.2)


def test_refused_without_the_token_and_audited(live: LiveServer) -> None:
    """No token or a wrong one gets 401 and changes nothing; the attempt is in the audit trail."""
    url = f"http://{live.endpoint}/_hpcplane/reset"
    assert httpx.post(url, json={}).status_code == 401
    wrong = httpx.post(url, json={}, headers={"Authorization": "Bearer not-it"})
    assert wrong.status_code == 401
    assert wrong.json()["Code"] == "Unauthorized"
    key, secret, cluster = demo(live)  # the demo cluster is still there
    body = live.call("tea-v3", {"AccessKeyId": key, "AccessKeySecret": secret}, "ListClusters")
    assert [c["Id"] for c in body["Clusters"]["ClusterInfoSimple"]] == [cluster]  # type: ignore[index]
    refused = _audit(live, "hpcplane:Reset", "Refused", 2)
    assert len(refused) == 2
    assert {row["ErrorCode"] for row in refused} == {"Unauthorized"}


def test_reset_one_account_then_all(live: LiveServer, tmp_path: Path) -> None:
    """Reset of one account deletes its clusters only; reset of all keeps accounts and keys working;
    --everything deletes the keys too."""
    a, b = live.new_account("reset-a"), live.new_account("reset-b")
    env = user_env(tmp_path, HPCPLANE_HOME=str(live.home))
    for key in (a, b):
        made = run_cli(
            "call", "CreateCluster", "--Name", "r1", "--KeyPairName", "k", "--wait",
            "--access-key-id", key["AccessKeyId"], "--access-key-secret", key["AccessKeySecret"], env=env,
        )  # fmt: skip
        assert made.code == 0, made.stderr

    def clusters(key: dict[str, str]) -> int:
        ran = run_cli(
            "call", "ListClusters", "--access-key-id", key["AccessKeyId"],
            "--access-key-secret", key["AccessKeySecret"], env=env,
        )  # fmt: skip
        assert ran.code == 0, ran.stderr
        return int(ran.json()["TotalCount"])

    assert (clusters(a), clusters(b)) == (1, 1)
    assert run_cli("control", "reset", "--account", "reset-a", env=env).code == 0
    assert (clusters(a), clusters(b)) == (0, 1)
    assert run_cli("control", "reset", env=env).code == 0
    assert (clusters(a), clusters(b)) == (0, 0)
    assert run_cli("control", "reset", "--everything", env=env).code == 0
    gone = run_cli(
        "call", "ListClusters", "--access-key-id", a["AccessKeyId"],
        "--access-key-secret", a["AccessKeySecret"], env=env,
    )  # fmt: skip
    assert gone.code == 1
    assert gone.stderr.startswith("InvalidAccessKeyId.NotFound")
    allowed = _audit(live, "hpcplane:Reset", "Allow", 3)
    assert len(allowed) >= 3
    assert run_cli("control", "reset", "--account", "nobody", env=env).code == 1


def test_bad_tuning_is_refused(live: LiveServer, tmp_path: Path) -> None:
    """A fault spec that does not parse, or a negative step time, is a 400 that changes nothing."""
    env = user_env(tmp_path, HPCPLANE_HOME=str(live.home))
    before = run_cli("control", "show", env=env).json()["Tuning"]
    bad = run_cli("control", "faults", "AddNodes.explode=1", env=env)
    assert bad.code == 1
    assert "invalid: fault rule" in bad.stderr
    assert run_cli("control", "timing", "--step-seconds", "-1", env=env).code == 1
    assert run_cli("control", "show", env=env).json()["Tuning"] == before


def test_control_is_off_unless_enabled(pg_databases: PgDatabases, tmp_path: Path) -> None:
    """On a configured store the control API is off (404) unless HPCPLANE_CONTROL=true."""
    off = LiveServer(tmp_path / "off", pg_databases.create()).start()
    try:
        assert httpx.get(f"http://{off.endpoint}/_hpcplane/tuning").status_code == 404
        assert not (off.home / "control-token").exists()
    finally:
        off.stop()


def test_tuning_reaches_a_separate_worker(pg_databases: PgDatabases, tmp_path: Path) -> None:
    """API process and worker process on PostgreSQL: a fault set through the API's control endpoint
    fails the task in the worker process, and clearing it lets the next one succeed."""
    api = LiveServer(
        tmp_path / "api", pg_databases.create(), control="true", worker="false", sim_step_seconds="0"
    )
    api.start()
    worker = subprocess.Popen(
        [sys.executable, "-m", "hpcplane", "worker"],
        env={**os.environ, **api.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        key = api.new_account("tuned")
        env = user_env(
            tmp_path,
            HPCPLANE_HOME=str(api.home),
            HPCPLANE_ENDPOINT=api.endpoint,
            ALIBABA_CLOUD_ACCESS_KEY_ID=key["AccessKeyId"],
            ALIBABA_CLOUD_ACCESS_KEY_SECRET=key["AccessKeySecret"],
        )
        made = run_cli("call", "CreateCluster", "--Name", "tuned", "--KeyPairName", "k", "--wait", env=env)
        assert made.code == 0, made.stderr
        cluster = made.json()["ClusterId"]
        assert run_cli("control", "faults", "AddNodes.fail_step=2", env=env).code == 0
        failed = run_cli("call", "AddNodes", "--ClusterId", cluster, "--Count", "1", "--wait", env=env)
        assert failed.code == EXIT_FAILED, failed.stderr
        assert run_cli("control", "faults", "", env=env).code == 0
        ok = run_cli("call", "AddNodes", "--ClusterId", cluster, "--Count", "1", "--wait", env=env)
        assert ok.code == 0, ok.stderr
    finally:
        worker.terminate()
        worker.wait(15)
        api.stop()


def test_init_scripts_run_after_start(tmp_path: Path) -> None:
    """Scripts of HPCPLANE_INIT_DIR run in name order once the server answers, with the endpoint and
    the control token in their environment."""
    init = tmp_path / "ready.d"
    init.mkdir()
    (init / "10-clusters.sh").write_text("hpcplane call ListClusters > clusters.json\n")
    (init / "20-tuning.py").write_text(
        "import os, pathlib\n"
        "token = os.environ['HPCPLANE_CONTROL_TOKEN']\n"
        "pathlib.Path('tuning.txt').write_text(os.environ['HPCPLANE_ENDPOINT'] + ' ' + str(len(token)))\n"
    )
    (init / "README").write_text("not a script: not run\n")
    live = LiveServer(tmp_path / "home", init_dir=str(init)).start()
    try:
        deadline = time.monotonic() + 60
        while not (init / "tuning.txt").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert json.loads((init / "clusters.json").read_text())["TotalCount"] == 1
        endpoint, length = (init / "tuning.txt").read_text().split()
        assert endpoint == f"http://{live.endpoint}"
        assert int(length) == len(_token(live))
    finally:
        live.stop()


def test_scaled_steps_finish_at_once(tmp_path: Path) -> None:
    """On a server of 30-second steps, the demo cluster is ready at start, and `timing --scale 0`
    makes an 11-step AddNodes finish at once (with --wait, within the test's time limit)."""
    live = LiveServer(tmp_path / "home", sim_step_seconds="30").start()
    try:
        env = user_env(tmp_path, HPCPLANE_HOME=str(live.home))
        _, _, cluster = demo(live)
        first = run_cli("call", "ListTasks", "--ClusterId", cluster, "--Archived", "true", env=env).json()
        assert [t["Status"] for t in first["Tasks"]] == ["Success"]
        assert run_cli("control", "timing", "--scale", "0", env=env).json()["Tuning"]["StepScale"] == 0
        added = run_cli(
            "call", "AddNodes", "--ClusterId", cluster, "--Count", "1", "--wait", "--timeout", "60", env=env
        )
        assert added.code == 0, added.stderr
    finally:
        live.stop()
