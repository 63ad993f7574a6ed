"""The closed catalogue of errors hpcplane answers with; HTTP statuses are assigned at the edge."""

from __future__ import annotations

from typing import ClassVar


class HpcplaneError(Exception):
    """Base of every error that becomes an API response: a stable code and a message template."""

    code: ClassVar[str] = "UnknownError"
    template: ClassVar[str] = "An unknown error occurred."

    def __init__(self, **fields: str) -> None:
        self.fields = fields
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The message as the client sees it."""
        return self.template.format(**self.fields)


# --- E-HPC's own codes (the ListTasks error table) ---------------------------------------------


class InvalidParams(HpcplaneError):
    """A parameter is missing, malformed or out of range; `name` says which."""

    code = "InvalidParams"
    template = "The specified parameter {name} is invalid."

    def __init__(self, name: str, reason: str = "") -> None:
        self.reason = reason
        super().__init__(name=name)


class NotEnabled(HpcplaneError):
    code = "NotEnabled"
    template = "You have not enabled this service"


class ClusterNotFound(HpcplaneError):
    code = "ClusterNotFound"
    template = "The specified cluster does not exist."


class DbError(HpcplaneError):
    code = "DbError"
    template = "A database service error occurred."


class RedisError(HpcplaneError):
    code = "RedisError"
    template = "A Redis service error occurred."


class NotAuthorized(HpcplaneError):
    code = "NotAuthorized"
    template = "You are not authorized by RAM for this request."


class UnknownError(HpcplaneError):
    code = "UnknownError"
    template = "An unknown error occurred."


class ServiceUnavailable(HpcplaneError):
    code = "ServiceUnavailable"
    template = "The request has failed due to a temporary failure of the server"


# --- The API gateway's codes (protocol.md section 5) -------------------------------------------


class IncompleteSignature(HpcplaneError):
    code = "IncompleteSignature"
    template = "The request signature does not conform to Aliyun standards. {reason}"


class SignatureDoesNotMatch(HpcplaneError):
    code = "SignatureDoesNotMatch"
    template = "Specified signature is not matched with our calculation. server string to sign is:{sts}"


class InvalidSignatureMethod(HpcplaneError):
    code = "InvalidSignatureMethod"
    template = "Specified signature method is not valid."


class AccessKeyNotFound(HpcplaneError):
    code = "InvalidAccessKeyId.NotFound"
    template = "Specified access key is not found."


class AccessKeyInactive(HpcplaneError):
    code = "InvalidAccessKeyId.Inactive"
    template = "Specified access key is disabled."


class TimestampFormat(HpcplaneError):
    code = "InvalidTimeStamp.Format"
    template = "Specified time stamp or date value is not well formatted."


class TimestampExpired(HpcplaneError):
    code = "InvalidTimeStamp.Expired"
    template = "Specified time stamp or date value is expired."


class SignatureNonceUsed(HpcplaneError):
    code = "SignatureNonceUsed"
    template = "Specified signature nonce was used already."


class MissingParameter(HpcplaneError):
    code = "MissingParameter"
    template = "The input parameter {name} that is mandatory for processing this request is not supplied."


class ActionNotFound(HpcplaneError):
    code = "InvalidAction.NotFound"
    template = "Specified api is not found, please check your url and method."


class InvalidVersion(HpcplaneError):
    code = "InvalidVersion"
    template = "Specified parameter Version is not valid."


# --- The transport and flow control (docs/protocol.md, "Limits") ----------------------------------


class Throttling(HpcplaneError):
    """One AccessKey's (or one action's) quota is spent; `retry_after_ms` says when a token is due."""

    code = "Throttling.User"
    template = "Request was denied due to user flow control."

    def __init__(self, retry_after_ms: int) -> None:
        self.retry_after_ms = max(1, retry_after_ms)
        super().__init__()


class BodyTooLarge(HpcplaneError):
    code = "RequestEntityTooLarge"
    template = "The request body is larger than the {limit} bytes this server accepts."


class UrlTooLong(HpcplaneError):
    code = "RequestURITooLong"
    template = "The request URL is longer than the {limit} bytes this server accepts."


class HeadersTooLarge(HpcplaneError):
    code = "RequestHeaderFieldsTooLarge"
    template = "The request line and headers are larger than the {limit} bytes this server accepts."


class RequestTimeout(HpcplaneError):
    code = "RequestTimeout"
    template = "The request was not received in full within {seconds} seconds."


class MalformedRequest(HpcplaneError):
    code = "BadRequest"
    template = "The request is not valid HTTP/1.1."


# --- Operations: state conflicts and idempotency -------------------------------------------------


class InvalidClusterStatus(HpcplaneError):
    code = "InvalidClusterStatus"
    template = "The operation failed due to invalid cluster status."


class InvalidNodeStatus(HpcplaneError):
    code = "InvalidNodeStatus"
    template = "The operation failed due to invalid node status."


class ConflictOpt(HpcplaneError):
    code = "ConflictOpt"
    template = "A conflicting operation is running."


class IdempotentParameterMismatch(HpcplaneError):
    code = "IdempotentParameterMismatch"
    template = "The specified parameter has changed while using an already used clientToken."


# --- The actions of issue 10: templates, users, queues, jobs ------------------------------------


class TemplateNotFound(HpcplaneError):
    code = "JobTemplateNotFound"
    template = "The specified job template does not exist."


# --- STS -----------------------------------------------------------------------------------------


class MissingSecurityToken(HpcplaneError):
    code = "MissingSecurityToken"
    template = "SecurityToken is mandatory for this action."


class SecurityTokenMalformed(HpcplaneError):
    code = "InvalidSecurityToken.Malformed"
    template = "Specified SecurityToken is malformed."


class SecurityTokenMismatch(HpcplaneError):
    code = "InvalidSecurityToken.MismatchWithAccessKey"
    template = "Specified SecurityToken mismatch with the AccessKey."


class SecurityTokenExpired(HpcplaneError):
    code = "InvalidSecurityToken.Expired"
    template = "Specified SecurityToken is expired."


class RoleNotFound(HpcplaneError):
    code = "EntityNotExist.Role"
    template = "The specified Role not exists: {role}."


class InvalidRoleArn(HpcplaneError):
    code = "InvalidParameter.RoleArn"
    template = "The parameter RoleArn is wrongly formed."


class InvalidRoleSessionName(HpcplaneError):
    code = "InvalidParameter.RoleSessionName"
    template = "The parameter RoleSessionName is wrongly formed."


class InvalidDurationSeconds(HpcplaneError):
    code = "InvalidParameter.DurationSeconds"
    template = "The Min/Max value of DurationSeconds is 15min/{maximum}s."


class PolicyGrammar(HpcplaneError):
    code = "InvalidParameter.PolicyGrammar"
    template = "The parameter Policy has not a valid grammar: {position}."


class AssumeRoleDenied(HpcplaneError):
    code = "NoPermission"
    template = "You are not authorized to do this action. You should be authorized by RAM."


# --- The service's own description -------------------------------------------------------------


class OpenApiUnavailable(HpcplaneError):
    """GET /openapi.json on an install without the official SDK, whose models describe the parameters."""

    code = "OpenApiUnavailable"
    template = "The OpenAPI description needs the official SDK: pip install 'hpcplane[sdk]'."


# --- Providers: the machine that runs real clusters ------------------------------------------------


class ProviderFailed(HpcplaneError):
    """A real effect on the machine failed (a command, a daemon that does not come up); `what` says
    which, `reason` how (never a credential)."""

    code = "ProviderFailed"
    template = "The provider failed to {what}: {reason}"


class NotSupportedOnProvider(HpcplaneError):
    """The server's provider cannot do this (yet): e.g. jobs on `local` before its job half lands."""

    code = "NotSupportedOnProvider"
    template = "The operation {operation} is not supported on the {provider} provider yet."


class AddressRangeUnavailable(HpcplaneError):
    """HPCPLANE_LOCAL_NETWORK is malformed, overlaps a route of the machine, or has no free /24."""

    code = "AddressRangeUnavailable"
    template = "The address range {network} cannot be used: {reason}"


# --- The console (hpcplane's own) ----------------------------------------------------------------


class InvalidAccessKeyPair(HpcplaneError):
    code = "InvalidAccessKeyPair"
    template = "The AccessKey ID and secret do not match an active AccessKey."


class SessionRequired(HpcplaneError):
    code = "SessionRequired"
    template = "Sign in to the console first; the session is missing, expired or ended."


class InvalidCsrfToken(HpcplaneError):
    code = "InvalidCsrfToken"
    template = "The request lacks the console's X-CSRF-Token header, or it does not match the session."
