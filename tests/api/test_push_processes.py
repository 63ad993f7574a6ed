"""Push with several processes on one PostgreSQL database: a stream on one API process gets the changes a
worker in another makes (LISTEN/NOTIFY wakes it), and two deliverers share a webhook without doubling."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hpcplane.services.clusters import seed_cluster
from tests.api.test_events import signed_events_url
from tests.api.test_webhooks import Receiver, wait_until
from tests.support.backends import PgDatabases
from tests.support.console import read_events
from tests.support.live import LiveServer, free_port
from tests.support.sdkclients import call

pytestmark = pytest.mark.postgres


@pytest.fixture
def pair(pg_databases: PgDatabases, tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two `serve` processes on one database, each with its worker and webhook deliverer."""
    url = pg_databases.create()
    settings = {"sim_step_seconds": "0.05", "sim_jitter": "0", "webhook_backoff": "0.2"}
    first = LiveServer(tmp_path / "a", url, **settings).start()
    second = LiveServer(tmp_path / "a", url, **settings)  # the same home: the same secret key
    try:
        second.start()
        yield first, second
    finally:
        second.stop()
        first.stop()


def test_a_stream_on_one_process_gets_another_process_s_changes(pair: tuple[LiveServer, LiveServer]) -> None:
    """The stream is opened on the second process; the task is accepted by the first, and its steps run
    on either worker; every change arrives, in order."""
    first, second = pair
    key = first.new_account("multico")
    services = first.services
    cluster = seed_cluster(
        services.db, services.clock, account_id=key["AccountId"], region="cn-hangzhou", name="m"
    )
    with httpx.stream("GET", signed_events_url(second, key, cluster), timeout=30) as stream:
        assert stream.status_code == 200
        call("legacy", first.endpoint, key["AccessKeyId"], key["AccessKeySecret"], "AddNodes",
             {"ClusterId": cluster, "Count": 1})  # fmt: skip
        steps = []
        for event in read_events(stream):
            steps.append(event.data["Task"]["CurrentStep"])
            if event.type == "task.ended":
                break
    assert steps == list(range(len(steps)))
    assert len(steps) == 12


def test_two_deliverers_send_each_event_once_in_order(pair: tuple[LiveServer, LiveServer]) -> None:
    """Both processes run a deliverer; the webhook's lease lets one send at a time, so the receiver gets
    each change once, in order."""
    first, _ = pair
    key = first.new_account("sharedco")
    services = first.services
    cluster = seed_cluster(
        services.db, services.clock, account_id=key["AccountId"], region="cn-hangzhou", name="s"
    )
    receiver = Receiver(free_port())
    receiver.start()
    try:
        first.cli("webhooks", "add", "sharedco", f"http://127.0.0.1:{receiver.port}/h")
        for _ in range(3):
            call("legacy", first.endpoint, key["AccessKeyId"], key["AccessKeySecret"], "AddNodes",
                 {"ClusterId": cluster, "Count": 1})  # fmt: skip
        wait_until(lambda: sum(b'"task.ended"' in body for _, body in receiver.received()) == 3, timeout=60)
    finally:
        receiver.stop()
    keys = [headers["idempotency-key"] for headers, _ in receiver.received()]
    assert len(keys) == len(set(keys)) == 3 * 12
    ids = [json.loads(body)["EventId"] for _, body in receiver.received()]
    order = [tuple(int(part) for part in event_id.split("-")) for event_id in ids]
    assert order == sorted(order)
