"""The console's routes and GET /events, included by create_app.

Every console call goes through the API's Gateway with the session's principal (authorization, audit and
errors as for a signed call); /events is authorized as a ListTasks of its ClusterId, by the session or by
a V1-signed query, then streams that cluster's task events from the store (Server-Sent Events).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from importlib import resources
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from hpcplane import API_VERSION, ids
from hpcplane.api.dispatch import ACTIONS
from hpcplane.api.errors import error_response
from hpcplane.api.gateway import Gateway
from hpcplane.api.protocol import JSON_TYPE, REQUEST_ID_HEADER, RpcRequest, build_request, render
from hpcplane.domain.accounts import Principal
from hpcplane.domain.errors import (
    HpcplaneError,
    InvalidCsrfToken,
    InvalidParams,
    MissingParameter,
    SessionRequired,
)
from hpcplane.services.accounts import StoreKeyDirectory
from hpcplane.services.events import EventFeed
from hpcplane.services.sessions import ConsoleSessions, audit_trail
from hpcplane.store.events import Cursor, TaskEvent
from hpcplane.wiring import Services, listen_dsn

COOKIE = "hpcplane_session"
CONSOLE_HEADER = "x-hpcplane-console"  # a custom header: a cross-site form or image cannot send it
CSRF_HEADER = "x-csrf-token"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
STATIC = {"app.js": "text/javascript", "style.css": "text/css", "index.html": "text/html"}
_HEARTBEAT = 15.0
_SESSION_CHECK = 10.0  # seconds between checks that a cookie stream's session still stands


def _static(name: str) -> bytes:
    return resources.files("hpcplane.console").joinpath("static", name).read_bytes()


def sse(event: TaskEvent) -> bytes:
    """One event in the text/event-stream format: its cursor as the id, its type, its body as data."""
    data = json.dumps(event.body(), separators=(",", ":"), ensure_ascii=False)
    return f"id: {event.cursor.render()}\nevent: {event.body()['Type']}\ndata: {data}\n\n".encode()


def console_routes(
    services: Services, gateway: Gateway, shutting_down: Callable[[], bool]
) -> list[BaseRoute]:
    """The console (/console/...) and the push stream (/events)."""
    settings = services.settings
    sessions = ConsoleSessions(
        services.db,
        StoreKeyDirectory(services.db, services.box),
        services.clock,
        ttl=settings.console_session_ttl,
        csrf_key=services.box.derive(b"console-csrf"),
    )
    feed = EventFeed(services.db, poll_interval=settings.poll_interval, listen_dsn=listen_dsn(services.db))
    feed.start()
    secure_cookie = settings.ssl_certfile is not None

    def reply(
        body: dict[str, object],
        status: int = 200,
        request_id: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> Response:
        headers = {**SECURITY_HEADERS, **(extra or {})}
        if status == 407:
            status = 403  # NotAuthorized's 407 (the API's, for the SDKs) makes browsers expect a proxy
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        return Response(render(body), status_code=status, media_type=JSON_TYPE, headers=headers)

    def failed(error: HpcplaneError) -> Response:
        request_id = ids.request_id()
        response = error_response(error, request_id, settings.host_id)
        return reply(response.body, response.status, request_id)

    def client_ip(request: Request) -> str:
        return request.client.host if request.client else ""

    async def signed_in(request: Request, *, write: bool) -> tuple[str, Principal]:
        """The session's id and principal; writes also need the session's CSRF token."""
        if request.headers.get(CONSOLE_HEADER) != "1":
            raise InvalidCsrfToken()
        session_id = request.cookies.get(COOKIE, "")
        principal = await run_in_threadpool(sessions.resolve, session_id) if session_id else None
        if principal is None:
            raise SessionRequired()
        if write and not sessions.csrf_ok(session_id, request.headers.get(CSRF_HEADER)):
            raise InvalidCsrfToken()
        return session_id, principal

    def who(principal: Principal) -> dict[str, object]:
        return {
            "AccountId": principal.account.id,
            "AccountName": principal.account.name,
            "Principal": principal.arn,
            "UserName": principal.user_name or "",
            "Actions": sorted(ACTIONS),
        }

    async def index(request: Request) -> Response:
        return Response(_static("index.html"), media_type="text/html", headers=SECURITY_HEADERS)

    async def to_index(request: Request) -> Response:
        return RedirectResponse("/console/", status_code=308)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return Response(b"", status_code=404, headers=SECURITY_HEADERS)
        return Response(_static(name), media_type=STATIC[name], headers=SECURITY_HEADERS)

    async def session(request: Request) -> Response:
        try:
            if request.method == "POST":
                return await sign_in(request)
            session_id, principal = await signed_in(request, write=request.method == "DELETE")
        except HpcplaneError as error:
            return failed(error)
        if request.method == "DELETE":
            await run_in_threadpool(sessions.sign_out, session_id)
            response = reply({"SignedOut": True})
            response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=secure_cookie)
            return response
        return reply({**who(principal), "Csrf": sessions.csrf(session_id)})

    async def sign_in(request: Request) -> Response:
        if request.headers.get(CONSOLE_HEADER) != "1":
            raise InvalidCsrfToken()
        body = await _json(request)
        key_id, secret = str(body.get("AccessKeyId", "")), str(body.get("AccessKeySecret", ""))
        if not key_id:
            raise MissingParameter(name="AccessKeyId")
        made = await run_in_threadpool(sessions.sign_in, key_id, secret)
        response = reply({**who(made.principal), "Csrf": made.csrf})
        response.set_cookie(
            COOKIE,
            made.session_id,
            max_age=int(sessions.ttl),
            path="/",
            httponly=True,
            samesite="strict",
            secure=secure_cookie,
        )
        return response

    def rpc(request: Request, params: dict[str, str]) -> RpcRequest:
        return RpcRequest(
            method="POST",
            path=request.url.path,
            query=[],
            headers={},
            body=b"",
            params={**params, "Version": API_VERSION},
            client_ip=client_ip(request),
            secure=request.url.scheme == "https",
        )

    async def call(request: Request) -> Response:
        """One API action as the session's principal: {"Action": ..., "Params": {...}} in, the API's JSON
        out. ListClusters keeps the clusters the principal may DescribeCluster (a RAM user scoped to one
        cluster sees that cluster only)."""
        try:
            _, principal = await signed_in(request, write=True)
            body = await _json(request)
            raw = body.get("Params") or {}
            if not isinstance(raw, dict):
                raise InvalidParams("Params")
            params = {str(k): str(v) for k, v in raw.items()}
            params["Action"] = str(body.get("Action", ""))
        except HpcplaneError as error:
            return failed(error)
        request_id = ids.request_id()
        req = rpc(request, params)
        status, payload, extra = await run_in_threadpool(gateway.handle, req, request_id, principal)
        if status == 200 and params["Action"] == "ListClusters":
            payload = await run_in_threadpool(visible_clusters, request, principal, payload)
        return reply(payload, status, request_id, extra)

    def visible_clusters(request: Request, principal: Principal, payload: dict[str, Any]) -> dict[str, Any]:
        listed = payload.get("Clusters", {}).get("ClusterInfoSimple", [])
        kept = [
            c
            for c in listed
            if gateway.allows(principal, rpc(request, {"Action": "DescribeCluster", "ClusterId": c["Id"]}))
        ]
        return {**payload, "Clusters": {"ClusterInfoSimple": kept}}

    async def audit(request: Request) -> Response:
        try:
            _, principal = await signed_in(request, write=False)
        except HpcplaneError as error:
            return failed(error)
        records = await run_in_threadpool(audit_trail, services.db, principal, 50)
        return reply({"Records": records})

    async def events(request: Request) -> Response:
        """GET /events?ClusterId=...: authorized as that ListTasks call, then the cluster's task events."""
        try:
            req, principal = await events_request(request)
        except HpcplaneError as error:
            return failed(error)
        request_id = ids.request_id()
        status, payload, extra = await run_in_threadpool(gateway.handle, req, request_id, principal)
        if status != 200:
            return reply(payload, status, request_id, extra)
        cluster_id = req.params["ClusterId"]
        resume = Cursor.parse(request.headers.get("last-event-id") or req.params.get("LastEventId"))
        start = resume if resume is not None else await run_in_threadpool(feed.now)
        headers = {**SECURITY_HEADERS, REQUEST_ID_HEADER: request_id, "X-Accel-Buffering": "no"}
        session_id = request.cookies.get(COOKIE) if principal is not None else None
        return StreamingResponse(
            stream(cluster_id, start, session_id), media_type="text/event-stream", headers=headers
        )

    async def events_request(request: Request) -> tuple[RpcRequest, Principal | None]:
        signed = build_request(
            method=request.method,
            path=request.url.path,
            raw_query=request.scope.get("query_string", b""),
            raw_headers=request.scope["headers"],
            body=b"",
            client_ip=client_ip(request),
            secure=request.url.scheme == "https",
        )
        if "Signature" in signed.params:
            if signed.params.get("Action") != "ListTasks":
                raise InvalidParams("Action", "a signed /events query signs a ListTasks call")
            return signed, None
        session_id = request.cookies.get(COOKIE, "")
        principal = await run_in_threadpool(sessions.resolve, session_id) if session_id else None
        if principal is None:
            raise SessionRequired()
        cluster_id = signed.params.get("ClusterId", "")
        return rpc(request, {"Action": "ListTasks", "ClusterId": cluster_id}), principal

    async def stream(cluster_id: str, cursor: Cursor, session_id: str | None) -> AsyncIterator[bytes]:
        """The cluster's events after `cursor`, as they come; a session's stream ends with the session."""
        yield b"retry: 1000\n\n"
        spoke = checked = time.monotonic()
        while not shutting_down():  # a stream ends when the server shuts down; the client resumes
            if session_id is not None and time.monotonic() - checked >= _SESSION_CHECK:
                checked = time.monotonic()
                if await run_in_threadpool(sessions.resolve, session_id) is None:
                    return
            batch = await run_in_threadpool(feed.read, cursor, cluster_id=cluster_id)
            for event in batch:
                yield sse(event)
                cursor = event.cursor
            if batch:
                spoke = time.monotonic()
                continue
            await feed.wait()
            if time.monotonic() - spoke >= _HEARTBEAT:
                spoke = time.monotonic()
                yield b": keep-alive\n\n"

    return [
        Route("/console", to_index, methods=["GET"]),
        Route("/console/", index, methods=["GET"]),
        Route("/console/static/{name}", static, methods=["GET"]),
        Route("/console/api/session", session, methods=["GET", "POST", "DELETE"]),
        Route("/console/api/call", call, methods=["POST"]),
        Route("/console/api/audit", audit, methods=["GET"]),
        Route("/events", events, methods=["GET"]),
    ]


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise InvalidParams("body", "is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidParams("body", "is not a JSON object")
    return body
