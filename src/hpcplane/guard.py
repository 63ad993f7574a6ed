"""The connection guard: uvicorn's httptools protocol with the limits it lacks (docs/decisions/0023).

uvicorn bounds neither the request head nor the body, has no header-read or first-byte timeout, and
answers its own refusals in plain text. `guarded_protocol(limits)` is the protocol class `serve` runs;
per connection it adds:

* a first-byte (idle) timeout, a head timeout from a request's first byte, a body timeout from its
  head: an idle connection is closed, a slow request gets 408 RequestTimeout;
* bounds on the URL (414), the request line and headers (431) and the body (413, from Content-Length
  before any byte of it is read, and counted as chunks arrive), enforced before the app sees anything;
* a connection limit that sheds the longest-idle connection (never sent a byte, or between requests)
  to admit a new one, and answers 503 when every connection is busy;
* the JSON error envelope on every refusal of its own and on unparseable HTTP, then a lingering close
  (our side half-closed, the rest of the client's body read and dropped for a moment), so the client
  reads the answer instead of a reset.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httptools
import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from hpcplane import ids
from hpcplane.api.errors import error_response
from hpcplane.domain import errors as e

# How long, and how much, a refused connection goes on reading (and dropping) of what the client sends.
LINGER_SECONDS = 2.0
LINGER_BYTES = 1 << 20
# How often a server looks for connections past their deadline: timeouts are this much late at most.
SWEEP_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds one server enforces (Settings' fields of the same names)."""

    host_id: str
    max_body_bytes: int = 262144
    max_url_bytes: int = 32768
    max_header_bytes: int = 65536
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idle_timeout: float = 10.0
    max_connections: int = 1000


class _Refused(Exception):
    """Raised from a parser callback to stop parsing once the connection has been answered."""


def envelope_bytes(
    error: e.HpcplaneError, request_id: str, host_id: str, default_headers: list[tuple[bytes, bytes]]
) -> bytes:
    """A whole HTTP/1.1 response: the error's status and JSON envelope, then the connection closes."""
    response = error_response(error, request_id, host_id)
    body = orjson.dumps(response.body)
    lines = [STATUS_LINE[response.status]]
    for name, value in default_headers:
        lines += [name, b": ", value, b"\r\n"]
    lines += [
        b"content-type: application/json;charset=utf-8\r\n",
        b"content-length: %d\r\n" % len(body),
        b"x-acs-request-id: " + request_id.encode("ascii") + b"\r\n",
        b"connection: close\r\n\r\n",
        body,
    ]
    return b"".join(lines)


class GuardedProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with the limits of `Limits`; a subclass made by `guarded_protocol` sets them.

    A request pays for no timer: it sets a deadline (a float), and one sweep a server, every
    SWEEP_SECONDS, acts on the deadlines that have passed."""

    limits: Limits
    live: set[GuardedProtocol]  # this server's connections
    idle: dict[GuardedProtocol, None]  # those waiting for a request, oldest first
    sweeper: list[asyncio.TimerHandle]  # the running sweep, if any

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._deadline: float | None = None  # when the wait named by _waiting_for ends
        self._waiting_for = "idle"  # "idle" (no byte yet), "head", "body" or "linger"
        self._head_bytes = 0
        self._body_bytes = 0
        self._refused = False
        self._over_limit = False

    # --- deadlines

    def _expire(self) -> None:
        self._deadline = None
        if self._waiting_for in ("idle", "linger"):
            if not self.transport.is_closing():
                self.transport.close()
            return
        seconds = self.limits.header_timeout if self._waiting_for == "head" else self.limits.body_timeout
        self._refuse(e.RequestTimeout(seconds=f"{seconds:g}"))

    @classmethod
    def _sweep(cls, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for connection in [c for c in cls.live if c._deadline is not None and c._deadline <= now]:
            connection._expire()
        cls.sweeper.clear()
        if cls.live:
            cls.sweeper.append(loop.call_later(SWEEP_SECONDS, cls._sweep, loop))

    # --- connection life

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            oldest = next(iter(self.idle), None)
            if oldest is None:
                self._over_limit = True
            else:
                del self.idle[oldest]
                oldest.transport.close()
        cls = type(self)
        cls.live.add(self)
        self.idle[self] = None
        self._deadline = self.loop.time() + self.limits.idle_timeout
        if not cls.sweeper:
            cls.sweeper.append(self.loop.call_later(SWEEP_SECONDS, cls._sweep, self.loop))

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline = None
        self.live.discard(self)
        self.idle.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """uvicorn's, plus the limits; a refusal of ours is answered once, not again as a parse error."""
        if self._refused:  # lingering: the answer is sent, what follows is dropped, up to a bound
            self._body_bytes += len(data)
            if self._body_bytes > LINGER_BYTES:
                self.transport.close()
            return
        if self._over_limit:
            self._refuse(e.ServiceUnavailable())
            return
        self.idle.pop(self, None)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            return  # CONNECT, or an upgrade we do not speak: the app answers the request as it is
        except httptools.HttpParserError:
            if not self._refused:
                self._refuse(e.MalformedRequest())
            return
        if self._waiting_for == "head":
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(e.HeadersTooLarge(limit=str(self.limits.max_header_bytes)))

    def send_400_response(self, msg: str) -> None:
        """Unparseable HTTP (uvicorn's own plain-text 400): the envelope instead."""
        if not self._refused:
            self._refuse(e.MalformedRequest())

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self.idle[self] = None  # uvicorn's keep-alive timer runs from here

    # --- parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._waiting_for = "head"
        self._deadline = self.loop.time() + self.limits.header_timeout
        self._head_bytes = 0
        self._body_bytes = 0

    def on_headers_complete(self) -> None:
        limits = self.limits
        if len(self.url) > limits.max_url_bytes:
            self._refuse(e.UrlTooLong(limit=str(limits.max_url_bytes)))
            raise _Refused
        size = len(self.url)
        has_body = False
        for name, value in self.headers:
            size += len(name) + len(value) + 4
            if name == b"content-length":
                has_body = value.strip() not in (b"", b"0")
                if has_body and _too_long(value, limits.max_body_bytes):
                    self._refuse(e.BodyTooLarge(limit=str(limits.max_body_bytes)))
                    raise _Refused
            elif name == b"transfer-encoding":
                has_body = True
        if size > limits.max_header_bytes:
            self._refuse(e.HeadersTooLarge(limit=str(limits.max_header_bytes)))
            raise _Refused
        if has_body:
            self._waiting_for = "body"
            self._deadline = self.loop.time() + limits.body_timeout
        else:
            self._waiting_for = "app"
            self._deadline = None
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self.limits.max_body_bytes:
            self._refuse(e.BodyTooLarge(limit=str(self.limits.max_body_bytes)))
            raise _Refused
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._waiting_for == "body":
            self._waiting_for = "app"
            self._deadline = None
        super().on_message_complete()

    # --- refusing

    def _refuse(self, error: e.HpcplaneError) -> None:
        """Answer with the error's envelope, stop parsing, half-close, and drop what still arrives."""
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        request_id = ids.request_id()
        self.logger.info("refused %s:%d: %s %s", *(self.client or ("-", 0)), error.code, request_id)
        self._deadline = None
        self.idle.pop(self, None)
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if cycle.response_started:  # the app is answering: it cannot be replaced, only cut
                self.transport.close()
                return
            cycle.disconnected = True  # the app's receive() now says http.disconnect; its send() is a no-op
            cycle.message_event.set()
        self.pipeline.clear()
        self._body_bytes = 0
        self.transport.write(
            envelope_bytes(error, request_id, self.limits.host_id, self.server_state.default_headers)
        )
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._waiting_for = "linger"
            self._deadline = self.loop.time() + LINGER_SECONDS
        else:
            self.transport.close()


def _too_long(value: bytes, limit: int) -> bool:
    """A Content-Length beyond `limit`; one that is not a number is the parser's to refuse."""
    text = value.strip()
    return text.isdigit() and (len(text) > 19 or int(text) > limit)


def guarded_protocol(limits: Limits) -> type[GuardedProtocol]:
    """A protocol class for one server: its limits, and its own registry of idle connections."""

    class GuardedHttpProtocol(GuardedProtocol):
        pass

    GuardedHttpProtocol.limits = limits
    GuardedHttpProtocol.live = set()
    GuardedHttpProtocol.idle = {}
    GuardedHttpProtocol.sweeper = []
    return GuardedHttpProtocol
