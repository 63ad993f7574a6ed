"""GET /events: task changes pushed as Server-Sent Events, from the database, in order, resumable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hpcplane.services.clusters import seed_cluster
from hpcplane.testing import sign_v1
from tests.support.backends import PgDatabases
from tests.support.console import ConsoleClient, SseEvent, make_world, read_events
from tests.support.live import LiveServer
from tests.support.sdkclients import call

STOP_CLUSTER_STEPS = 35
LIST_TASKS_FIELDS = {"ClusterId", "TaskId", "TaskType", "Status", "CurrentStep", "TotalSteps"} | {
    "Result",
    "Errors",
    "Request",
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "postgres":
        databases: PgDatabases = request.getfixturevalue("pg_databases")
        return databases.create()
    return None


def signed_events_url(server: LiveServer, key: dict[str, str], cluster_id: str) -> str:
    signed = sign_v1("ListTasks", {"ClusterId": cluster_id}, key["AccessKeyId"], key["AccessKeySecret"])
    return f"http://{server.endpoint}/events{signed.url_path[1:]}"


def collect(stream: httpx.Response, until: int) -> Iterator[SseEvent]:
    """Events of the stream until one reaches step `until` (or the stream ends)."""
    for event in read_events(stream):
        yield event
        if event.data["Task"]["CurrentStep"] >= until:
            return


def test_signed_stream_gets_every_change_of_a_35_step_task_and_resumes_after_restart(
    tmp_path: Path, store_url: str | None
) -> None:
    """A V1-signed ListTasks query opens the stream; it receives StopCluster's creation, each of its 35
    steps and its end, in order, in the ListTasks schema. The server is restarted mid-task: a new stream
    with Last-Event-ID gets exactly the rest (nothing lost, nothing twice)."""
    server = LiveServer(tmp_path, store_url, sim_step_seconds="0.1", sim_jitter="0").start()
    try:
        key = server.new_account("pushco")
        services = server.services
        cluster = seed_cluster(
            services.db, services.clock, account_id=key["AccountId"], region="cn-hangzhou", name="c1"
        )
        other = seed_cluster(
            services.db, services.clock, account_id=key["AccountId"], region="cn-hangzhou", name="c2"
        )
        with httpx.stream("GET", signed_events_url(server, key, cluster), timeout=30) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            call("legacy", server.endpoint, key["AccessKeyId"], key["AccessKeySecret"], "AddNodes",
                 {"ClusterId": other, "Count": 1})  # fmt: skip
            task_id = call(
                "tea-v3", server.endpoint, key["AccessKeyId"], key["AccessKeySecret"], "StopCluster",
                {"ClusterId": cluster},
            )["TaskId"]  # fmt: skip
            first = list(collect(stream, until=5))
        server.stop()
        server.start()
        with httpx.stream(
            "GET",
            signed_events_url(server, key, cluster),
            headers={"Last-Event-ID": first[-1].id},
            timeout=30,
        ) as stream:
            rest = list(collect(stream, until=STOP_CLUSTER_STEPS))
    finally:
        server.stop()
    events = first + rest
    assert {e.data["Task"]["ClusterId"] for e in events} == {cluster}  # the other cluster's not here
    assert {e.data["Task"]["TaskId"] for e in events} == {task_id}
    assert [e.data["Task"]["CurrentStep"] for e in events] == list(range(STOP_CLUSTER_STEPS + 1))
    assert [e.type for e in events] == (
        ["task.created"] + ["task.progress"] * (STOP_CLUSTER_STEPS - 1) + ["task.ended"]
    )
    assert [e.id for e in events] == [e.data["EventId"] for e in events]
    last = events[-1].data["Task"]
    assert last["Status"] == "Success"
    assert last["TotalSteps"] == STOP_CLUSTER_STEPS
    assert set(last) == LIST_TASKS_FIELDS
    assert last["TaskType"] == "StopCluster"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("events")
    server = LiveServer(home, sim_step_seconds="0.05", sim_jitter="0").start()
    yield server
    server.stop()


def test_console_cookie_opens_the_stream(site: LiveServer, tmp_path: Path) -> None:
    """A console session's cookie opens /events for a cluster it may ListTasks on; the events of a task
    started from the console arrive on it."""
    world = make_world(site, tmp_path)
    console = ConsoleClient(site.endpoint)
    try:
        assert console.sign_in(world.root).status_code == 200
        with console.http.stream("GET", "/events", params={"ClusterId": world.mine}, timeout=30) as stream:
            assert stream.status_code == 200
            assert "default-src 'none'" in stream.headers["content-security-policy"]
            started = console.call("AddNodes", ClusterId=world.mine, Count=1)
            assert started.status_code == 200
            kinds = []
            for event in read_events(stream):
                assert event.data["Task"]["TaskId"] == started.json()["TaskId"]
                kinds.append(event.type)
                if event.type == "task.ended":
                    break
        assert kinds[0] == "task.created"
        assert kinds[-1] == "task.ended"
    finally:
        console.close()


def test_the_stream_refuses_what_listtasks_would(site: LiveServer, tmp_path: Path) -> None:
    """No session and no signature: SessionRequired. A signed query of another action (AddNodes) is refused
    and runs nothing. A replayed signed URL is refused (its nonce is used). A RAM user without ListTasks
    gets NotAuthorized; an unknown cluster, ClusterNotFound."""
    key = site.new_account("refuseco")
    services = site.services
    cluster = seed_cluster(
        services.db, services.clock, account_id=key["AccountId"], region="cn-hangzhou", name="r"
    )
    base = f"http://{site.endpoint}/events"
    anonymous = httpx.get(base, params={"ClusterId": cluster})
    assert anonymous.status_code == 401
    assert anonymous.json()["Code"] == "SessionRequired"

    add = sign_v1(
        "AddNodes", {"ClusterId": cluster, "Count": "1"}, key["AccessKeyId"], key["AccessKeySecret"]
    )
    refused = httpx.get(f"{base}{add.url_path[1:]}")
    assert refused.status_code == 400
    assert refused.json()["Code"] == "InvalidParams"
    listed = call("legacy", site.endpoint, key["AccessKeyId"], key["AccessKeySecret"], "ListTasks",
                  {"ClusterId": cluster, "Archived": True})  # fmt: skip
    assert listed["TotalCount"] == 0

    url = signed_events_url(site, key, cluster)
    with httpx.stream("GET", url, timeout=10) as first:
        assert first.status_code == 200
    replayed = httpx.get(url)
    assert replayed.json()["Code"] == "SignatureNonceUsed"

    site.cli("ram", "create-user", "refuseco", "nobody")
    user = json.loads(site.cli("keys", "create", "refuseco", "--user", "nobody", "--json"))
    denied = httpx.get(signed_events_url(site, user, cluster))
    assert denied.status_code == 403
    assert denied.json()["Code"] == "NotAuthorized"
    missing = httpx.get(signed_events_url(site, key, "ehpc-hz-nothere000"))
    assert missing.json()["Code"] == "ClusterNotFound"
