"""The one map from exception to HTTP status and error body."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

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
    e.Throttling: 400,
    e.BodyTooLarge: 413,
    e.UrlTooLong: 414,
    e.HeadersTooLarge: 431,
    e.RequestTimeout: 408,
    e.MalformedRequest: 400,
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
    e.OpenApiUnavailable: 501,
    e.ProviderFailed: 500,
    e.AddressRangeUnavailable: 500,
    e.NotSupportedOnProvider: 400,
    e.InvalidAccessKeyPair: 401,
    e.SessionRequired: 401,
    e.InvalidCsrfToken: 403,
    e.TemplateNotFound: 404,
}


# The Tea SDK raises ThrottlingException when this header holds a positive integer of milliseconds.
RETRY_AFTER_HEADER = "x-acs-retry-after"
NO_HEADERS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    status: int
    body: dict[str, object]
    headers: Mapping[str, str] = field(default_factory=lambda: NO_HEADERS)


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
        headers=headers_of(error),
    )


def headers_of(error: e.HpcplaneError) -> Mapping[str, str]:
    """The response headers an error carries besides the request id (Throttling: when to retry)."""
    if isinstance(error, e.Throttling):
        return {RETRY_AFTER_HEADER: str(error.retry_after_ms)}
    return NO_HEADERS
