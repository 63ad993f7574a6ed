"""Raw TCP clients for the transport tests: exact bytes out, one response in, and when the server hangs up."""

from __future__ import annotations

import json
import select
import socket
import time
from dataclasses import dataclass
from typing import Any

ENVELOPE_FIELDS = {"RequestId", "HostId", "Code", "Message", "Recommend"}
JSON_TYPE = "application/json;charset=utf-8"


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def envelope(self, code: str) -> dict[str, Any]:
        """The body as the JSON error envelope with this Code (and the request id header matching it)."""
        assert self.headers.get("content-type") == JSON_TYPE, self
        body: dict[str, Any] = json.loads(self.body)
        assert set(body) == ENVELOPE_FIELDS, body
        assert body["Code"] == code, body
        assert body["HostId"] == "ehpc.cn-hangzhou.aliyuncs.com"
        assert self.headers.get("x-acs-request-id") == body["RequestId"]
        return body


def connect(endpoint: str) -> socket.socket:
    host, port = endpoint.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=15)


def parse(data: bytes) -> RawResponse | None:
    """The complete response at the start of `data`, or None while more must arrive."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = data[:end].decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if len(data) < end + 4 + length:
        return None
    return RawResponse(int(lines[0].split()[1]), headers, data[end + 4 : end + 4 + length])


def read_response(sock: socket.socket, timeout: float = 15.0) -> RawResponse:
    """Read one whole response; fail if the server hangs up or says nothing before `timeout`."""
    deadline = time.monotonic() + timeout
    data = b""
    while (response := parse(data)) is None:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no whole response within {timeout}s: {data[:200]!r}"
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a whole response: {data[:200]!r}"
        data += chunk
    return response


def exchange(endpoint: str, raw: bytes) -> RawResponse:
    """Send `raw` on a new connection and read the answer."""
    with connect(endpoint) as sock:
        sock.sendall(raw)
        return read_response(sock)


def hung_up(sock: socket.socket, timeout: float) -> bool:
    """True once the server has closed the connection (EOF or reset), False if still open at `timeout`."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        if poller.poll(remaining * 1000):
            try:
                if not sock.recv(65536):
                    return True
            except OSError:
                return True
    return False
