"""How `hpcplane serve` configures uvicorn; importing it loads nothing else of hpcplane, so the
benchmark's bare baseline (bench/bare.py) runs under the same settings at its own memory cost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import uvicorn


def uvicorn_config(
    app: Callable[..., Any],
    *,
    host: str,
    port: int,
    log_level: str,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    http: type[asyncio.Protocol] | None = None,
    timeout_keep_alive: int = 5,
) -> uvicorn.Config:
    """How `serve` runs uvicorn (the benchmark's bare baseline runs under the same); `serve` passes its
    connection guard as `http` (hpcplane.guard), the baseline runs uvicorn's own protocol."""
    return uvicorn.Config(
        app,
        http=http or "auto",
        timeout_keep_alive=timeout_keep_alive,
        host=host,
        port=port,
        access_log=False,
        log_level=log_level,
        lifespan="on",
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        # The client's address is the TCP peer; X-Forwarded-For counts only from HPCPLANE_TRUSTED_PROXIES,
        # which the application applies itself.
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )
