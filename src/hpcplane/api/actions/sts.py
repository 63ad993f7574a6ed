"""STS (version 2015-04-01) AssumeRole, as the alibabacloud_credentials RamRoleArn provider calls it."""

from __future__ import annotations

from dataclasses import dataclass

from hpcplane.api.action import Action, Call
from hpcplane.api.params import Params
from hpcplane.authz import Permission
from hpcplane.domain.errors import InvalidDurationSeconds, MissingParameter

STS_VERSION = "2015-04-01"


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
    if duration_text is not None and not duration_text.isdigit():
        raise InvalidDurationSeconds(maximum="43200")
    return AssumeRoleQuery(
        role_arn=raw["RoleArn"],
        session_name=raw["RoleSessionName"],
        duration=int(duration_text) if duration_text else None,
        policy=raw.get("Policy") or None,
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
