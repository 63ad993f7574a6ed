"""create_app(services): the ASGI application; the only module that knows Starlette."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from hpcplane import ids
from hpcplane.api import openapi
from hpcplane.api.errors import error_response
from hpcplane.api.gateway import Gateway
from hpcplane.api.protocol import JSON_TYPE, REQUEST_ID_HEADER, build_request, render
from hpcplane.app_extra import control_routes, metrics_routes
from hpcplane.console.routes import console_routes
from hpcplane.domain.errors import (
    ActionNotFound,
    BodyTooLarge,
    HpcplaneError,
    ServiceUnavailable,
    UnknownError,
)
from hpcplane.wiring import Services


def parse_networks(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Comma-separated IPs or CIDRs."""
    return [ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()]


def source_ip(
    peer: str, forwarded: str | None, trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> str:
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


def create_app(services: Services, *, threads: int = 32) -> Starlette:
    """The API: every RPC call arrives at `/`; `/healthz` answers load balancers."""
    gateway = Gateway(services)
    admission = Admission(services.settings.max_concurrency)
    host_id = services.settings.host_id
    trusted = parse_networks(services.settings.trusted_proxies)
    max_body = services.settings.max_body_bytes

    def error(exc: HpcplaneError, request_id: str, *, close: bool = False) -> Response:
        response = error_response(exc, request_id, host_id)
        return Response(
            render(response.body),
            status_code=response.status,
            media_type=JSON_TYPE,
            headers={REQUEST_ID_HEADER: request_id, **({"connection": "close"} if close else {})},
        )

    async def read_body(request: Request) -> bytes | None:
        """The body, or None when it is larger than allowed: refused before it is read whole (under
        `serve` the connection guard refuses it earlier still, from Content-Length)."""
        length: bytes | None = None
        framed = False
        for name, value in request.scope["headers"]:  # raw: the SDKs send no body, keep that cheap
            if name == b"content-length":
                length, framed = value.strip(), True
            elif name == b"transfer-encoding":
                framed = True
        if not framed:
            return b""
        if length is not None and length.isdigit() and (len(length) > 19 or int(length) > max_body):
            return None
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                return None
        return bytes(body)

    async def rpc(request: Request) -> Response:
        request_id = ids.request_id()
        try:
            body = await read_body(request)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody reads it: the client is gone
        if body is None:
            return error(BodyTooLarge(limit=str(max_body)), request_id, close=True)
        if not admission.admit():
            return error(ServiceUnavailable(), request_id)
        try:
            scope = request.scope  # read directly: building request.url costs more than the call's SQL
            client = scope.get("client") or ("", 0)
            forwarded = request.headers.get("x-forwarded-for") if trusted else None
            rpc_request = build_request(
                method=scope["method"],
                path=scope["path"],
                raw_query=scope.get("query_string", b""),
                raw_headers=scope["headers"],
                body=body,
                client_ip=source_ip(client[0], forwarded, trusted),
                secure=scope.get("scheme") == "https",
            )
            status, payload, extra = await run_in_threadpool(gateway.handle, rpc_request, request_id)
        finally:
            admission.release()
        return Response(
            render(payload),
            status_code=status,
            media_type=JSON_TYPE,
            headers={REQUEST_ID_HEADER: request_id, **extra} if extra else {REQUEST_ID_HEADER: request_id},
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

    control, control_token = control_routes(services)
    app = Starlette(
        routes=[
            Route("/", rpc, methods=["GET", "POST"]),
            Route("/healthz", health, methods=["GET"]),
            Route("/openapi.json", openapi_json, methods=["GET"]),
            *console_routes(services, gateway, lambda: admission.shutting_down),
            *metrics_routes(services),
            *control,
            # Every other path, and every method on `/` but GET and POST (TRACE, CONNECT...): no such api.
            Route("/{path:path}", not_rpc, methods=None),
        ],
        exception_handlers={HTTPException: not_found, Exception: crashed},
        lifespan=lifespan,
    )
    app.state.admission = admission
    app.state.control_token = control_token
    return app
