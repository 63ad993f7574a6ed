"""The request pipeline: read signature → Action/Version → authenticate → validate → authorize → handle.

Every exception on the way becomes a response here, and only here; every call is audited here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import structlog

from hpcplane import logs, metrics
from hpcplane.api.action import Action, Call
from hpcplane.api.authn import read_credentials
from hpcplane.api.dispatch import VERSIONS
from hpcplane.api.errors import NO_HEADERS, error_response
from hpcplane.api.params import Params
from hpcplane.api.protocol import RpcRequest
from hpcplane.api.validation import check_credentials, check_request
from hpcplane.authz.policy import RequestContext
from hpcplane.domain.accounts import Principal
from hpcplane.domain.errors import (
    ActionNotFound,
    DbError,
    HpcplaneError,
    InvalidParams,
    InvalidVersion,
    MissingParameter,
    NotAuthorized,
    RedisError,
    ServiceUnavailable,
    Throttling,
    UnknownError,
)
from hpcplane.store.audit import AuditRecord

if TYPE_CHECKING:
    from hpcplane.wiring import Services

log = structlog.get_logger("hpcplane.api")


class _Trail:
    """What the audit record of one call says, filled in as the call goes through the pipeline."""

    def __init__(self, log_fields: dict[str, object]) -> None:
        self.log_fields = log_fields  # what every log line of the call carries (logs.bind_request)
        self.principal: Principal | None = None
        self.action: str | None = None
        self.resource: str | None = None
        self.decision = "Refused"


class Gateway:
    """Turns one RpcRequest into (HTTP status, JSON body), and records it in the audit trail."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._host_id = services.settings.host_id
        # Metrics label calls by the actions that exist only, so a client cannot make up new series.
        self._known = frozenset(name for table in VERSIONS.values() for name in table)

    def handle(
        self, req: RpcRequest, request_id: str, principal: Principal | None = None
    ) -> tuple[int, dict[str, object], Mapping[str, str]]:
        """(HTTP status, JSON body, headers besides the request id) of one call; with `principal` (a
        console session's, console/), the caller is already known and the request carries no signature:
        validation, authorization, audit and errors are the same."""
        started = time.perf_counter()
        fields: dict[str, object] = {"request_id": request_id, "client_ip": req.client_ip}
        bound = logs.bind_request(fields)
        trail = _Trail(fields)
        code: str | None = None
        headers = NO_HEADERS
        try:
            status, body = 200, self._run(req, request_id, trail, principal)
        except HpcplaneError as error:
            status, body, code, headers = self._fail(error, request_id)
        except Exception:
            log.exception("unhandled error")
            status, body, code, headers = self._fail(UnknownError(), request_id)
        elapsed = time.perf_counter() - started
        metrics.record_request(req.action if req.action in self._known else "Unknown", code or "OK", elapsed)
        if logs.enabled(logging.INFO):
            log.info(
                "request",
                action=req.action,
                status=status,
                code=code or "OK",
                ms=round(elapsed * 1000, 2),
            )
        self._audit(req, request_id, trail, code)
        logs.unbind_request(bound)
        return status, body, headers

    def _audit(self, req: RpcRequest, request_id: str, trail: _Trail, code: str | None) -> None:
        who = trail.principal
        self._services.audit.record(
            AuditRecord(
                at=self._services.clock.now(),
                request_id=request_id,
                source_ip=req.client_ip,
                decision=trail.decision,
                account_id=who.account.id if who else None,
                principal=who.arn if who else None,
                access_key_id=who.access_key_id if who else None,
                action=trail.action or (req.action or "")[:64] or None,
                resource=trail.resource,
                error_code=code,
            )
        )

    def _fail(
        self, error: HpcplaneError, request_id: str
    ) -> tuple[int, dict[str, object], str, Mapping[str, str]]:
        if isinstance(error, DbError | RedisError):
            log.warning("store unavailable", code=error.code, cause=repr(error.__cause__))
        elif isinstance(error, InvalidParams) and error.reason:
            log.info("invalid parameter", parameter=error.fields["name"], reason=error.reason)
        response = error_response(error, request_id, self._host_id)
        return response.status, response.body, error.code, response.headers

    def _run(
        self, req: RpcRequest, request_id: str, trail: _Trail, known: Principal | None = None
    ) -> dict[str, object]:
        if not self._services.audit.accepting:
            raise ServiceUnavailable()  # load shedding: the writer's backlog is full (services/audit.py)
        creds = read_credentials(req) if known is None else None
        if creds is not None:
            check_credentials(creds)
        action = self._action(req)
        trail.action = action.permission.action
        principal = known if creds is None else self._services.authenticator.authenticate(req, creds)
        if principal is None:
            raise UnknownError()
        trail.principal = principal
        trail.log_fields["account_id"] = principal.account.id
        trail.log_fields["access_key_id"] = principal.access_key_id
        wait = self._services.limiter.take(principal.access_key_id, action.name)
        if wait:
            raise Throttling(wait)
        check_request(req)
        query = action.read(Params(req.params))
        resource = action.permission.resource_for(
            self._services.settings.region, principal.account.id, req.params
        )
        trail.resource = resource
        decision = self._services.authorizer.decide(principal, self.context(req, action, resource))
        if not decision.allowed:
            trail.decision = "Deny"
            log.info(
                "denied",
                principal=principal.arn,
                ram_action=action.permission.action,
                resource=resource,
                reason=decision.reason,
            )
            raise NotAuthorized()
        trail.decision = "Allow"
        return action.handle(Call(principal, request_id, self._services, req.params), query)

    def context(self, req: RpcRequest, action: Action, resource: str) -> RequestContext:
        """What the authorizer decides on: the action, the resource and the request's condition keys."""
        return RequestContext(
            action=action.permission.action,
            resource=resource,
            keys={
                "acs:SourceIp": req.client_ip,
                "acs:CurrentTime": self._services.clock.now(),
                "acs:SecureTransport": req.secure,
                "acs:MFAPresent": False,
            },
        )

    def allows(self, principal: Principal, req: RpcRequest) -> bool:
        """Whether `principal` may make this call (no audit record, no handler: for filtering views)."""
        try:
            action = self._action(req)
        except HpcplaneError:
            return False
        resource = action.permission.resource_for(
            self._services.settings.region, principal.account.id, req.params
        )
        return self._services.authorizer.decide(principal, self.context(req, action, resource)).allowed

    def _action(self, req: RpcRequest) -> Action:
        version = req.version
        if version is None:
            raise MissingParameter(name="Version")
        table = VERSIONS.get(version)
        if table is None:
            raise InvalidVersion()
        name = req.action
        if name is None:
            raise MissingParameter(name="Action")
        action = table.get(name)
        if action is None:
            raise ActionNotFound()
        return action
