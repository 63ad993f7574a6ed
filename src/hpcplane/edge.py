"""The RPC endpoint as a raw ASGI callable, in front of Starlette (docs/decisions/0056).

Every signed call arrives at `/` (GET, HEAD or POST): `RpcEdge` answers those itself, reading the
ASGI scope and messages directly, and hands every other request (the console, /healthz, /metrics, the
control API, other paths and methods, lifespan) to the Starlette application behind it. What a call at
`/` gets is what Starlette's route gave it: the body bounded (refused from Content-Length, counted
while it streams), admission and shutdown (503), the source IP behind trusted proxies, the request id
header, every error in the JSON envelope; the body is rendered once and the headers are bytes built
once. `Gateway.handle` runs on `CallThreads`, a small pool of its own (decision 0057), not anyio's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import queue
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, TypeVar

import structlog

from hpcplane import ids
from hpcplane.api.errors import error_response
from hpcplane.api.protocol import JSON_TYPE, REQUEST_ID_HEADER, RpcRequest, build_request, render
from hpcplane.domain.errors import BodyTooLarge, HpcplaneError, ServiceUnavailable, UnknownError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Networks = list[ipaddress.IPv4Network | ipaddress.IPv6Network]
T = TypeVar("T")
# Gateway.handle: (HTTP status, JSON body, headers besides the request id) of one call.
Handle = Callable[[RpcRequest, str], tuple[int, dict[str, object], Mapping[str, str]]]

log = structlog.get_logger("hpcplane.edge")

RPC_METHODS = frozenset({"GET", "HEAD", "POST"})  # HEAD: Starlette's route added it to GET's
_CONTENT_TYPE = (b"content-type", JSON_TYPE.encode("latin-1"))
_REQUEST_ID = REQUEST_ID_HEADER.encode("latin-1")
_CLOSE = (b"connection", b"close")


class _Gone(Exception):
    """The client went away before its body was read whole."""


def source_ip(peer: str, forwarded: str | None, trusted: Networks) -> str:
    """The TCP peer; behind a trusted proxy, the nearest X-Forwarded-For hop that is not a trusted proxy."""

    def is_trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in trusted)

    if not forwarded or not is_trusted(peer):
        return peer
    for hop in reversed([part.strip() for part in forwarded.split(",") if part.strip()]):
        if not is_trusted(hop):
            return hop
    return peer


class Admission:
    """Counts requests in flight; refuses more than the limit, and everything once shutting down."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self.shutting_down = False

    def admit(self) -> bool:
        if self.shutting_down or self.in_flight >= self.limit:
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1


class CallThreads:
    """Runs blocking calls on up to `size` threads, started as calls need them, for one event loop.

    Every decision is taken on the loop's thread, so nothing takes a lock: a call goes to the thread
    that went idle last (its caches are the warmest; at light load one or two threads do all the
    work), else to a new thread while there are fewer than `size`, else it waits in a backlog that a
    thread takes from as it finishes. A call costs one put on that thread's own queue and one
    `call_soon_threadsafe` back: no concurrent.futures.Future, capacity limiter or cancel scope."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: list[_Thread] = []
        self._backlog: deque[_Call] = deque()
        self._count = 0
        self._stopped = False

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        call = (fn, args, future)
        if self._idle:
            self._idle.pop().calls.put(call)
        elif self._count < self.size:
            self._count += 1
            _Thread(self, loop, f"hpcplane-call-{self._count}").calls.put(call)
        else:
            self._backlog.append(call)
        return await future

    def _done(self, thread: _Thread, future: asyncio.Future[Any], ok: bool, value: Any) -> None:
        """On the loop: the call's answer to its coroutine, and the thread its next call or idle."""
        if self._backlog:
            thread.calls.put(self._backlog.popleft())
        elif self._stopped:
            self._count -= 1
            thread.calls.put(None)
        else:
            self._idle.append(thread)
        if future.cancelled():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def stop(self) -> None:
        """On the loop: every thread ends once it has no call left (without waiting for it); a call that
        still comes gets a thread that ends after it."""
        self._stopped = True
        idle, self._idle = self._idle, []
        self._count -= len(idle)
        for thread in idle:
            thread.calls.put(None)


_Call = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]


class _Thread:
    """One thread of a CallThreads: runs the calls put on its queue until it gets None."""

    def __init__(self, pool: CallThreads, loop: asyncio.AbstractEventLoop, name: str) -> None:
        self.calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._pool = pool
        self._loop = loop
        threading.Thread(target=self._work, name=name, daemon=True).start()

    def _work(self) -> None:
        take, done, back = self.calls.get, self._pool._done, self._loop.call_soon_threadsafe
        while (call := take()) is not None:
            fn, args, future = call
            try:
                outcome: tuple[bool, Any] = (True, fn(*args))
            except BaseException as exc:  # handed to the awaiting coroutine
                outcome = (False, exc)
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits for the answer
                back(done, self, future, *outcome)
            del call, fn, args, future, outcome


class RpcEdge:
    """The ASGI application `serve` runs: the RPC endpoint itself, everything else through `fallback`."""

    def __init__(
        self,
        handle: Handle,
        admission: Admission,
        threads: CallThreads,
        fallback: ASGIApp,
        *,
        host_id: str,
        trusted: Networks,
        max_body: int,
    ) -> None:
        self.handle = handle
        self.admission = admission
        self.threads = threads
        self.fallback = fallback
        self.state: Any = getattr(fallback, "state", None)
        self._host_id = host_id
        self._trusted = trusted
        self._max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in RPC_METHODS and _route_path(scope) == "/":
            await self.rpc(scope, receive, send)
        else:
            await self.fallback(scope, receive, send)

    async def rpc(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = ids.request_id()
        try:
            try:
                body = await self._body(scope, receive)
            except _Gone:
                await _answer(send, 400, b"", [])  # nobody reads it: the client is gone
                return
            if body is None:
                await self._error(send, BodyTooLarge(limit=str(self._max_body)), request_id, close=True)
                return
            admission = self.admission
            if not admission.admit():
                await self._error(send, ServiceUnavailable(), request_id)
                return
            try:
                status, payload, extra = await self.threads.run(
                    self.handle, self._request(scope, body), request_id
                )
            finally:
                admission.release()
        except Exception:  # what escaped: UnknownError's envelope, as Starlette's handler gave it
            log.exception("unhandled error at the RPC endpoint", request_id=request_id)
            await self._error(send, UnknownError(), request_id)
            return
        await _answer(send, status, render(payload), _headers(request_id, extra))

    def _request(self, scope: Scope, body: bytes) -> RpcRequest:
        client = scope.get("client") or ("", 0)
        forwarded: str | None = None
        if self._trusted:
            for name, value in scope["headers"]:
                if name == b"x-forwarded-for":
                    forwarded = value.decode("latin-1")
                    break
        return build_request(
            method=scope["method"],
            path=scope["path"],
            raw_query=scope.get("query_string", b""),
            raw_headers=scope["headers"],
            body=body,
            client_ip=source_ip(client[0], forwarded, self._trusted),
            secure=scope.get("scheme") == "https",
        )

    async def _body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The body, or None when it is larger than allowed: refused before it is read whole (under
        `serve` the connection guard refuses it earlier still, from Content-Length)."""
        length: bytes | None = None
        framed = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length, framed = value.strip(), True
            elif name == b"transfer-encoding":
                framed = True
        if not framed:
            return b""  # the SDKs send none: no receive() at all
        limit = self._max_body
        if length is not None and length.isdigit() and (len(length) > 19 or int(length) > limit):
            return None
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Gone
            body += message.get("body", b"")
            if len(body) > limit:
                return None
            if not message.get("more_body", False):
                return bytes(body)

    async def _error(self, send: Send, exc: HpcplaneError, request_id: str, *, close: bool = False) -> None:
        response = error_response(exc, request_id, self._host_id)
        headers = _headers(request_id, None)
        if close:
            headers.append(_CLOSE)
        await _answer(send, response.status, render(response.body), headers)


def _route_path(scope: Scope) -> str:
    """The path Starlette's router would match: without the root path (none unless configured)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _headers(request_id: str, extra: Mapping[str, str] | None) -> list[tuple[bytes, bytes]]:
    headers = [_CONTENT_TYPE, (_REQUEST_ID, request_id.encode("latin-1"))]
    if extra:
        headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
    return headers


async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers.append((b"content-length", b"%d" % len(body)))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
