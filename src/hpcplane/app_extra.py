"""Routes beside the RPC endpoint: GET /metrics, and the emulator control API under /_hpcplane/."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hpcplane import ids, metrics
from hpcplane.services.control import ControlError, control_token
from hpcplane.store import metrics as metrics_store
from hpcplane.store.audit import AuditRecord
from hpcplane.wiring import Services

CONTROL_PREFIX = "/_hpcplane"
_STATUS = {"invalid": 400, "not-found": 404, "busy": 409}
JSON = "application/json"


def _bearer(request: Request, token: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status_code=status, media_type=JSON)


def metrics_routes(services: Services) -> list[Route]:
    """GET /metrics: the Prometheus text of this machine's processes; a Bearer token if configured."""
    token = services.settings.metrics_token

    def queue() -> tuple[int, int]:
        with services.db.driver() as driver:
            return metrics_store.queue(driver, services.clock.now())

    async def scrape(request: Request) -> Response:
        if token and not _bearer(request, token):
            return Response("unauthorized\n", status_code=401, media_type="text/plain")
        body = await run_in_threadpool(metrics.scrape, queue)
        return Response(body, media_type=metrics.CONTENT_TYPE)

    return [Route("/metrics", scrape, methods=["GET"])]


def control_routes(services: Services) -> tuple[list[Route], str | None]:
    """The control API's routes and its token; none when the control API is off."""
    control = services.control
    if control is None:
        return [], None
    token = control_token(services.db, services.box, services.settings.control_token)
    Handler = Callable[[dict[str, Any], Request], dict[str, Any]]

    def endpoint(name: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            request_id = ids.request_id()
            allowed = _bearer(request, token)
            status, body = 401, {"Code": "Unauthorized", "Message": "a valid control token is required"}
            if allowed:
                try:
                    raw = await request.body()
                    args = json.loads(raw) if raw.strip() else {}
                    if not isinstance(args, dict):
                        raise ControlError("invalid", "the body must be a JSON object")
                    status, body = 200, await run_in_threadpool(handler, args, request)
                except ControlError as error:
                    status, body = _STATUS[error.kind], {"Code": error.kind, "Message": error.message}
                except ValueError as error:
                    status, body = 400, {"Code": "invalid", "Message": f"the body is not JSON: {error}"}
            client = request.scope.get("client") or ("", 0)
            services.audit.record(
                AuditRecord(
                    at=services.clock.now(),
                    request_id=request_id,
                    source_ip=client[0],
                    decision="Allow" if allowed else "Refused",
                    principal="hpcplane:control",
                    action=f"hpcplane:{name}",
                    error_code=None if status == 200 else str(body.get("Code")),
                )
            )
            return _json({"RequestId": request_id, **body}, status)

        return handle

    def number(args: dict[str, Any], name: str) -> float:
        value = args.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ControlError("invalid", f"{name} must be a number")
        return float(value)

    def reset(args: dict[str, Any], request: Request) -> dict[str, Any]:
        account = args.get("AccountId")
        deleted = control.reset(str(account) if account else None, bool(args.get("Everything", False)))
        return {"Deleted": deleted}

    def tuning(args: dict[str, Any], request: Request) -> dict[str, Any]:
        return {"Tuning": control.update(args) if request.method == "POST" else control.tuning()}

    def advance(args: dict[str, Any], request: Request) -> dict[str, Any]:
        return {"TasksMoved": control.advance(number(args, "Seconds"))}

    def step(args: dict[str, Any], request: Request) -> dict[str, Any]:
        task_id = request.path_params["task_id"]
        control.step(task_id)
        return {"TaskId": task_id}

    p = CONTROL_PREFIX
    routes = [
        Route(f"{p}/reset", endpoint("Reset", reset), methods=["POST"]),
        Route(f"{p}/tuning", endpoint("Tuning", tuning), methods=["GET", "POST"]),
        Route(f"{p}/clock/advance", endpoint("AdvanceClock", advance), methods=["POST"]),
        Route(f"{p}/tasks/{{task_id}}/step", endpoint("StepTask", step), methods=["POST"]),
    ]
    return routes, token
