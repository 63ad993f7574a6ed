"""Every documented error code, provoked through the official SDKs (or raw HTTP where no SDK can send it).

Each error is checked for its HTTP status, Code and exact Message, for the full error body (RequestId,
HostId, Code, Message, Recommend) and, over raw HTTP, for the x-acs-request-id header carrying the RequestId.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from hpcplane.domain.tasks import TaskStatus, TaskType
from hpcplane.services.clusters import seed_cluster
from hpcplane.services.tasks import record_task
from hpcplane.testing import SignedRequest, sign_v1, sign_v3
from tests.support.backends import IN_CI, REDIS_URL, PgDatabases, redis_error
from tests.support.live import LiveServer
from tests.support.proxy import Proxy, send_raw
from tests.support.sdkclients import SDK_KINDS, SdkError, call

HOST_ID = "ehpc.cn-hangzhou.aliyuncs.com"
BODY_FIELDS = {"RequestId", "HostId", "Code", "Message", "Recommend"}
JSON_TYPE = "application/json;charset=utf-8"
TEA_KINDS = ("tea-v3", "tea-sm3", "tea-v1")
MISMATCH = "Specified signature is not matched with our calculation. server string to sign is:"

MSG = {
    "InvalidParams": "The specified parameter ClusterId is invalid.",
    "NotEnabled": "You have not enabled this service",
    "ClusterNotFound": "The specified cluster does not exist.",
    "DbError": "A database service error occurred.",
    "RedisError": "A Redis service error occurred.",
    "NotAuthorized": "You are not authorized by RAM for this request.",
    "UnknownError": "An unknown error occurred.",
    "ServiceUnavailable": "The request has failed due to a temporary failure of the server",
    "InvalidAccessKeyId.NotFound": "Specified access key is not found.",
    "InvalidAccessKeyId.Inactive": "Specified access key is disabled.",
    "InvalidTimeStamp.Format": "Specified time stamp or date value is not well formatted.",
    "InvalidTimeStamp.Expired": "Specified time stamp or date value is expired.",
    "SignatureNonceUsed": "Specified signature nonce was used already.",
    "InvalidSignatureMethod": "Specified signature method is not valid.",
    "InvalidAction.NotFound": "Specified api is not found, please check your url and method.",
    "InvalidVersion": "Specified parameter Version is not valid.",
}
UNCHECKED = "<not checked here>"
INCOMPLETE = "The request signature does not conform to Aliyun standards. "


def missing(name: str) -> str:
    return f"The input parameter {name} that is mandatory for processing this request is not supplied."


# ------------------------------------------------------------------------------------------- helpers


def check_body(body: Mapping[str, Any], code: str, message: str) -> str:
    """The error body has exactly the five fields, with this code and message; returns its RequestId."""
    assert set(body) == BODY_FIELDS, body
    request_id = body["RequestId"]
    assert isinstance(request_id, str)
    assert request_id
    assert body["HostId"] == HOST_ID
    assert body["Code"] == code
    if message != UNCHECKED:
        assert body["Message"] == message
    assert body["Recommend"] == (
        f"https://api.aliyun.com/troubleshoot?q={code}&product=EHPC&requestId={request_id}"
    )
    return request_id


def sdk_error(
    endpoint: str,
    kind: str,
    key: Mapping[str, str],
    action: str,
    params: Mapping[str, object],
    status: int,
    code: str,
    message: str | None = None,
) -> SdkError:
    """Make the SDK call; it must fail with this status, code and message (default MSG[code])."""
    expected = MSG[code] if message is None else message
    with pytest.raises(SdkError) as caught:
        call(kind, endpoint, key["AccessKeyId"], key["AccessKeySecret"], action, params)
    error = caught.value
    assert (error.status, error.code) == (status, code), error
    if expected != UNCHECKED:
        assert error.message == expected
    assert error.data is not None
    assert error.request_id == check_body(error.data, code, expected)
    return error


_HTTP = httpx.Client(timeout=15, trust_env=False)  # one client: making one costs more than a call


@pytest.fixture(scope="module", autouse=True)
def _close_http_client() -> Iterator[None]:
    """Close the module's HTTP client after its last test."""
    yield
    _HTTP.close()


def send(endpoint: str, req: SignedRequest) -> httpx.Response:
    return _HTTP.request(
        req.method, f"http://{endpoint}{req.url_path}", headers=req.headers, content=req.body
    )


def raw_error(
    endpoint: str, req: SignedRequest, status: int, code: str, message: str | None = None
) -> dict[str, Any]:
    """Send a raw request that must fail; check status, Content-Type, body and x-acs-request-id header."""
    expected = MSG[code] if message is None else message
    response = send(endpoint, req)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == JSON_TYPE
    body: dict[str, Any] = response.json()
    assert response.headers["x-acs-request-id"] == check_body(body, code, expected)
    return body


def raw_ok(endpoint: str, req: SignedRequest) -> dict[str, Any]:
    response = send(endpoint, req)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert response.headers["x-acs-request-id"] == body["RequestId"]
    return body


def v1(key: Mapping[str, str], action: str = "ListTasks", **kwargs: Any) -> SignedRequest:
    params = kwargs.pop("params", {"ClusterId": key.get("ClusterId", "ehpc-hz-none")})
    return sign_v1(action, params, key["AccessKeyId"], key["AccessKeySecret"], **kwargs)


def v3(endpoint: str, key: Mapping[str, str], action: str = "ListTasks", **kwargs: Any) -> SignedRequest:
    params = kwargs.pop("params", {"ClusterId": key.get("ClusterId", "ehpc-hz-none")})
    return sign_v3(action, params, key["AccessKeyId"], key["AccessKeySecret"], host=endpoint, **kwargs)


def with_query(req: SignedRequest, **changes: str | None) -> SignedRequest:
    """The same request with query parameters replaced (or removed with None), not re-signed."""
    parts = urlsplit(req.url_path)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    for name, value in changes.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    return SignedRequest(req.method, f"/?{urlencode(params)}", req.headers, req.body)


def with_headers(req: SignedRequest, **changes: str) -> SignedRequest:
    """The same request with headers replaced or added, not re-signed."""
    return SignedRequest(req.method, req.url_path, {**req.headers, **changes}, req.body)


def records_of(server: LiveServer, request_id: str) -> list[dict[str, Any]]:
    return [r for r in server.log_records() if r.get("request_id") == request_id]


def new_tenant(server: LiveServer, name: str) -> dict[str, str]:
    """A fresh account with one cluster."""
    key = server.new_account(name)
    services = server.services
    cluster = seed_cluster(
        services.db, services.clock, account_id=key["AccountId"], region="cn-hangzhou", name=name
    )
    return {**key, "ClusterId": cluster}


# Independent reference implementations of the string to sign (protocol.md section 9).
def _enc(value: str) -> str:
    return quote(value, safe="-_.~")


def reference_v1_sts(method: str, url_path: str) -> str:
    params = [(k, v) for k, v in parse_qsl(urlsplit(url_path).query, keep_blank_values=True)]
    cqs = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in sorted(params) if k != "Signature")
    return f"{method}&{_enc('/')}&{_enc(cqs)}"


def reference_v3_sts(req: SignedRequest) -> str:
    auth = req.headers["authorization"]
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    query = parse_qsl(urlsplit(req.url_path).query, keep_blank_values=True)
    canonical = "\n".join(
        [
            req.method,
            "/",
            "&".join(f"{k}={v}" for k, v in sorted((_enc(k), _enc(v)) for k, v in query)),
            "".join(f"{n}:{req.headers[n].strip()}\n" for n in signed),
            ";".join(signed),
            hashlib.sha256(req.body).hexdigest(),
        ]
    )
    return "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def tenant(server: LiveServer) -> dict[str, str]:
    """An account with one empty cluster on the module's server."""
    return new_tenant(server, "errors")


SQLITE_ONLY = pytest.mark.parametrize("server", ["sqlite"], indirect=True)  # for checks no store touches

SPECIAL_SETTINGS: dict[str, dict[str, str]] = {
    "skewed": {"clock_offset": "1000"},  # the server's clock runs 1000 s (over 15 minutes) ahead
    "quick_lock": {"db_timeout": "0.5"},  # waits at most 0.5 s for SQLite's write lock
    "busy": {"max_concurrency": "1", "db_timeout": "3"},  # one request in flight at a time
}


@pytest.fixture(scope="module")
def specials(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The servers with unusual settings, started in parallel (each start costs a second or two).

    "redis" keeps its nonces in Redis reached through "redis_proxy", a Proxy to REDIS_URL: closing it
    leaves the server's redis_url pointing at a closed port.
    """
    redis_target = urlsplit(REDIS_URL)
    redis_proxy = Proxy(redis_target.hostname or "127.0.0.1", redis_target.port or 6379)
    settings = {
        **SPECIAL_SETTINGS,
        "redis": {"redis_url": f"redis://{redis_proxy.endpoint}{redis_target.path or '/0'}"},
    }
    servers = {name: LiveServer(tmp_path_factory.mktemp(name), **values) for name, values in settings.items()}
    found: dict[str, Any] = {**servers, "redis_proxy": redis_proxy}
    try:
        with ThreadPoolExecutor(len(servers)) as pool:
            for started in [pool.submit(live.start, 90) for live in servers.values()]:
                started.result()
        yield found
    finally:
        for live in servers.values():
            live.stop()
        found["redis_proxy"].close()


@pytest.fixture(scope="module")
def skewed(specials: dict[str, Any]) -> LiveServer:
    """A SQLite server whose clock runs 1000 s ahead."""
    live: LiveServer = specials["skewed"]
    return live


# ------------------------------------------------------------------------------- E-HPC's own codes


@SQLITE_ONLY
@pytest.mark.parametrize("kind", SDK_KINDS)
def test_missing_cluster_id_is_invalid_params(server: LiveServer, tenant: dict[str, str], kind: str) -> None:
    """ListTasks without ClusterId: 400 InvalidParams, and the message names ClusterId."""
    sdk_error(server.endpoint, kind, tenant, "ListTasks", {"Archived": True}, 400, "InvalidParams")


@SQLITE_ONLY
def test_invalid_params_over_raw_http(server: LiveServer, tenant: dict[str, str]) -> None:
    """A blank ClusterId is InvalidParams too, with the RequestId in the x-acs-request-id header."""
    raw_error(server.endpoint, v1(tenant, params={"ClusterId": ""}), 400, "InvalidParams")
    raw_error(server.endpoint, v3(server.endpoint, tenant, params={}), 400, "InvalidParams")


def test_not_enabled_until_enabled_again(server: LiveServer) -> None:
    """disable-service NAME makes every call NotEnabled (400); enable-service ID restores the service."""
    tenant = new_tenant(server, "switched")
    params = {"ClusterId": tenant["ClusterId"]}
    assert server.call("tea-v3", tenant, "ListTasks", **params)["TotalCount"] == 0
    server.cli("accounts", "disable-service", "switched")
    try:
        for kind in SDK_KINDS:
            sdk_error(server.endpoint, kind, tenant, "ListTasks", params, 400, "NotEnabled")
        raw_error(server.endpoint, v1(tenant), 400, "NotEnabled")
    finally:
        server.cli("accounts", "enable-service", tenant["AccountId"])
    for kind in SDK_KINDS:
        assert server.call(kind, tenant, "ListTasks", **params)["TotalCount"] == 0


@pytest.mark.parametrize("kind", SDK_KINDS)
def test_unknown_cluster_is_cluster_not_found(server: LiveServer, tenant: dict[str, str], kind: str) -> None:
    """A ClusterId that does not exist: 404 ClusterNotFound."""
    params = {"ClusterId": "ehpc-hz-NoSuchClus"}
    sdk_error(server.endpoint, kind, tenant, "ListTasks", params, 404, "ClusterNotFound")


def test_cluster_not_found_over_raw_http(server: LiveServer, tenant: dict[str, str]) -> None:
    """ClusterNotFound carries the RequestId header too."""
    raw_error(server.endpoint, v1(tenant, params={"ClusterId": "ehpc-hz-x"}), 404, "ClusterNotFound")


@pytest.fixture(scope="module")
def ram_user_key(server: LiveServer, tenant: dict[str, str]) -> dict[str, str]:
    """An AccessKey of a RAM user (no policy attached) of the tenant's account."""
    server.cli("ram", "create-user", tenant["AccountId"], "operator")
    key: dict[str, str] = json.loads(server.cli("keys", "create", "errors", "--user", "operator", "--json"))
    assert key["AccountId"] == tenant["AccountId"]
    assert key["UserName"] == "operator"
    return {**key, "ClusterId": tenant["ClusterId"]}


@pytest.mark.parametrize("kind", SDK_KINDS)
def test_ram_user_without_policy_is_not_authorized(
    server: LiveServer, ram_user_key: dict[str, str], kind: str
) -> None:
    """A RAM user's call is refused with 407 NotAuthorized, and the log says why under the RequestId."""
    params = {"ClusterId": ram_user_key["ClusterId"]}
    error = sdk_error(server.endpoint, kind, ram_user_key, "ListTasks", params, 407, "NotAuthorized")
    assert error.request_id is not None
    denied = [r for r in records_of(server, error.request_id) if r.get("event") == "denied"]
    assert len(denied) == 1, records_of(server, error.request_id)
    assert denied[0]["ram_action"] == "ehpc:ListTasks"
    assert denied[0]["access_key_id"] == ram_user_key["AccessKeyId"]


def test_not_authorized_over_raw_http(
    server: LiveServer, tenant: dict[str, str], ram_user_key: dict[str, str]
) -> None:
    """NotAuthorized carries the RequestId header too; the account's own key is still allowed."""
    raw_error(server.endpoint, v3(server.endpoint, ram_user_key), 407, "NotAuthorized")
    assert raw_ok(server.endpoint, v3(server.endpoint, tenant))["TotalCount"] == 0


def test_corrupt_row_is_unknown_error_without_internals(server: LiveServer) -> None:
    """A row the server cannot read gives 500 UnknownError; the body hides it, the log has the traceback."""
    tenant = new_tenant(server, "corrupt")
    services = server.services
    task_id = record_task(
        services.db,
        services.clock,
        account_id=tenant["AccountId"],
        cluster_id=tenant["ClusterId"],
        task_type=TaskType.STOP_CLUSTER,
        total_steps=3,
        status=TaskStatus.SUCCESS,
        current_step=3,
    )
    with services.db.engine.begin() as conn:
        changed = conn.execute(
            text("UPDATE tasks SET status = 'Bogus' WHERE task_id = :task_id"), {"task_id": task_id}
        )
        assert changed.rowcount == 1
    params = {"ClusterId": tenant["ClusterId"], "Archived": True}
    for kind in SDK_KINDS:
        sdk_error(server.endpoint, kind, tenant, "ListTasks", params, 500, "UnknownError")
    response = send(
        server.endpoint, v1(tenant, params={"ClusterId": tenant["ClusterId"], "Archived": "true"})
    )
    assert response.status_code == 500
    body = response.json()
    request_id = check_body(body, "UnknownError", MSG["UnknownError"])
    assert response.headers["x-acs-request-id"] == request_id
    for secret in ("Traceback", "Bogus", "ValueError", "TaskStatus", "tasks"):
        assert secret not in response.text
    logged = [r for r in records_of(server, request_id) if "exception" in r]
    assert len(logged) == 1, records_of(server, request_id)
    assert "Traceback" in logged[0]["exception"]
    assert "Bogus" in logged[0]["exception"]
    # The rest of the cluster's history, without the bad row, still reads.
    assert server.call("legacy", tenant, "ListTasks", ClusterId=tenant["ClusterId"])["TotalCount"] == 0


# ------------------------------------------------------------------------ store failures: 406, 503


def test_postgres_unreachable_is_db_error(pg_databases: PgDatabases, tmp_path: Path) -> None:
    """PostgreSQL cut off behind a proxy: 406 DbError (never 500); it works again once reachable."""
    url = make_url(pg_databases.create())
    proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
    proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
    live = LiveServer(tmp_path / "home", proxied)
    try:
        live.start()
        tenant = new_tenant(live, "pg-cut")
        params = {"ClusterId": tenant["ClusterId"]}
        assert live.call("tea-v3", tenant, "ListTasks", **params)["TotalCount"] == 0
        proxy.close()
        for kind in SDK_KINDS:
            sdk_error(live.endpoint, kind, tenant, "ListTasks", params, 406, "DbError")
        body = raw_error(live.endpoint, v1(tenant), 406, "DbError")
        warned = [r for r in records_of(live, body["RequestId"]) if r.get("event") == "store unavailable"]
        assert warned, records_of(live, body["RequestId"])
        assert warned[0]["code"] == "DbError"
        proxy = Proxy(url.host or "127.0.0.1", url.port or 5432, port=proxy.port)
        assert live.call("legacy", tenant, "ListTasks", **params)["TotalCount"] == 0
    finally:
        live.stop()
        proxy.close()


class WriteLock:
    """Holds SQLite's write lock on a server's store (BEGIN IMMEDIATE) until released."""

    def __init__(self, home: Path) -> None:
        self._conn = sqlite3.connect(home / "hpcplane.db", isolation_level=None)
        self._conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self._conn.execute("ROLLBACK")
        self._conn.close()


def test_sqlite_lock_is_db_error(specials: dict[str, Any]) -> None:
    """A store whose writer is held longer than db_timeout gives 406 DbError to a call that writes (not a
    hang); ListTasks, which only reads (its nonce is written in the writer's batches), is answered
    meanwhile; released, calls work."""
    quick_lock: LiveServer = specials["quick_lock"]
    tenant = new_tenant(quick_lock, "locked")
    params = {"ClusterId": tenant["ClusterId"]}
    change = {**params, "Name": "renamed"}
    assert quick_lock.call("tea-v3", tenant, "ListTasks", **params)["TotalCount"] == 0
    lock = WriteLock(quick_lock.home)
    try:
        sdk_error(quick_lock.endpoint, "tea-v3", tenant, "ModifyClusterAttributes", change, 406, "DbError")
        sdk_error(quick_lock.endpoint, "legacy", tenant, "ModifyClusterAttributes", change, 406, "DbError")
        raw_error(quick_lock.endpoint, v1(tenant, "ModifyClusterAttributes", params=change), 406, "DbError")
        assert quick_lock.call("tea-v3", tenant, "ListTasks", **params)["TotalCount"] == 0
    finally:
        lock.release()
    for kind in SDK_KINDS:
        assert quick_lock.call(kind, tenant, "ListTasks", **params)["TotalCount"] == 0


def redis_reachable() -> bool:
    """Whether Redis at HPCPLANE_TEST_REDIS answers; under CI=true its absence fails the test instead."""
    error = redis_error()
    if error is not None and IN_CI:
        pytest.fail(f"Redis not reachable ({type(error).__name__}); CI=true requires it", pytrace=False)
    return error is None


def test_redis_unreachable_is_redis_error(specials: dict[str, Any]) -> None:
    """Nonces in Redis: a reused one is refused; with redis_url at a closed port, calls get 406 RedisError."""
    # The part before the proxy closes needs Redis at HPCPLANE_TEST_REDIS; without one it is left out,
    # except under CI=true, where a missing Redis fails the test.
    live: LiveServer = specials["redis"]
    tenant = new_tenant(live, "redis")
    params = {"ClusterId": tenant["ClusterId"]}
    if redis_reachable():
        assert live.call("tea-v3", tenant, "ListTasks", **params)["TotalCount"] == 0
        nonce = f"redis-{time.time_ns()}"
        assert raw_ok(live.endpoint, v1(tenant, nonce=nonce))["TotalCount"] == 0
        raw_error(live.endpoint, v1(tenant, nonce=nonce), 400, "SignatureNonceUsed")
    proxy: Proxy = specials["redis_proxy"]
    proxy.close()
    for kind in SDK_KINDS:
        sdk_error(live.endpoint, kind, tenant, "ListTasks", params, 406, "RedisError")
    body = raw_error(live.endpoint, v3(live.endpoint, tenant), 406, "RedisError")
    warned = [r for r in records_of(live, body["RequestId"]) if r.get("event") == "store unavailable"]
    assert warned, records_of(live, body["RequestId"])
    assert warned[0]["code"] == "RedisError"
    # Checks that come before the nonce still answer with their own codes.
    raw_error(
        live.endpoint, v1({**tenant, "AccessKeySecret": "wrong"}), 400, "SignatureDoesNotMatch", UNCHECKED
    )
    if redis_reachable():  # Redis back: calls work again
        specials["redis_proxy"] = Proxy(*proxy.target, port=proxy.port)
        assert live.call("legacy", tenant, "ListTasks", **params)["TotalCount"] == 0


def occupy(live: LiveServer, pool: ThreadPoolExecutor, tenant: dict[str, str]) -> Future[dict[str, object]]:
    """Start a call that waits on the locked store (one that writes: ListTasks only reads, and its nonce is
    written in the writer's batches); return it once it holds the server's only slot.

    An unsigned probe, when admitted, fails at once (IncompleteSignature, no store touched); it gets 503
    once the call holds the slot. A call that arrived while a probe held the slot got 503 and is retried.
    """
    probe = SignedRequest("GET", "/?Action=ListTasks&Version=2018-04-12", {})
    params = {"ClusterId": tenant["ClusterId"], "Name": "renamed"}
    call_ = pool.submit(live.call, "tea-v3", tenant, "ModifyClusterAttributes", **params)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if call_.done():
            error = call_.exception()
            assert isinstance(error, SdkError), (
                f"the call did not wait for the lock: {error or call_.result()}"
            )
            assert error.status == 503, error
            call_ = pool.submit(live.call, "tea-v3", tenant, "ModifyClusterAttributes", **params)
        elif send(live.endpoint, probe).status_code == 503:
            return call_
    pytest.fail("no call ever held the server's only slot")


def test_overload_is_service_unavailable(specials: dict[str, Any]) -> None:
    """max_concurrency=1: while one call waits on the store, the next gets 503 ServiceUnavailable."""
    live: LiveServer = specials["busy"]
    tenant = new_tenant(live, "busy")
    params = {"ClusterId": tenant["ClusterId"]}
    lock = WriteLock(live.home)
    with ThreadPoolExecutor(1) as pool:
        try:
            first = occupy(live, pool, tenant)
            sdk_error(live.endpoint, "legacy", tenant, "ListTasks", params, 503, "ServiceUnavailable")
            sdk_error(live.endpoint, "tea-v1", tenant, "ListTasks", params, 503, "ServiceUnavailable")
            raw_error(live.endpoint, v1(tenant), 503, "ServiceUnavailable")
            assert not first.done()
        finally:
            lock.release()
        assert "RequestId" in first.result(timeout=10)
    assert live.call("legacy", tenant, "ListTasks", **params)["TotalCount"] == 0


# -------------------------------------------------------------------------------- gateway: signing


@SQLITE_ONLY
@pytest.mark.parametrize("kind", TEA_KINDS)
def test_wrong_secret_is_signature_does_not_match(
    server: LiveServer, tenant: dict[str, str], kind: str
) -> None:
    """A wrong secret: 400 SignatureDoesNotMatch, the message ending in the server's string to sign."""
    key = {**tenant, "AccessKeySecret": "not-the-secret"}
    params = {"ClusterId": tenant["ClusterId"]}
    error = sdk_error(
        server.endpoint, kind, key, "ListTasks", params, 400, "SignatureDoesNotMatch", UNCHECKED
    )
    assert error.message.startswith(MISMATCH)
    sts = error.message[len(MISMATCH) :]
    if kind == "tea-v1":
        assert sts.startswith("GET&%2F&AccessKeyId%3D" + tenant["AccessKeyId"] + "%26Action%3DListTasks")
    else:
        algorithm = "ACS3-HMAC-SM3" if kind == "tea-sm3" else "ACS3-HMAC-SHA256"
        head, _, digest = sts.partition("\n")
        assert head == algorithm
        assert len(digest) == 64
        assert int(digest, 16) >= 0


@SQLITE_ONLY
def test_legacy_sdk_recognises_our_string_to_sign(server: LiveServer, tenant: dict[str, str]) -> None:
    """The legacy SDK finds its own string to sign in the message and reports InvalidAccessKeySecret."""
    key = {**tenant, "AccessKeySecret": "not-the-secret"}
    with pytest.raises(SdkError) as caught:
        call(
            "legacy",
            server.endpoint,
            key["AccessKeyId"],
            key["AccessKeySecret"],
            "ListTasks",
            {"ClusterId": "x"},
        )
    error = caught.value
    assert (error.status, error.code) == (400, "InvalidAccessKeySecret")
    assert (
        error.message
        == "The AccessKeySecret is incorrect. Please check your AccessKeyId and AccessKeySecret."
    )
    assert error.data is not None
    assert error.request_id == check_body(error.data, "SignatureDoesNotMatch", UNCHECKED)
    assert str(error.data["Message"]).startswith(MISMATCH + "GET&%2F&")


@SQLITE_ONLY
def test_mismatch_message_is_exactly_the_string_to_sign(server: LiveServer, tenant: dict[str, str]) -> None:
    """Over raw HTTP, the message carries exactly the V1 or V3 string to sign of protocol.md."""
    wrong = {**tenant, "AccessKeySecret": "not-the-secret"}
    params = {"ClusterId": "a b+c/d~e*f=g&hé中", "Archived": "True"}
    req = v1(wrong, params=params)
    raw_error(
        server.endpoint, req, 400, "SignatureDoesNotMatch", MISMATCH + reference_v1_sts("GET", req.url_path)
    )
    req = v3(server.endpoint, wrong, params=params)
    raw_error(server.endpoint, req, 400, "SignatureDoesNotMatch", MISMATCH + reference_v3_sts(req))


@SQLITE_ONLY
def test_reference_signature_is_accepted(server: LiveServer, tenant: dict[str, str]) -> None:
    """A V1 request signed by the independent reference code (not hpcplane.testing) is accepted."""
    params = {
        "Action": "ListTasks",
        "Version": "2018-04-12",
        "Format": "JSON",
        "AccessKeyId": tenant["AccessKeyId"],
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "SignatureType": "",
        "SignatureNonce": f"ref-{time.time_ns()}",
        "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ClusterId": tenant["ClusterId"],
    }
    path = "/?" + "&".join(f"{_enc(k)}={_enc(v)}" for k, v in params.items())
    sts = reference_v1_sts("GET", path)
    digest = hmac.new((tenant["AccessKeySecret"] + "&").encode(), sts.encode(), hashlib.sha1).digest()
    path += "&Signature=" + _enc(base64.b64encode(digest).decode())
    assert raw_ok(server.endpoint, SignedRequest("GET", path, {}))["TotalCount"] == 0


@SQLITE_ONLY
@pytest.mark.parametrize("kind", SDK_KINDS)
def test_unknown_access_key_is_not_found(server: LiveServer, kind: str) -> None:
    """An AccessKeyId the server never issued: 404 InvalidAccessKeyId.NotFound."""
    key = {"AccessKeyId": "LTAInotIssuedByThisServ", "AccessKeySecret": "whatever"}
    sdk_error(server.endpoint, kind, key, "ListTasks", {"ClusterId": "x"}, 404, "InvalidAccessKeyId.NotFound")


@SQLITE_ONLY
def test_access_key_not_found_over_raw_http(server: LiveServer) -> None:
    """InvalidAccessKeyId.NotFound carries the RequestId header too."""
    key = {"AccessKeyId": "LTAInotIssuedByThisServ", "AccessKeySecret": "whatever"}
    raw_error(server.endpoint, v1(key), 404, "InvalidAccessKeyId.NotFound")


def test_disabled_key_is_inactive_until_enabled(server: LiveServer, tenant: dict[str, str]) -> None:
    """`keys disable`: 400 InvalidAccessKeyId.Inactive for that key only; `keys enable` restores it."""
    second: dict[str, str] = json.loads(server.cli("keys", "create", "errors", "--json"))
    second["ClusterId"] = tenant["ClusterId"]
    params = {"ClusterId": tenant["ClusterId"]}
    server.cli("keys", "disable", second["AccessKeyId"])
    try:
        for kind in SDK_KINDS:
            sdk_error(server.endpoint, kind, second, "ListTasks", params, 400, "InvalidAccessKeyId.Inactive")
        raw_error(server.endpoint, v3(server.endpoint, second), 400, "InvalidAccessKeyId.Inactive")
        assert server.call("tea-v3", tenant, "ListTasks", **params)["TotalCount"] == 0
    finally:
        server.cli("keys", "enable", second["AccessKeyId"])
    assert server.call("legacy", second, "ListTasks", **params)["TotalCount"] == 0


@pytest.fixture(scope="module")
def skewed_tenant(skewed: LiveServer) -> dict[str, str]:
    """An account with one cluster on the skewed server."""
    return new_tenant(skewed, "skewed")


@pytest.mark.parametrize("kind", SDK_KINDS)
def test_sdk_clock_16_minutes_off_is_expired(
    skewed: LiveServer, skewed_tenant: dict[str, str], kind: str
) -> None:
    """The SDK's own timestamp, 1000 s behind the server's clock: 400 InvalidTimeStamp.Expired."""
    params = {"ClusterId": skewed_tenant["ClusterId"]}
    sdk_error(skewed.endpoint, kind, skewed_tenant, "ListTasks", params, 400, "InvalidTimeStamp.Expired")


@pytest.mark.parametrize(("skew", "ok"), [(-920, False), (-800, True), (800, True), (920, False)])
def test_fifteen_minutes_of_skew_are_accepted(
    skewed: LiveServer, skewed_tenant: dict[str, str], skew: int, ok: bool
) -> None:
    """Up to 15 minutes between the request's time and the server's are accepted, either way."""
    tenant = skewed_tenant
    server_now = datetime.now(UTC) + timedelta(seconds=1000)
    when = server_now + timedelta(seconds=skew)
    for req in (v1(tenant, when=when), v3(skewed.endpoint, tenant, when=when)):
        if ok:
            assert raw_ok(skewed.endpoint, req)["TotalCount"] == 0
        else:
            raw_error(skewed.endpoint, req, 400, "InvalidTimeStamp.Expired")


@SQLITE_ONLY
@pytest.mark.parametrize(
    "stamp",
    ["2024-05-01 12:00:00", "2024-05-01T12:00:00", "2024-05-01T12:00:00+08:00", "yesterday", "1714564800"],
)
def test_malformed_timestamp_is_format_error(server: LiveServer, tenant: dict[str, str], stamp: str) -> None:
    """A signed request whose Timestamp / x-acs-date is not yyyy-MM-ddTHH:mm:ssZ: InvalidTimeStamp.Format."""
    raw_error(server.endpoint, v1(tenant, params={"Timestamp": stamp}), 400, "InvalidTimeStamp.Format")
    req = v3(server.endpoint, tenant, extra_headers={"x-acs-date": stamp})
    raw_error(server.endpoint, req, 400, "InvalidTimeStamp.Format")


@pytest.mark.parametrize("kind", SDK_KINDS)
def test_replayed_sdk_request_is_refused(server: LiveServer, tenant: dict[str, str], kind: str) -> None:
    """An SDK request recorded on the wire and replayed byte for byte: 400 SignatureNonceUsed."""
    with Proxy("127.0.0.1", server.port, record=True) as proxy:
        body = call(
            kind,
            proxy.endpoint,
            tenant["AccessKeyId"],
            tenant["AccessKeySecret"],
            "ListTasks",
            {"ClusterId": tenant["ClusterId"]},
        )
        assert body["TotalCount"] == 0
        assert len(proxy.recorded) == 1
        original = proxy.recorded[0]
    assert b"ListTasks" in original
    replay = send_raw(server.endpoint, original)
    assert replay.status == 400
    assert replay.headers["content-type"] == JSON_TYPE
    payload = json.loads(replay.body)
    assert replay.headers["x-acs-request-id"] == check_body(
        payload, "SignatureNonceUsed", MSG["SignatureNonceUsed"]
    )


def test_reused_nonce_is_refused(server: LiveServer, tenant: dict[str, str]) -> None:
    """A nonce may serve once per AccessKey, in V1 and V3 alike, even for an otherwise new request."""
    nonce = f"fixed-{time.time_ns()}"
    assert raw_ok(server.endpoint, v1(tenant, nonce=nonce))["TotalCount"] == 0
    raw_error(server.endpoint, v1(tenant, nonce=nonce), 400, "SignatureNonceUsed")
    archived = {"ClusterId": tenant["ClusterId"], "Archived": "true"}
    raw_error(server.endpoint, v1(tenant, nonce=nonce, params=archived), 400, "SignatureNonceUsed")
    raw_error(server.endpoint, v3(server.endpoint, tenant, nonce=nonce), 400, "SignatureNonceUsed")
    other = new_tenant(server, f"nonce-{time.time_ns()}")
    assert raw_ok(server.endpoint, v1(other, nonce=nonce))["TotalCount"] == 0


def test_refused_request_does_not_consume_its_nonce(server: LiveServer, tenant: dict[str, str]) -> None:
    """Requests refused before the signature verifies leave the nonce usable (and change nothing)."""
    nonce = f"kept-{time.time_ns()}"
    wrong = {**tenant, "AccessKeySecret": "not-the-secret"}
    raw_error(server.endpoint, v1(wrong, nonce=nonce), 400, "SignatureDoesNotMatch", UNCHECKED)
    old = datetime.now(UTC) - timedelta(hours=1)
    raw_error(server.endpoint, v1(tenant, nonce=nonce, when=old), 400, "InvalidTimeStamp.Expired")
    raw_error(server.endpoint, v1(tenant, nonce=nonce, version="2017-01-01"), 400, "InvalidVersion")
    raw_error(server.endpoint, v1(tenant, "NoSuchAction", nonce=nonce), 404, "InvalidAction.NotFound")
    tampered = with_query(v1(tenant, nonce=nonce), ClusterId="ehpc-hz-other")
    raw_error(server.endpoint, tampered, 400, "SignatureDoesNotMatch", UNCHECKED)
    assert raw_ok(server.endpoint, v1(tenant, nonce=nonce))["TotalCount"] == 0
    raw_error(server.endpoint, v1(tenant, nonce=nonce), 400, "SignatureNonceUsed")


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("variant", "reason"),
    [
        ("none", "The request carries neither an Authorization header nor a Signature."),
        ("malformed", "The Authorization header is malformed."),
        ("unsigned-acs-header", "Header x-acs-extra must be signed."),
        ("unsigned-host", "Header host must be signed."),
    ],
)
def test_incomplete_signature(server: LiveServer, tenant: dict[str, str], variant: str, reason: str) -> None:
    """No signature at all, a malformed Authorization, or a required header left unsigned: 400."""
    if variant == "none":
        req = with_query(v1(tenant), Signature=None, AccessKeyId=None)
    elif variant == "malformed":
        req = with_headers(v3(server.endpoint, tenant), authorization="ACS3-HMAC-SHA256 Credential")
    elif variant == "unsigned-acs-header":
        req = with_headers(v3(server.endpoint, tenant), **{"x-acs-extra": "1"})
    else:
        signed = v3(server.endpoint, tenant)
        auth = signed.headers["authorization"].replace(";host;", ";", 1)
        assert auth != signed.headers["authorization"]
        req = with_headers(signed, authorization=auth)
    raw_error(server.endpoint, req, 400, "IncompleteSignature", INCOMPLETE + reason)


@SQLITE_ONLY
@pytest.mark.parametrize("variant", ["HMAC-SHA256", "version-2.0", "ACS3-RSA-SHA256", "ACS3-HMAC-MD5"])
def test_invalid_signature_method(server: LiveServer, tenant: dict[str, str], variant: str) -> None:
    """V1 with a SignatureMethod other than HMAC-SHA1 or version other than 1.0; an unknown ACS3-*."""
    if variant == "HMAC-SHA256":
        req = v1(tenant, params={"ClusterId": tenant["ClusterId"], "SignatureMethod": "HMAC-SHA256"})
    elif variant == "version-2.0":
        req = v1(tenant, params={"ClusterId": tenant["ClusterId"], "SignatureVersion": "2.0"})
    else:
        signed = v3(server.endpoint, tenant)
        auth = signed.headers["authorization"].replace("ACS3-HMAC-SHA256", variant, 1)
        req = with_headers(signed, authorization=auth)
    raw_error(server.endpoint, req, 400, "InvalidSignatureMethod")


@SQLITE_ONLY
@pytest.mark.parametrize("kind", SDK_KINDS)
def test_unknown_action_is_not_found(server: LiveServer, tenant: dict[str, str], kind: str) -> None:
    """An action E-HPC does not have, sent through the SDK's generic call: 404 InvalidAction.NotFound."""
    sdk_error(server.endpoint, kind, tenant, "ListWidgetsNowhere", {}, 404, "InvalidAction.NotFound")


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v1/ListTasks"), ("POST", "/ehpc"), ("DELETE", "/x/y")]
)
def test_path_other_than_root_is_not_found(
    server: LiveServer, tenant: dict[str, str], method: str, path: str
) -> None:
    """RPC lives at `/` only: any other path is 404 InvalidAction.NotFound, even when well signed."""
    query = v1(tenant).url_path[1:]
    raw_error(server.endpoint, SignedRequest(method, path + query, {}), 404, "InvalidAction.NotFound")


@SQLITE_ONLY
@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
def test_method_other_than_get_or_post_is_not_found(
    server: LiveServer, tenant: dict[str, str], method: str
) -> None:
    """RPC takes GET and POST: another method at `/` is 404 InvalidAction.NotFound, a JSON error."""
    req = v1(tenant)
    raw_error(server.endpoint, SignedRequest(method, req.url_path, {}), 404, "InvalidAction.NotFound")


@SQLITE_ONLY
def test_invalid_version(server: LiveServer, tenant: dict[str, str]) -> None:
    """A Version other than 2018-04-12, in the query (V1) or in x-acs-version (V3): 400 InvalidVersion."""
    raw_error(server.endpoint, v1(tenant, version="2017-01-01"), 400, "InvalidVersion")
    raw_error(server.endpoint, v3(server.endpoint, tenant, version="2017-01-01"), 400, "InvalidVersion")


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("name", "build"),
    [
        ("SignatureNonce", "v1-nonce"),
        ("Timestamp", "v1-timestamp"),
        ("AccessKeyId", "v1-key"),
        ("Version", "v1-version"),
        ("Action", "v1-action"),
        ("x-acs-date", "v3-date"),
        ("x-acs-signature-nonce", "v3-nonce"),
    ],
)
def test_missing_parameter(server: LiveServer, tenant: dict[str, str], name: str, build: str) -> None:
    """A mandatory protocol parameter that is blank or absent: 400 MissingParameter naming it."""
    cluster = {"ClusterId": tenant["ClusterId"]}
    if build == "v1-nonce":
        req = v1(tenant, params={**cluster, "SignatureNonce": ""})
    elif build == "v1-timestamp":
        req = with_query(v1(tenant), Timestamp=None)
    elif build == "v1-key":
        req = with_query(v1(tenant), AccessKeyId=None)
    elif build == "v1-version":
        req = v1(tenant, version="")
    elif build == "v1-action":
        req = v1(tenant, "")
    else:
        req = v3(server.endpoint, tenant, extra_headers={name: ""})
    raw_error(server.endpoint, req, 400, "MissingParameter", missing(name))


# ------------------------------------------------------------------------------------- form bodies


def _form_request(tenant: dict[str, str], form: dict[str, str], *, sign_form: bool = True) -> SignedRequest:
    """A V1 POST: protocol parameters in the query, `form` in an x-www-form-urlencoded body."""
    signed = sign_v1(
        "ListTasks",
        form if sign_form else {},
        tenant["AccessKeyId"],
        tenant["AccessKeySecret"],
        method="POST",
    )
    query = dict(parse_qsl(urlsplit(signed.url_path).query, keep_blank_values=True))
    for name in form:
        query.pop(name, None)
    return SignedRequest(
        "POST",
        "/?" + urlencode(query),
        {"content-type": "application/x-www-form-urlencoded"},
        urlencode(form).encode(),
    )


def test_post_form_body_is_accepted(server: LiveServer, tenant: dict[str, str]) -> None:
    """POST with a form-encoded body: its parameters are part of the call and of the V1 signature."""
    services = server.services
    record_task(
        services.db,
        services.clock,
        account_id=tenant["AccountId"],
        cluster_id=tenant["ClusterId"],
        task_type=TaskType.START_CLUSTER,
        total_steps=5,
        status=TaskStatus.SUCCESS,
        current_step=5,
    )
    form = {"ClusterId": tenant["ClusterId"], "Archived": "true", "PageSize": "5"}
    body = raw_ok(server.endpoint, _form_request(tenant, form))
    assert (body["TotalCount"], body["PageSize"]) == (1, 5)
    unsigned = _form_request(tenant, form, sign_form=False)
    raw_error(server.endpoint, unsigned, 400, "SignatureDoesNotMatch", UNCHECKED)


@SQLITE_ONLY
def test_post_form_body_with_v3(server: LiveServer, tenant: dict[str, str]) -> None:
    """V3 POST with a form body (hashed, content-type signed): the form parameters are read."""
    form = urlencode({"ClusterId": tenant["ClusterId"], "PageSize": "7"}).encode()
    req = v3(
        server.endpoint,
        tenant,
        params={},
        method="POST",
        body=form,
        extra_headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert raw_ok(server.endpoint, req)["PageSize"] == 7
    raw_error(
        server.endpoint,
        SignedRequest("POST", req.url_path, req.headers, form + b"0"),
        400,
        "SignatureDoesNotMatch",
        UNCHECKED,
    )
