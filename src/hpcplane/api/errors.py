"""The one map from exception to HTTP status and error body."""

from __future__ import annotations

from dataclasses import dataclass

from hpcplane.domain import errors as e

STATUS: dict[type[e.HpcplaneError], int] = {
    e.InvalidParams: 400,
    e.NotEnabled: 400,
    e.ClusterNotFound: 404,
    e.DbError: 406,
    e.RedisError: 406,
    e.NotAuthorized: 407,
    e.UnknownError: 500,
    e.ServiceUnavailable: 503,
    e.IncompleteSignature: 400,
    e.SignatureDoesNotMatch: 400,
    e.InvalidSignatureMethod: 400,
    e.AccessKeyNotFound: 404,
    e.AccessKeyInactive: 400,
    e.TimestampFormat: 400,
    e.TimestampExpired: 400,
    e.SignatureNonceUsed: 400,
    e.MissingParameter: 400,
    e.ActionNotFound: 404,
    e.InvalidVersion: 400,
    e.InvalidClusterStatus: 403,
    e.InvalidNodeStatus: 403,
    e.ConflictOpt: 403,
    e.IdempotentParameterMismatch: 400,
    e.MissingSecurityToken: 400,
    e.SecurityTokenMalformed: 400,
    e.SecurityTokenMismatch: 400,
    e.SecurityTokenExpired: 400,
    e.RoleNotFound: 404,
    e.InvalidRoleArn: 400,
    e.InvalidRoleSessionName: 400,
    e.InvalidDurationSeconds: 400,
    e.PolicyGrammar: 400,
    e.AssumeRoleDenied: 403,
    e.TemplateNotFound: 404,
}


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    status: int
    body: dict[str, object]


def status_of(error: e.HpcplaneError) -> int:
    """The HTTP status of an error, looked up along its class hierarchy."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_response(error: e.HpcplaneError, request_id: str, host_id: str) -> ErrorResponse:
    """The body every error has: RequestId, HostId, Code, Message, Recommend."""
    return ErrorResponse(
        status=status_of(error),
        body={
            "RequestId": request_id,
            "HostId": host_id,
            "Code": error.code,
            "Message": error.message,
            "Recommend": (
                f"https://api.aliyun.com/troubleshoot?q={error.code}&product=EHPC&requestId={request_id}"
            ),
        },
    )
