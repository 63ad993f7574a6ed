"""GET /metrics after a known sequence of calls, with the API and the worker in two processes: every
count exact, parsed with Prometheus' own parser; and the optional Bearer token."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hpcplane import testing
from hpcplane.store import engine as engine_store
from tests.support.clirun import demo
from tests.support.live import LiveServer

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(live: LiveServer, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(f"http://{live.endpoint}/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`serve --no-worker` and `hpcplane worker` on one home (and one metrics directory)."""
    home = tmp_path_factory.mktemp("metrics") / "home"
    live = LiveServer(home, worker="false", sim_step_seconds="0").start()
    worker = subprocess.Popen(
        [sys.executable, "-m", "hpcplane", "worker"],
        env={**os.environ, **live.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield live
    worker.terminate()
    worker.wait(15)
    live.stop()


def _wait_ended(live: LiveServer, task_id: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with live.services.db.read() as conn:
            if engine_store.task_finished(conn, task_id):
                return
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not end")


def test_counts_after_a_known_sequence(two_processes: LiveServer) -> None:
    """Requests by Action and Code, latency counts, a refused nonce, steps and ends from both processes
    (the demo's CreateCluster ran in the API process, AddNodes in the worker), and an empty queue."""
    live = two_processes
    key_id, secret, cluster = demo(live)
    key = {"AccessKeyId": key_id, "AccessKeySecret": secret}
    for _ in range(3):
        live.call("tea-v3", key, "ListTasks", ClusterId=cluster)
    with pytest.raises(Exception, match="ClusterNotFound"):
        live.call("legacy", key, "ListTasks", ClusterId="ehpc-hz-nothere")
    signed = testing.sign_v3("ListClusters", {}, key_id, secret, host=live.endpoint)
    replies = [
        httpx.request(signed.method, f"http://{live.endpoint}{signed.url_path}", headers=signed.headers)
        for _ in range(2)
    ]
    assert [r.status_code for r in replies] == [200, 400]
    assert replies[1].json()["Code"] == "SignatureNonceUsed"
    bogus = testing.sign_v3("NoSuchThing", {}, key_id, secret, host=live.endpoint)
    httpx.request(bogus.method, f"http://{live.endpoint}{bogus.url_path}", headers=bogus.headers)
    added = live.call("tea-v3", key, "AddNodes", ClusterId=cluster, Count=1)
    _wait_ended(live, str(added["TaskId"]))

    samples = scrape(live)
    requests = "hpcplane_requests_total"
    assert value(samples, requests, action="ListTasks", code="OK") == 3
    assert value(samples, requests, action="ListTasks", code="ClusterNotFound") == 1
    assert value(samples, requests, action="ListClusters", code="OK") == 1
    assert value(samples, requests, action="ListClusters", code="SignatureNonceUsed") == 1
    assert value(samples, requests, action="Unknown", code="InvalidAction.NotFound") == 1
    assert value(samples, requests, action="AddNodes", code="OK") == 1
    assert sum(v for (name, _), v in samples.items() if name == requests) == 8
    assert value(samples, "hpcplane_request_seconds_count", action="ListTasks") == 4
    assert value(samples, "hpcplane_request_seconds_bucket", action="ListTasks", le="+Inf") == 4
    assert value(samples, "hpcplane_nonces_refused_total") == 1
    assert value(samples, "hpcplane_steps_total", task_type="CreateCluster") == 25
    assert value(samples, "hpcplane_steps_total", task_type="AddComputes") == 11
    assert value(samples, "hpcplane_step_seconds_count", task_type="AddComputes") == 11
    assert value(samples, "hpcplane_tasks_started_total", task_type="AddComputes") == 1
    assert value(samples, "hpcplane_tasks_ended_total", task_type="CreateCluster", status="Success") == 1
    assert value(samples, "hpcplane_tasks_ended_total", task_type="AddComputes", status="Success") == 1
    assert value(samples, "hpcplane_lease_takeovers_total") == 0
    assert value(samples, "hpcplane_leases_lost_total") == 0
    assert value(samples, "hpcplane_tasks_due") == 0
    assert value(samples, "hpcplane_tasks_unfinished") == 0
    assert samples[("hpcplane_throttled_requests_total", ())] == 0  # there, before any throttling


def test_metrics_token(tmp_path: Path) -> None:
    """With HPCPLANE_METRICS_TOKEN, /metrics wants it as a Bearer token."""
    live = LiveServer(tmp_path / "home", metrics_token="scrape-me").start()
    try:
        assert httpx.get(f"http://{live.endpoint}/metrics").status_code == 401
        wrong = httpx.get(f"http://{live.endpoint}/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert value(scrape(live, "scrape-me"), "hpcplane_steps_total", task_type="CreateCluster") == 25
    finally:
        live.stop()
