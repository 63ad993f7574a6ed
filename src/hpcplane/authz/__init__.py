"""Authorization: each action declares its RAM action and resource; the authorizer decides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from hpcplane.domain.accounts import Principal

if TYPE_CHECKING:
    from hpcplane.authz.policy import RequestContext

ALL_RESOURCES = "*"


@dataclass(frozen=True, slots=True)
class Permission:
    """What an action needs: a RAM action name and a resource pattern over its parameters."""

    action: str
    resource: str = ALL_RESOURCES  # e.g. "acs:ehpc:{region}:{account}:cluster/{ClusterId}"

    def resource_for(self, region: str, account_id: str, params: dict[str, str]) -> str:
        if self.resource == ALL_RESOURCES:
            return ALL_RESOURCES
        return self.resource.format_map(_Blank({**params, "region": region, "account": account_id}))


class _Blank(dict[str, str]):
    """A parameter missing from the call formats as an empty string."""

    def __missing__(self, key: str) -> str:
        return ""


@dataclass(frozen=True, slots=True)
class Decision:
    """Allowed or not, and why (for the log)."""

    allowed: bool
    reason: str


class Authorizer(Protocol):
    def decide(self, principal: Principal, ctx: RequestContext) -> Decision: ...
