"""A threaded TCP forwarding proxy, to cut a server off from its database or to record SDK requests.

``Proxy(host, port)`` listens on 127.0.0.1 (a free port, or the one given) and forwards every client
connection to ``host:port``. ``close()`` stops listening and drops the live connections, so the port
becomes a closed port; a new ``Proxy(..., port=old.port)`` brings it back. With ``record=True`` the first
HTTP request of each client connection is kept byte for byte in ``recorded``, so a test can replay an
exact SDK request with :func:`send_raw`.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from dataclasses import dataclass

_CHUNK = 65536


def _request_length(buffer: bytes) -> int | None:
    """The length of the complete HTTP request at the start of `buffer`, or None if more must arrive."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    length = 0
    for line in buffer[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    total = end + 4 + length
    return total if len(buffer) >= total else None


class Proxy:
    """Forwards 127.0.0.1:<port> to a target; see the module docstring."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        port: int = 0,
        record: bool = False,
        host: str = "127.0.0.1",
        keepalive: int | None = None,
    ) -> None:
        """`keepalive` (seconds): probe idle clients, and drop a client (and its upstream) that stopped
        answering, as a server's own TCP keepalive would without a proxy in between."""
        self.target = (target_host, target_port)
        self.record = record
        self.keepalive = keepalive
        self.recorded: list[bytes] = []
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()
        self._listener = socket.create_server((host, port))  # SO_REUSEADDR: a port can be reused
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self.endpoint = f"{host}:{self.port}"
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"proxy-{self.port}", daemon=True)
        self._acceptor.start()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            if self.keepalive is not None:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, self.keepalive)
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._closed.is_set():
                    client.close()
                    upstream.close()
                    return
                self._sockets |= {client, upstream}
                for src, dst, record in ((client, upstream, self.record), (upstream, client, False)):
                    thread = threading.Thread(target=self._pump, args=(src, dst, record), daemon=True)
                    self._threads.append(thread)
                    thread.start()

    def _pump(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        buffer = b""
        try:
            while True:
                data = src.recv(_CHUNK)
                if not data:
                    break
                if record:
                    buffer += data
                    length = _request_length(buffer)
                    if length is not None:
                        with self._lock:
                            self.recorded.append(buffer[:length])
                        record, buffer = False, b""
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(src)
            self._drop(dst)

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def close(self) -> None:
        """Stop listening and drop every live connection; the port is closed when this returns."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._acceptor.join()
        self._listener.close()
        with self._lock:
            live = list(self._sockets)
            threads = list(self._threads)
        for sock in live:
            self._drop(sock)
        for thread in threads:
            thread.join(5)


@dataclass(frozen=True, slots=True)
class RawResponse:
    """An HTTP response read off a raw socket; header names are lower case."""

    status: int
    headers: dict[str, str]
    body: bytes


def send_raw(endpoint: str, data: bytes, timeout: float = 10.0) -> RawResponse:
    """Send `data` (one complete HTTP request) to "host:port" over a new socket; read one response."""
    host, _, port = endpoint.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock)
        try:
            response.begin()
            body = response.read()
        finally:
            response.close()
        return RawResponse(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
