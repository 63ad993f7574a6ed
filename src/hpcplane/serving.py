"""How `hpcplane serve` configures uvicorn; importing it loads nothing else of hpcplane, so the
benchmark's bare baseline (bench/bare.py) runs under the same settings at its own memory cost."""

from __future__ import annotations

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
) -> uvicorn.Config:
    """How `serve` runs uvicorn (the benchmark's bare baseline runs under the same)."""
    return uvicorn.Config(
        app,
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
