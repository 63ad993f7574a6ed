"""Role trust policies: who may assume a role (the `Principal` element, for sts:AssumeRole)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from hpcplane.authz.policy import PolicyError


@dataclass(frozen=True, slots=True)
class TrustStatement:
    allow: bool
    actions: tuple[str, ...]
    principals: tuple[str, ...]


def _error(message: str, position: str) -> PolicyError:
    error = PolicyError(f"{message} at {position}")
    error.position = position
    return error


def _strings(value: Any, position: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
        raise _error("expected a string or a non-empty list of strings", position)
    return tuple(items)


def parse_trust(document: str) -> tuple[TrustStatement, ...]:
    """Validate a trust policy: Version "1", statements with Effect, Action sts:AssumeRole, Principal.RAM."""
    try:
        data = json.loads(document)
    except json.JSONDecodeError as error:
        raise _error(error.msg, f"line {error.lineno}, column {error.colno}") from None
    if not isinstance(data, dict) or data.get("Version") != "1":
        raise _error('Version must be "1"', "Version")
    statements = data.get("Statement")
    if not isinstance(statements, list) or not statements:
        raise _error("Statement must be a non-empty list", "Statement")
    parsed = []
    for index, raw in enumerate(statements):
        where = f"Statement[{index}]"
        if not isinstance(raw, dict) or raw.get("Effect") not in ("Allow", "Deny"):
            raise _error("Effect must be Allow or Deny", f"{where}.Effect")
        principal = raw.get("Principal")
        if not isinstance(principal, dict) or not principal:
            raise _error('Principal must be an object such as {"RAM": [...]}', f"{where}.Principal")
        ram = principal.get("RAM")
        principals = _strings(ram, f"{where}.Principal.RAM") if ram is not None else ()
        parsed.append(
            TrustStatement(
                raw["Effect"] == "Allow",
                tuple(a.lower() for a in _strings(raw.get("Action"), f"{where}.Action")),
                principals,
            )
        )
    return tuple(parsed)


def trust_allows(document: str, caller_account: str, caller_arn: str) -> bool:
    """Whether the trust policy lets the caller assume the role: `acs:ram::ACCOUNT:root` trusts every
    principal of that account; `acs:ram::ACCOUNT:user/NAME` one user. An explicit Deny wins."""

    def names_caller(pattern: str) -> bool:
        if pattern == f"acs:ram::{caller_account}:root" or pattern == caller_account:
            return True
        return fnmatchcase(caller_arn, pattern)

    allowed = False
    for statement in parse_trust(document):
        if not any(fnmatchcase("sts:assumerole", action) for action in statement.actions):
            continue
        if any(names_caller(p) for p in statement.principals):
            if not statement.allow:
                return False
            allowed = True
    return allowed
