"""Webhooks: every task change POSTed to a local receiver, signed, in order, retried after it was down."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from hpcplane.cli import main as cli_main
from hpcplane.services.clusters import seed_cluster
from hpcplane.store.tables import webhooks
from tests.support.backends import PgDatabases
from tests.support.live import LiveServer, free_port
from tests.support.sdkclients import call

ADD_NODES_STEPS = 11


class Receiver:
    """An HTTP server on 127.0.0.1 that records each POST (headers and body) and answers 200."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._lock:
                    receiver.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def received(self) -> list[tuple[dict[str, str], bytes]]:
        with self._lock:
            return list(self.posts)


def wait_until(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    database_url = None
    if request.param == "postgres":
        databases: PgDatabases = request.getfixturevalue("pg_databases")
        database_url = databases.create()
    home = tmp_path_factory.mktemp(f"webhooks-{request.param}")
    server = LiveServer(
        home,
        database_url,
        sim_step_seconds="0.05",
        sim_jitter="0",
        webhook_backoff="0.2",
        webhook_backoff_max="0.5",
    ).start()
    yield server
    server.stop()


def test_add_refuses_urls_that_are_not_http(site: LiveServer) -> None:
    """Only http:// and https:// URLs with a host are taken; other schemes are refused with a message."""
    site.new_account("schemeco")
    for url in ("ftp://127.0.0.1/x", "file:///etc/passwd", "javascript:alert(1)", "http:///nohost"):
        result = CliRunner().invoke(cli_main, ["webhooks", "add", "schemeco", url], env=site.env)
        assert result.exit_code != 0, url
        assert "http:// or https://" in result.output
    bad = CliRunner().invoke(
        cli_main, ["webhooks", "add", "schemeco", "http://x", "--events", "job.done"], env=site.env
    )
    assert bad.exit_code != 0
    assert "unknown event 'job.done'" in bad.output
    assert json.loads(site.cli("webhooks", "list", "schemeco", "--json")) == []


def test_receiver_gets_every_change_signed_and_retried_after_being_down(site: LiveServer) -> None:
    """With the receiver down, deliveries fail and are listed as failures, retried with backoff; once it
    is up it gets every change of the task (created, each step, ended) in order, each signed with
    HMAC-SHA256 over timestamp.body and carrying an idempotency key."""
    key = site.new_account("hookco")
    services = site.services
    cluster = seed_cluster(
        services.db, services.clock, account_id=key["AccountId"], region="cn-hangzhou", name="h"
    )
    receiver = Receiver(free_port())  # not started yet: the receiver is down
    added = json.loads(
        site.cli("webhooks", "add", "hookco", f"http://127.0.0.1:{receiver.port}/hook", "--json")
    )
    secret, hook_id = added["Secret"], added["WebhookId"]
    task_id = call(
        "legacy", site.endpoint, key["AccessKeyId"], key["AccessKeySecret"], "AddNodes",
        {"ClusterId": cluster, "Count": 1},
    )["TaskId"]  # fmt: skip

    def failures() -> list[dict[str, object]]:
        rows: list[dict[str, object]] = json.loads(
            site.cli("webhooks", "deliveries", hook_id, "--failed", "--json")
        )
        return rows

    wait_until(lambda: len(failures()) >= 3)
    attempts = [row["Attempt"] for row in reversed(failures())]
    assert attempts[:3] == [1, 2, 3]  # the same first event, retried
    assert all(row["StatusCode"] is None and row["Error"] for row in failures())

    receiver.start()
    try:
        wait_until(lambda: any(b'"task.ended"' in body for _, body in receiver.received()))
    finally:
        receiver.stop()
    posts = receiver.received()
    unique: dict[str, tuple[dict[str, str], bytes]] = {}
    for headers, body in posts:
        unique.setdefault(headers["idempotency-key"], (headers, body))
    events = []
    for headers, body in unique.values():
        expected = hmac.new(
            secret.encode(), headers["x-hpcplane-timestamp"].encode() + b"." + body, hashlib.sha256
        )
        assert hmac.compare_digest(headers["x-hpcplane-signature"], "v1=" + expected.hexdigest())
        assert headers["content-type"] == "application/json"
        event = json.loads(body)
        assert headers["idempotency-key"] == f"{hook_id}:{event['EventId']}"
        assert headers["x-hpcplane-event-type"] == event["Type"]
        events.append(event)
    assert {e["Task"]["TaskId"] for e in events} == {task_id}
    assert [e["Task"]["CurrentStep"] for e in events] == list(range(ADD_NODES_STEPS + 1))
    assert events[0]["Type"] == "task.created"
    assert events[-1]["Type"] == "task.ended"
    assert events[-1]["Task"]["Status"] == "Success"
    assert int(posts[0][0]["x-hpcplane-delivery-attempt"]) > 3  # the first event came after retries

    delivered = json.loads(site.cli("webhooks", "deliveries", hook_id, "--json"))
    assert sum(1 for row in delivered if row["Ok"]) >= ADD_NODES_STEPS + 1
    listed = json.loads(site.cli("webhooks", "list", "hookco", "--json"))
    assert [(row["WebhookId"], row["Failures"]) for row in listed] == [(hook_id, 0)]
    assert "Secret" not in listed[0]
    site.cli("webhooks", "remove", hook_id)
    assert json.loads(site.cli("webhooks", "list", "hookco", "--json")) == []


def test_the_secret_is_stored_sealed(site: LiveServer) -> None:
    """The signing secret printed at creation is stored only sealed with the server's key."""
    site.new_account("sealco")
    added = json.loads(site.cli("webhooks", "add", "sealco", "https://example.invalid/h", "--json"))
    with site.services.db.read() as conn:
        sealed = conn.execute(
            select(webhooks.c.secret_enc).where(webhooks.c.id == added["WebhookId"])
        ).scalar_one()
    assert added["Secret"] not in sealed
    assert site.services.box.open(sealed) == added["Secret"]
