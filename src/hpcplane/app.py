"""create_app(services): the ASGI application; the only module that knows Starlette."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hpcplane import ids
from hpcplane.api.errors import error_response
from hpcplane.api.gateway import Gateway
from hpcplane.api.protocol import JSON_TYPE, REQUEST_ID_HEADER, build_request, render
from hpcplane.app_extra import control_routes, metrics_routes
from hpcplane.domain.errors import ActionNotFound, HpcplaneError, ServiceUnavailable
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

    def error(exc: HpcplaneError, request_id: str) -> Response:
        response = error_response(exc, request_id, host_id)
        return Response(
            render(response.body),
            status_code=response.status,
            media_type=JSON_TYPE,
            headers={REQUEST_ID_HEADER: request_id},
        )

    async def rpc(request: Request) -> Response:
        request_id = ids.request_id()
        if not admission.admit():
            return error(ServiceUnavailable(), request_id)
        try:
            body = await request.body()
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
            status, payload = await run_in_threadpool(gateway.handle, rpc_request, request_id)
        finally:
            admission.release()
        return Response(
            render(payload), status_code=status, media_type=JSON_TYPE, headers={REQUEST_ID_HEADER: request_id}
        )

    async def not_rpc(request: Request) -> Response:
        return error(ActionNotFound(), ids.request_id())

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
            *metrics_routes(services),
            *control,
            Route("/{path:path}", not_rpc, methods=["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
        ],
        lifespan=lifespan,
    )
    app.state.admission = admission
    app.state.control_token = control_token
    return app
