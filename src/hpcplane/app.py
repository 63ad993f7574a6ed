"""create_app(services): the ASGI application: the RPC edge (edge.py) in front of the Starlette app built
here, the only module that knows Starlette."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hpcplane import ids
from hpcplane.api import openapi
from hpcplane.api.errors import error_response
from hpcplane.api.gateway import Gateway
from hpcplane.api.protocol import JSON_TYPE, REQUEST_ID_HEADER, render
from hpcplane.app_extra import control_routes, metrics_routes
from hpcplane.console.routes import console_routes
from hpcplane.domain.errors import ActionNotFound, HpcplaneError, UnknownError
from hpcplane.edge import Admission, CallThreads, Networks, RpcEdge
from hpcplane.wiring import Services

__all__ = ["Admission", "create_app", "parse_networks"]


def parse_networks(text: str) -> Networks:
    """Comma-separated IPs or CIDRs."""
    return [ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()]


def create_app(services: Services, *, threads: int = 32) -> RpcEdge:
    """The API: every RPC call arrives at `/`, answered by the edge (edge.py) ahead of Starlette, which
    serves the rest: `/healthz` for load balancers, the console, /metrics, the control API."""
    gateway = Gateway(services)
    admission = Admission(services.settings.max_concurrency)
    host_id = services.settings.host_id
    calls = CallThreads(threads)

    def error(exc: HpcplaneError, request_id: str, *, close: bool = False) -> Response:
        response = error_response(exc, request_id, host_id)
        return Response(
            render(response.body),
            status_code=response.status,
            media_type=JSON_TYPE,
            headers={REQUEST_ID_HEADER: request_id, **({"connection": "close"} if close else {})},
        )

    async def not_rpc(request: Request) -> Response:
        return error(ActionNotFound(), ids.request_id())

    async def openapi_json(request: Request) -> Response:
        """The OpenAPI 3.1 description (api/openapi.py); OpenApiUnavailable without the official SDK."""
        try:
            description = await run_in_threadpool(openapi.document)
        except HpcplaneError as exc:
            return error(exc, ids.request_id())
        return Response(render(description), media_type=JSON_TYPE)

    async def not_found(request: Request, exc: Exception) -> Response:
        """Starlette's own 404/405 (a path such as `*` that no route can match): the envelope too."""
        return error(ActionNotFound(), ids.request_id())

    async def crashed(request: Request, exc: Exception) -> Response:
        """An exception that escaped a route: UnknownError's envelope, not Starlette's text."""
        return error(UnknownError(), ids.request_id())

    async def health(request: Request) -> Response:
        return Response(render({"Status": "ok"}), media_type=JSON_TYPE)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        try:
            yield
        finally:
            admission.shutting_down = True
            calls.stop()

    control, control_token = control_routes(services)
    app = Starlette(
        routes=[
            Route("/healthz", health, methods=["GET"]),
            Route("/openapi.json", openapi_json, methods=["GET"]),
            *console_routes(services, gateway, lambda: admission.shutting_down),
            *metrics_routes(services),
            *control,
            # Every other path, and every method on `/` the edge leaves (TRACE, CONNECT...): no such api.
            Route("/{path:path}", not_rpc, methods=None),
        ],
        exception_handlers={HTTPException: not_found, Exception: crashed},
        lifespan=lifespan,
    )
    app.state.admission = admission
    app.state.control_token = control_token
    return RpcEdge(
        gateway.handle,
        admission,
        calls,
        app,
        host_id=host_id,
        trusted=parse_networks(services.settings.trusted_proxies),
        max_body=services.settings.max_body_bytes,
    )
