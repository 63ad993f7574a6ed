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
from collections.abc import Callable
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


def envelope_bytes(error: e.HpcplaneError, host_id: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A whole HTTP/1.1 response: the error's status and JSON envelope, then the connection closes."""
    request_id = ids.request_id()
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
    """HttpToolsProtocol with the limits of `Limits`; a subclass made by `guarded_protocol` sets them."""

    limits: Limits
    idle: dict[GuardedProtocol, None]  # connections waiting for a request, oldest first (one per server)

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._timer: asyncio.TimerHandle | None = None
        self._in_head = False
        self._head_bytes = 0
        self._body_bytes = 0
        self._refused = False
        self._over_limit = False

    # --- timers

    def _arm(self, seconds: float, fire: Callable[[], None]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(seconds, fire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _close_idle(self) -> None:
        self._timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _slow_request(self) -> None:
        self._timer = None
        seconds = self.limits.header_timeout if self._in_head else self.limits.body_timeout
        self._refuse(e.RequestTimeout(seconds=f"{seconds:g}"))

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
        self.idle[self] = None
        self._arm(self.limits.idle_timeout, self._close_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
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
        if self._in_head:
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
        self._in_head = True
        self._head_bytes = 0
        self._body_bytes = 0
        self._arm(self.limits.header_timeout, self._slow_request)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.max_url_bytes:
            self._refuse(e.UrlTooLong(limit=str(self.limits.max_url_bytes)))
            raise _Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self.limits.max_header_bytes:
            self._refuse(e.HeadersTooLarge(limit=str(self.limits.max_header_bytes)))
            raise _Refused

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        has_body = False
        for name, value in self.headers:
            if name == b"content-length":
                has_body = value.strip() not in (b"", b"0")
                if has_body and _too_long(value, self.limits.max_body_bytes):
                    self._refuse(e.BodyTooLarge(limit=str(self.limits.max_body_bytes)))
                    raise _Refused
            elif name == b"transfer-encoding":
                has_body = True
        super().on_headers_complete()
        if has_body:
            self._arm(self.limits.body_timeout, self._slow_request)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self.limits.max_body_bytes:
            self._refuse(e.BodyTooLarge(limit=str(self.limits.max_body_bytes)))
            raise _Refused
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._timer is not None and not self._in_head:
            self._disarm()
        super().on_message_complete()

    # --- refusing

    def _refuse(self, error: e.HpcplaneError) -> None:
        """Answer with the error's envelope, stop parsing, half-close, and drop what still arrives."""
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        self.logger.info("refused %s:%d: %s", *(self.client or ("-", 0)), error.code)
        self._disarm()
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
        self.transport.write(envelope_bytes(error, self.limits.host_id, self.server_state.default_headers))
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._timer = self.loop.call_later(LINGER_SECONDS, self._close_idle)
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
    GuardedHttpProtocol.idle = {}
    return GuardedHttpProtocol
