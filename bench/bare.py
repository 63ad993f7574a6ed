"""The ListTasks benchmark's baseline: a bare ASGI callable answering a constant body of a page's size.

`python -m bench.bare --port N` serves it under uvicorn with the settings `hpcplane serve` uses: the
same `hpcplane.serving.uvicorn_config` (no access log, lifespan on, no proxy headers, 5 s graceful
shutdown, uvicorn's default HTTP implementation and event loop), logging configured by hpcplane.logs at
the same level. HPCPLANE_BENCH_BODY_BYTES is the body's length (the benchmark passes
the length of one real ListTasks page of 10 tasks).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

_SIZE = int(os.environ.get("HPCPLANE_BENCH_BODY_BYTES", "2300"))
_HEAD = b'{"RequestId":"00000000-0000-0000-0000-000000000000","Tasks":["'
_TAIL = b'"]}'
_BODY = _HEAD + b"x" * max(0, _SIZE - len(_HEAD) - len(_TAIL)) + _TAIL
_HEADERS = [
    (b"content-type", b"application/json;charset=utf-8"),
    (b"content-length", str(len(_BODY)).encode()),
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer every HTTP request with the same JSON body (and accept lifespan events)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from hpcplane import logs
    from hpcplane.serving import uvicorn_config

    parser = argparse.ArgumentParser(prog="python -m bench.bare", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    logs.configure(args.log_level, "console")
    config = uvicorn_config(app, host=args.host, port=args.port, log_level=args.log_level)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
