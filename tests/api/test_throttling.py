"""Flow control through the official SDKs against real servers: Throttling.User with x-acs-retry-after
(the Tea SDK's ThrottlingException), audited; quotas per AccessKey, shared through Redis, and goodput
for other keys flat while one key sends three times its quota."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hpcplane.testing import sign_v3
from tests.support.live import LiveServer
from tests.support.sdkclients import SdkError

RATE = 0.2  # one token each 5 s: an SDK call (about 0.1 s here) refills almost nothing
BURST = 5
THROTTLED = "Request was denied due to user flow control."
HOT_THREADS = 6


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server on SQLite with a small per-key quota and a smaller one for ListNodes."""
    home: Path = tmp_path_factory.mktemp("throttle")
    live = LiveServer(
        home, rate_limit=str(RATE), rate_burst=str(BURST), action_rate_limits="ListNodes=0.2/2"
    ).start()
    yield live
    live.stop()


def spend(server: LiveServer, key: dict[str, str], kind: str = "tea-v3", action: str = "ListClusters") -> int:
    """Call until refused; return how many calls went through (failing if the quota never bites)."""
    refused: SdkError | None = None
    done = 0
    while refused is None and done < 100:
        try:
            server.call(kind, key, action)
            done += 1
        except SdkError as error:
            refused = error
    assert refused is not None, "100 calls in a row were never throttled"
    assert (refused.status, refused.code, refused.message) == (400, "Throttling.User", THROTTLED), refused
    return done


def test_tea_raises_its_throttling_exception(server: LiveServer) -> None:
    """Past the burst, the Tea SDK raises ThrottlingException (400, Throttling.User) with retry_after in
    milliseconds, from the x-acs-retry-after header."""
    from alibabacloud_tea_openapi.exceptions import ThrottlingException

    key = server.new_account("tea-throttled")
    for _ in range(BURST):
        server.call("tea-v3", key, "ListClusters")
    with pytest.raises(SdkError) as caught:
        server.call("tea-v3", key, "ListClusters")
    cause = caught.value.__cause__
    assert isinstance(cause, ThrottlingException)
    assert (cause.status_code, cause.code) == (400, "Throttling.User")
    assert 0 < cause.retry_after <= 1000 / RATE


@pytest.mark.parametrize("kind", ["tea-v1", "legacy"])
def test_every_sdk_sees_throttling_user(server: LiveServer, kind: str) -> None:
    """The V1 path of Tea and the legacy SDK get the same 400 Throttling.User after the same burst."""
    key = server.new_account(f"throttled-{kind}")
    assert spend(server, key, kind) in (BURST, BURST + 1)


def test_the_refusal_carries_retry_after_and_is_audited(server: LiveServer) -> None:
    """Over raw HTTP: the envelope plus x-acs-retry-after; the refusal is in the audit trail with its
    account, principal, action and code, like every call."""
    key = server.new_account("raw-throttled")
    spend(server, key)
    signed = sign_v3("ListClusters", {}, key["AccessKeyId"], key["AccessKeySecret"], host=server.endpoint)
    response = httpx.get(f"http://{server.endpoint}{signed.url_path}", headers=signed.headers, timeout=10)
    assert response.status_code == 400
    body = response.json()
    assert body["Code"] == "Throttling.User"
    assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    assert int(response.headers["x-acs-retry-after"]) > 0
    record = wait_audit(server, body["RequestId"])
    assert (record["ErrorCode"], record["Decision"]) == ("Throttling.User", "Refused"), record
    assert (record["AccountId"], record["Action"]) == (key["AccountId"], "ehpc:ListClusters"), record
    assert record["Principal"], record


def test_other_keys_keep_their_quota(server: LiveServer) -> None:
    """One key throttled leaves another key of the same account system untouched."""
    hot, calm = server.new_account("hot-one"), server.new_account("calm-one")
    spend(server, hot)
    assert spend(server, calm) in (BURST, BURST + 1)


def test_an_action_quota_bites_before_the_key_quota(server: LiveServer) -> None:
    """ListNodes=0.2/2: two ListNodes, then Throttling.User, while the key's other calls still go."""
    key = server.new_account("action-quota")
    with pytest.raises(SdkError):
        server.call("tea-v3", key, "ListNodes", ClusterId="ehpc-hz-none0000")  # counted, then not found
    with pytest.raises(SdkError):
        server.call("tea-v3", key, "ListNodes", ClusterId="ehpc-hz-none0000")
    with pytest.raises(SdkError) as caught:
        server.call("tea-v3", key, "ListNodes", ClusterId="ehpc-hz-none0000")
    assert caught.value.code == "Throttling.User"
    server.call("tea-v3", key, "ListClusters")


@pytest.mark.redis
def test_api_processes_share_the_quota_through_redis(redis_url: str, tmp_path: Path) -> None:
    """Two API processes on one store and one Redis: one key's burst is spent across both together."""
    settings = {"redis_url": redis_url, "rate_limit": "0.01", "rate_burst": "4"}  # no refill to speak of
    first = LiveServer(tmp_path, **settings).start()
    second = LiveServer(tmp_path, worker="false", **settings).start()
    try:
        key = first.new_account("shared-quota")
        codes = []
        for live in (first, second, first, second, first, second):
            try:
                live.call("tea-v3", key, "ListClusters")
                codes.append("OK")
            except SdkError as error:
                codes.append(error.code)
        assert codes == ["OK"] * 4 + ["Throttling.User"] * 2
    finally:
        second.stop()
        first.stop()


def test_goodput_of_other_keys_stays_flat_under_three_times_the_quota(tmp_path: Path) -> None:
    """Two calm keys (the Tea SDK) well within their quota, alone and then beside a hot key sending three
    times its quota (signed raw HTTP, so the hot client costs the test process little): the calm calls
    all succeed at the same goodput, and the hot key gets its quota, no more."""
    rate = 4
    live = LiveServer(tmp_path, rate_limit=str(rate), rate_burst=str(rate)).start()
    try:
        calm = [live.new_account(f"calm{i}") for i in range(2)]
        hot = live.new_account("hot")
        alone = run_clients(live, calm, per_second=1, calls=6)
        beside = run_clients(live, calm, per_second=1, calls=6, hot=hot, hot_per_second=3 * rate)
    finally:
        live.stop()
    assert (alone.calm_ok, alone.calm_failures) == (12, 0)
    assert (beside.calm_ok, beside.calm_failures) == (12, 0)
    assert beside.calm_goodput >= 0.7 * alone.calm_goodput, (alone, beside)
    sent = beside.hot_ok + beside.hot_throttled
    assert sent >= 2 * rate * beside.hot_seconds, beside  # the hot key did send well over its quota
    assert beside.hot_throttled > 0, beside
    assert beside.hot_ok <= rate + rate * beside.hot_seconds * 1.2 + 3, beside  # burst + rate x time


class Outcome:
    """What the clients of one run got."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calm_ok = 0
        self.calm_failures = 0
        self.calm_seconds = 0.0
        self.hot_ok = 0
        self.hot_throttled = 0
        self.hot_other = 0
        self.hot_seconds = 0.0

    @property
    def calm_goodput(self) -> float:
        return self.calm_ok / self.calm_seconds

    def __repr__(self) -> str:
        return repr({k: v for k, v in vars(self).items() if k != "lock"})


def paced(interval: float, stop: Callable[[int], bool]) -> Iterator[int]:
    """0, 1, 2... at `interval` seconds apart (on schedule, not after each call), until `stop(i)`."""
    start = time.monotonic()
    i = 0
    while not stop(i):
        delay = start + i * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # pacing: this client sends at a set rate, it waits for nothing
        yield i
        i += 1


def run_clients(
    live: LiveServer,
    calm: list[dict[str, str]],
    *,
    per_second: float,
    calls: int,
    hot: dict[str, str] | None = None,
    hot_per_second: float = 0,
) -> Outcome:
    """Calm keys each make `calls` paced SDK calls; a hot key (if any) sends at its pace until they end."""
    outcome = Outcome()
    done = threading.Event()

    def calm_client(key: dict[str, str]) -> None:
        for _ in paced(1 / per_second, lambda i: i >= calls):
            try:
                live.call("tea-v3", key, "ListClusters")
                ok = True
            except SdkError:
                ok = False
            with outcome.lock:
                outcome.calm_ok += ok
                outcome.calm_failures += not ok

    def hot_client(key: dict[str, str]) -> None:
        with httpx.Client(timeout=10, trust_env=False) as client:
            for _ in paced(HOT_THREADS / hot_per_second, lambda i: done.is_set()):
                signed = sign_v3(
                    "ListClusters", {}, key["AccessKeyId"], key["AccessKeySecret"], host=live.endpoint
                )
                response = client.get(f"http://{live.endpoint}{signed.url_path}", headers=signed.headers)
                code = response.json().get("Code") if response.status_code != 200 else "OK"
                with outcome.lock:
                    outcome.hot_ok += code == "OK"
                    outcome.hot_throttled += code == "Throttling.User"
                    outcome.hot_other += code not in ("OK", "Throttling.User")

    # Several hot threads, each at its share of the pace, so a slow answer does not slow the whole attack.
    hot_threads = (
        [threading.Thread(target=hot_client, args=(hot,)) for _ in range(HOT_THREADS)] if hot else []
    )
    started = time.monotonic()
    for thread in hot_threads:
        thread.start()
    calm_threads = [threading.Thread(target=calm_client, args=(key,)) for key in calm]
    calm_started = time.monotonic()
    for thread in calm_threads:
        thread.start()
    for thread in calm_threads:
        thread.join(120)
    outcome.calm_seconds = time.monotonic() - calm_started
    done.set()
    for thread in hot_threads:
        thread.join(60)
    outcome.hot_seconds = time.monotonic() - started
    assert outcome.hot_other == 0, outcome
    return outcome


def wait_audit(server: LiveServer, request_id: str) -> dict[str, Any]:
    """The audit record of one call (polled: records are written in batches)."""
    deadline = time.monotonic() + 10
    while True:
        rows = [json.loads(line) for line in server.cli("audit", "tail", "-n", "50", "--json").splitlines()]
        for row in rows:
            if row.get("RequestId") == request_id:
                return dict(row)
        assert time.monotonic() < deadline, f"{request_id} not in the audit trail: {rows[-3:]}"
        time.sleep(0.2)
