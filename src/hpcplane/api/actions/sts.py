"""STS (version 2015-04-01) AssumeRole, as the alibabacloud_credentials RamRoleArn provider calls it."""

from __future__ import annotations

from dataclasses import dataclass

from hpcplane.api import values
from hpcplane.api.action import Action, Call
from hpcplane.api.params import Params
from hpcplane.authz import Permission
from hpcplane.domain.errors import InvalidDurationSeconds, InvalidParams, MissingParameter

STS_VERSION = "2015-04-01"
_POLICY_MAX = 2048  # STS documents 1 to 2048 characters for a session policy


@dataclass(frozen=True, slots=True)
class AssumeRoleQuery:
    role_arn: str
    session_name: str
    duration: int | None
    policy: str | None


def read_assume_role(p: Params) -> AssumeRoleQuery:
    raw = p.raw()
    for name in ("RoleArn", "RoleSessionName"):
        if not raw.get(name):
            raise MissingParameter(name=name)
    duration_text = raw.get("DurationSeconds") or None
    duration = None
    if duration_text is not None:
        try:
            duration = values.ascii_int("DurationSeconds", duration_text)
        except InvalidParams:
            raise InvalidDurationSeconds(maximum="43200") from None
    return AssumeRoleQuery(
        role_arn=raw["RoleArn"],  # its shape (and so its length) is the service's: InvalidParameter.RoleArn
        session_name=raw["RoleSessionName"],
        duration=duration,
        policy=p.text("Policy", max_length=_POLICY_MAX),
    )


def assume_role(call: Call, query: AssumeRoleQuery) -> dict[str, object]:
    issued = call.services.ram.assume_role(
        call.principal, query.role_arn, query.session_name, query.duration, query.policy
    )
    return {
        "RequestId": call.request_id,
        "AssumedRoleUser": {"Arn": issued.assumed_role_arn, "AssumedRoleId": issued.assumed_role_id},
        "Credentials": {
            "AccessKeyId": issued.access_key_id,
            "AccessKeySecret": issued.access_key_secret,
            "SecurityToken": issued.security_token,
            "Expiration": issued.expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }


ASSUME_ROLE = Action("AssumeRole", Permission("sts:AssumeRole", "{RoleArn}"), read_assume_role, assume_role)
