"""What an action is: its name, permission, parameter reader and handler."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpcplane.api.params import Params
from hpcplane.authz import Permission
from hpcplane.domain.accounts import Principal

if TYPE_CHECKING:
    from hpcplane.wiring import Services


@dataclass(frozen=True, slots=True)
class Call:
    """What a handler gets besides its parameters: who calls, under which RequestId, with which services."""

    principal: Principal
    request_id: str
    services: Services
    raw: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Action:
    """One API action: `read` validates the parameters, `handle` runs the use case and shapes the reply."""

    name: str
    permission: Permission
    read: Callable[[Params], Any]
    handle: Callable[[Call, Any], dict[str, object]]
