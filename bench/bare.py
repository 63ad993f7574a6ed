"""The ListTasks benchmark's baseline: a bare ASGI callable answering a constant body of a page's size."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

_SIZE = int(os.environ.get("HPCPLANE_BENCH_BODY_BYTES", "2300"))
_BODY = b'{"RequestId":"00000000-0000-0000-0000-000000000000","Tasks":["' + b"x" * max(0, _SIZE - 70) + b'"]}'
_HEADERS = [
    (b"content-type", b"application/json;charset=utf-8"),
    (b"content-length", str(len(_BODY)).encode()),
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer every HTTP request with the same JSON body."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})
