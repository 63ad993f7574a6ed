"""The RPC edge (hpcplane/edge.py): what a call at `/` gets without Starlette, driven as raw ASGI with a
stand-in for Gateway.handle, and the call threads it hands calls to."""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import Mapping
from typing import Any

import orjson
import pytest

from hpcplane.api.protocol import RpcRequest
from hpcplane.edge import Admission, CallThreads, Message, RpcEdge, Scope, source_ip

LIMIT = 100


class Handler:
    """Gateway.handle's stand-in: records what it was given, answers `answer` (or raises `fail`)."""

    def __init__(self, fail: Exception | None = None, extra: Mapping[str, str] | None = None) -> None:
        self.calls: list[tuple[RpcRequest, str, str]] = []
        self.fail = fail
        self.extra = extra or {}

    def __call__(self, req: RpcRequest, request_id: str) -> tuple[int, dict[str, object], Mapping[str, str]]:
        self.calls.append((req, request_id, threading.current_thread().name))
        if self.fail is not None:
            raise self.fail
        return 200, {"RequestId": request_id, "Echo": req.params.get("Action")}, self.extra


class Fallback:
    """The Starlette app's stand-in: counts what it was handed."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []
        self.state = object()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        await send({"type": "http.response.start", "status": 299, "headers": [(b"content-length", b"8")]})
        await send({"type": "http.response.body", "body": b"fallback"})


def edge(handler: Handler, *, trusted: str = "", limit: int = 256, threads: int = 4) -> RpcEdge:
    networks = [ipaddress.ip_network(n) for n in trusted.split(",") if n]
    return RpcEdge(
        handler,
        Admission(limit),
        CallThreads(threads),
        Fallback(),
        host_id="test-host",
        trusted=networks,
        max_body=LIMIT,
    )


def scope(
    method: str = "GET", path: str = "/", query: bytes = b"Action=ListTasks", headers: list[Any] | None = None
) -> Scope:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "query_string": query,
        "headers": headers or [(b"host", b"test")],
        "client": ("10.0.0.9", 4000),
        "scheme": "http",
    }


def call(
    app: RpcEdge, request: Scope, chunks: list[Message] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Run one request through `app`: (status, headers, body)."""
    incoming = list(chunks or [{"type": "http.request", "body": b"", "more_body": False}])
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(request, receive, send))
    start, body = sent
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    assert int(headers["content-length"]) == len(body["body"])
    return start["status"], headers, body["body"]


def test_a_call_reaches_the_handler_on_a_call_thread_and_its_answer_is_json() -> None:
    handler = Handler(extra={"Retry-After": "7"})
    status, headers, body = call(edge(handler), scope())
    assert status == 200
    (req, request_id, thread), *_ = handler.calls
    assert thread.startswith("hpcplane-call-")
    assert (req.params["Action"], req.client_ip, req.method) == ("ListTasks", "10.0.0.9", "GET")
    assert headers["x-acs-request-id"] == request_id
    assert headers["content-type"] == "application/json;charset=utf-8"
    assert headers["retry-after"] == "7"
    assert orjson.loads(body) == {"RequestId": request_id, "Echo": "ListTasks"}


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
def test_get_head_and_post_at_the_root_are_the_edge_s(method: str) -> None:
    handler = Handler()
    app = edge(handler)
    assert call(app, scope(method))[0] == 200
    assert len(handler.calls) == 1


@pytest.mark.parametrize(
    ("method", "path"), [("PUT", "/"), ("GET", "/healthz"), ("POST", "/x"), ("GET", "//")]
)
def test_every_other_request_goes_to_starlette(method: str, path: str) -> None:
    handler = Handler()
    app = edge(handler)
    assert call(app, scope(method, path)) == (299, {"content-length": "8"}, b"fallback")
    assert isinstance(app.fallback, Fallback)
    assert [s["path"] for s in app.fallback.scopes] == [path]
    assert handler.calls == []


def test_a_root_path_is_taken_off_before_matching() -> None:
    handler = Handler()
    request = {**scope(path="/api/"), "root_path": "/api"}
    assert call(edge(handler), request)[0] == 200
    assert len(handler.calls) == 1


def test_a_form_body_is_read_from_its_chunks() -> None:
    handler = Handler()
    request = scope("POST", query=b"", headers=[(b"content-type", b"application/x-www-form-urlencoded"),
                                                (b"transfer-encoding", b"chunked")])  # fmt: skip
    chunks: list[Message] = [
        {"type": "http.request", "body": b"Action=Describe", "more_body": True},
        {"type": "http.request", "body": b"Cluster", "more_body": False},
    ]
    assert call(edge(handler), request, chunks)[0] == 200
    assert handler.calls[0][0].params["Action"] == "DescribeCluster"


def test_a_body_over_the_limit_is_refused_from_its_length_or_its_chunks() -> None:
    handler = Handler()
    declared = scope("POST", headers=[(b"content-length", b"%d" % (LIMIT + 1))])
    status, headers, body = call(edge(handler), declared)
    assert (status, headers["connection"], orjson.loads(body)["Code"]) == (
        413,
        "close",
        "RequestEntityTooLarge",
    )
    streamed = scope("POST", headers=[(b"transfer-encoding", b"chunked")])
    chunk: Message = {"type": "http.request", "body": b"x" * 60, "more_body": True}
    assert call(edge(handler), streamed, [chunk, chunk, chunk])[0] == 413
    absurd = scope("POST", headers=[(b"content-length", b"9" * 5000)])
    assert call(edge(handler), absurd)[0] == 413
    assert handler.calls == []


def test_a_client_gone_mid_body_gets_an_empty_answer_and_no_call() -> None:
    handler = Handler()
    request = scope("POST", headers=[(b"content-length", b"50")])
    chunk: Message = {"type": "http.request", "body": b"x" * 10, "more_body": True}
    assert call(edge(handler), request, [chunk]) == (400, {"content-length": "0"}, b"")
    assert handler.calls == []


def test_shutting_down_or_full_is_service_unavailable_in_the_envelope() -> None:
    handler = Handler()
    app = edge(handler, limit=1)
    app.admission.shutting_down = True
    status, headers, body = call(app, scope())
    assert status == 503
    answer = orjson.loads(body)
    assert (answer["Code"], answer["HostId"]) == ("ServiceUnavailable", "test-host")
    assert answer["RequestId"] == headers["x-acs-request-id"]
    app.admission.shutting_down = False
    app.admission.in_flight = 1  # the one slot is taken
    assert call(app, scope())[0] == 503
    app.admission.in_flight = 0
    assert call(app, scope())[0] == 200
    assert app.admission.in_flight == 0  # released after the call
    assert len(handler.calls) == 1


def test_what_escapes_the_handler_is_unknown_error_in_the_envelope() -> None:
    app = edge(Handler(fail=RuntimeError("boom")))
    status, headers, body = call(app, scope())
    answer = orjson.loads(body)
    assert (status, answer["Code"]) == (500, "UnknownError")
    assert "boom" not in body.decode()
    assert answer["RequestId"] == headers["x-acs-request-id"]
    assert app.admission.in_flight == 0


def test_x_forwarded_for_counts_only_from_a_trusted_proxy() -> None:
    handler = Handler()
    forwarded = scope(headers=[(b"x-forwarded-for", b"203.0.113.5, 10.0.0.7")])
    call(edge(handler), forwarded)
    call(edge(handler, trusted="10.0.0.0/8"), forwarded)
    assert [c[0].client_ip for c in handler.calls] == ["10.0.0.9", "203.0.113.5"]


def test_source_ip_skips_trusted_hops_and_ignores_garbage() -> None:
    trusted = [ipaddress.ip_network("10.0.0.0/8")]
    assert source_ip("10.0.0.1", "1.2.3.4, 10.0.0.2", trusted) == "1.2.3.4"
    assert source_ip("10.0.0.1", "10.0.0.3, 10.0.0.2", trusted) == "10.0.0.1"
    assert source_ip("192.0.2.1", "1.2.3.4", trusted) == "192.0.2.1"
    assert source_ip("10.0.0.1", "not-an-ip", trusted) == "not-an-ip"


def test_call_threads_start_as_needed_reuse_the_last_idle_and_queue_past_the_limit() -> None:
    pool = CallThreads(2)
    gate = threading.Event()
    names: list[str] = []

    def work(n: int) -> int:
        gate.wait(5)
        names.append(threading.current_thread().name)
        return n * 2

    async def run() -> list[int]:
        calls = [asyncio.ensure_future(pool.run(work, n)) for n in range(5)]
        await asyncio.sleep(0.05)
        gate.set()
        results = await asyncio.gather(*calls)
        names.clear()
        for n in range(3):  # one at a time: the thread that went idle last takes each
            await pool.run(work, n)
        return results

    assert asyncio.run(run()) == [0, 2, 4, 6, 8]
    assert len(set(names)) == 1
    assert pool._count == 2


def test_call_threads_hand_back_exceptions_and_stop() -> None:
    pool = CallThreads(3)

    def fail() -> None:
        raise KeyError("k")

    async def run() -> threading.Thread:
        with pytest.raises(KeyError):
            await pool.run(fail)
        thread = await pool.run(threading.current_thread)
        assert thread is not threading.current_thread()
        pool.stop()
        return thread

    thread = asyncio.run(run())
    thread.join(5)
    assert not thread.is_alive()
    assert pool._count == 0


def test_a_call_after_stop_still_runs_on_a_thread_that_then_ends() -> None:
    pool = CallThreads(2)

    async def run() -> threading.Thread:
        pool.stop()
        return await pool.run(threading.current_thread)

    thread = asyncio.run(asyncio.wait_for(run(), 5))
    assert thread.name.startswith("hpcplane-call-")
    thread.join(5)
    assert not thread.is_alive()
    assert pool._count == 0
