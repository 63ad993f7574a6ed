"""Authorization: each action declares its RAM action and resource; the authorizer decides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from hpcplane.domain.accounts import Principal

ALL_RESOURCES = "*"


@dataclass(frozen=True, slots=True)
class Permission:
    """What an action needs: a RAM action name and a resource pattern over its parameters."""

    action: str
    resource: str = ALL_RESOURCES  # e.g. "acs:ehpc:{region}:{account}:cluster/{ClusterId}"

    def resource_for(self, region: str, account_id: str, params: dict[str, str]) -> str:
        if self.resource == ALL_RESOURCES:
            return ALL_RESOURCES
        return self.resource.format_map({**params, "region": region, "account": account_id})


@dataclass(frozen=True, slots=True)
class Decision:
    """Allowed or not, and why (for the log)."""

    allowed: bool
    reason: str


class Authorizer(Protocol):
    def decide(self, principal: Principal, action: str, resource: str) -> Decision: ...


class AccountKeysOnly:
    """The account's own keys are always allowed; a RAM user has no policy yet, so is denied by default."""

    def decide(self, principal: Principal, action: str, resource: str) -> Decision:
        if principal.is_account:
            return Decision(True, "the account's own AccessKey")
        return Decision(False, "ImplicitDeny: no policy attached to the RAM user allows it")
