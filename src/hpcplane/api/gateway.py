"""The request pipeline: read signature → Action/Version → authenticate → validate → authorize → handle.

Every exception on the way becomes a response here, and only here.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog

from hpcplane import API_VERSION
from hpcplane.api.action import Action, Call
from hpcplane.api.authn import read_credentials
from hpcplane.api.dispatch import ACTIONS
from hpcplane.api.errors import error_response
from hpcplane.api.params import Params
from hpcplane.api.protocol import RpcRequest
from hpcplane.domain.errors import (
    ActionNotFound,
    DbError,
    HpcplaneError,
    InvalidParams,
    InvalidVersion,
    MissingParameter,
    NotAuthorized,
    RedisError,
    UnknownError,
)

if TYPE_CHECKING:
    from hpcplane.wiring import Services

log = structlog.get_logger("hpcplane.api")


class Gateway:
    """Turns one RpcRequest into (HTTP status, JSON body)."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._host_id = services.settings.host_id

    def handle(self, req: RpcRequest, request_id: str) -> tuple[int, dict[str, object]]:
        started = time.perf_counter()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id, client_ip=req.client_ip)
        try:
            status, body = 200, self._run(req, request_id)
            code = "OK"
        except HpcplaneError as error:
            status, body, code = self._fail(error, request_id)
        except Exception:
            log.exception("unhandled error")
            status, body, code = self._fail(UnknownError(), request_id)
        log.info(
            "request",
            action=req.action,
            status=status,
            code=code,
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
        structlog.contextvars.clear_contextvars()
        return status, body

    def _fail(self, error: HpcplaneError, request_id: str) -> tuple[int, dict[str, object], str]:
        if isinstance(error, DbError | RedisError):
            log.warning("store unavailable", code=error.code, cause=repr(error.__cause__))
        elif isinstance(error, InvalidParams) and error.reason:
            log.info("invalid parameter", parameter=error.fields["name"], reason=error.reason)
        response = error_response(error, request_id, self._host_id)
        return response.status, response.body, error.code

    def _run(self, req: RpcRequest, request_id: str) -> dict[str, object]:
        creds = read_credentials(req)
        action = self._action(req)
        principal = self._services.authenticator.authenticate(req, creds)
        structlog.contextvars.bind_contextvars(
            account_id=principal.account.id, access_key_id=principal.access_key_id
        )
        query = action.read(Params(req.params))
        resource = action.permission.resource_for(
            self._services.settings.region, principal.account.id, req.params
        )
        decision = self._services.authorizer.decide(principal, action.permission.action, resource)
        if not decision.allowed:
            log.info("denied", ram_action=action.permission.action, resource=resource, reason=decision.reason)
            raise NotAuthorized()
        return action.handle(Call(principal, request_id, self._services, req.params), query)

    def _action(self, req: RpcRequest) -> Action:
        version = req.version
        if version is None:
            raise MissingParameter(name="Version")
        if version != API_VERSION:
            raise InvalidVersion()
        name = req.action
        if name is None:
            raise MissingParameter(name="Action")
        action = ACTIONS.get(name)
        if action is None:
            raise ActionNotFound()
        return action
