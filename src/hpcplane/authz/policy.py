"""The RAM policy language: parse a document (refusing a malformed one with its position) and evaluate."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from hpcplane.authz.conditions import Condition, PolicyError, parse_operator, wildcard_match

__all__ = [
    "Condition",
    "Policy",
    "PolicyError",
    "RequestContext",
    "Statement",
    "Verdict",
    "evaluate",
    "parse_policy",
]

VERSION = "1"
_ROOT_ELEMENTS = ("Version", "Statement")
_STATEMENT_ELEMENTS = ("Effect", "Action", "NotAction", "Resource", "NotResource", "Condition")
_ACTION = re.compile(r"\*|[^:\s]+:[^:\s]+")

Effect = Literal["Allow", "Deny"]


@dataclass(frozen=True)
class RequestContext:
    """What one call asks for: its RAM action, its resource ("*" for an All-Resources action), its keys."""

    action: str  # e.g. "ehpc:ListTasks"
    resource: str  # "*" or an ARN: "acs:ehpc:cn-hangzhou:1234567890123456:cluster/ehpc-hz-abc"
    keys: Mapping[str, object] = field(default_factory=dict)  # condition keys present in the request


@dataclass(frozen=True)
class Statement:
    """One statement. Exactly one of actions / not_actions, and of resources / not_resources, is set."""

    label: str  # its place in the document, e.g. "Statement[0]"
    effect: Effect
    actions: tuple[str, ...] | None = None
    not_actions: tuple[str, ...] | None = None
    resources: tuple[str, ...] | None = None
    not_resources: tuple[str, ...] | None = None
    conditions: tuple[Condition, ...] = ()

    def __post_init__(self) -> None:
        if (self.actions is None) == (self.not_actions is None):
            raise ValueError("a Statement takes exactly one of actions and not_actions")
        if (self.resources is None) == (self.not_resources is None):
            raise ValueError("a Statement takes exactly one of resources and not_resources")

    def matches(self, ctx: RequestContext) -> bool:
        """Whether its action, resource and every condition match the request."""
        return self._applies(ctx.action, ctx.resource, _lowered(ctx.keys))

    def _applies(self, action: str, resource: str, keys: Mapping[str, object]) -> bool:
        return (
            _listed(self.actions, self.not_actions, action, ignore_case=True)
            and _listed(self.resources, self.not_resources, resource, ignore_case=False)
            and all(condition.matches(keys) for condition in self.conditions)
        )


@dataclass(frozen=True)
class Policy:
    """A parsed policy document."""

    version: str
    statements: tuple[Statement, ...]


@dataclass(frozen=True)
class Verdict:
    """The decision, and the statement that made it (none for ImplicitDeny)."""

    allowed: bool
    kind: Literal["ExplicitDeny", "Allow", "ImplicitDeny"]
    policy: str | None  # the name of the policy whose statement decided
    statement: str | None  # that statement's label, e.g. "Statement[2]"


def evaluate(policies: Sequence[tuple[str, Policy]], ctx: RequestContext) -> Verdict:
    """Any matching Deny wins; otherwise any matching Allow grants; otherwise the request is denied.

    The first deciding statement in the order given (policies, then statements) is reported.
    """
    keys = _lowered(ctx.keys)
    allowed_by: tuple[str, str] | None = None
    for name, policy in policies:
        for statement in policy.statements:
            if not statement._applies(ctx.action, ctx.resource, keys):
                continue
            if statement.effect == "Deny":
                return Verdict(False, "ExplicitDeny", name, statement.label)
            if allowed_by is None:
                allowed_by = (name, statement.label)
    if allowed_by is not None:
        return Verdict(True, "Allow", *allowed_by)
    return Verdict(False, "ImplicitDeny", None, None)


def _lowered(keys: Mapping[str, object]) -> dict[str, object]:
    return {name.lower(): value for name, value in keys.items()}


def _listed(
    patterns: tuple[str, ...] | None, excluded: tuple[str, ...] | None, value: str, *, ignore_case: bool
) -> bool:
    if patterns is not None:
        return any(wildcard_match(pattern, value, ignore_case=ignore_case) for pattern in patterns)
    assert excluded is not None
    return not any(wildcard_match(pattern, value, ignore_case=ignore_case) for pattern in excluded)


# --- parsing


class _Object(dict[str, Any]):
    """A JSON object that remembers the names it saw more than once (json keeps only the last)."""

    duplicates: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    result = _Object(pairs)
    names = [name for name, _ in pairs]
    result.duplicates = tuple(dict.fromkeys(name for name in names if names.count(name) > 1))
    return result


class _Constant:
    """NaN or Infinity, which Python's json accepts but JSON does not: refused wherever it is used."""

    def __init__(self, name: str) -> None:
        self.name = name


def parse_policy(document: str) -> Policy:
    """Parse and fully validate a policy document; raises PolicyError saying where it is malformed."""
    try:
        root = json.loads(document, object_pairs_hook=_object, parse_constant=_Constant)
    except json.JSONDecodeError as error:
        position = f"line {error.lineno}, column {error.colno}"
        raise PolicyError(f"invalid JSON: {error.msg}", position) from None
    except RecursionError:
        raise PolicyError("invalid JSON: nested too deeply", "document") from None
    fields = _fields(root, "document", _ROOT_ELEMENTS, path_prefix="")
    version = fields.get("Version")
    if version is None:
        raise PolicyError(f'Version is required and must be "{VERSION}"', "Version")
    if version != VERSION:
        raise PolicyError(f'unsupported Version {_show(version)}: must be the string "{VERSION}"', "Version")
    raw_statements = fields.get("Statement")
    if not isinstance(raw_statements, list) or not raw_statements:
        raise PolicyError("Statement is required and must be a non-empty list of statements", "Statement")
    statements = tuple(_statement(raw, f"Statement[{index}]") for index, raw in enumerate(raw_statements))
    return Policy(VERSION, statements)


def _statement(raw: object, label: str) -> Statement:
    fields = _fields(raw, label, _STATEMENT_ELEMENTS, path_prefix=f"{label}.")
    effect = fields.get("Effect")
    if effect not in ("Allow", "Deny"):
        problem = "is required" if effect is None else f"is {_show(effect)}"
        raise PolicyError(f'Effect {problem}: it must be "Allow" or "Deny"', f"{label}.Effect")
    actions, not_actions = _either(fields, label, "Action", "NotAction", _check_action)
    resources, not_resources = _either(fields, label, "Resource", "NotResource", _check_resource)
    conditions = _conditions(fields["Condition"], f"{label}.Condition") if "Condition" in fields else ()
    return Statement(label, effect, actions, not_actions, resources, not_resources, conditions)


def _either(
    fields: Mapping[str, object], label: str, positive: str, negative: str, check: Any
) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    if positive in fields and negative in fields:
        raise PolicyError(f"gives both {positive} and {negative}: give exactly one", f"{label}.{negative}")
    if positive not in fields and negative not in fields:
        raise PolicyError(f"{positive} (or {negative}) is required", f"{label}.{positive}")
    name = positive if positive in fields else negative
    patterns = _patterns(fields[name], f"{label}.{name}", check)
    return (patterns, None) if name == positive else (None, patterns)


def _patterns(raw: object, path: str, check: Any) -> tuple[str, ...]:
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise PolicyError("must name at least one pattern", path)
    for index, item in enumerate(items):
        where = f"{path}[{index}]" if isinstance(raw, list) else path
        if not isinstance(item, str) or not item:
            raise PolicyError(f"must be a non-empty string, not {_show(item)}", where)
        check(item, where)
    return tuple(items)


def _check_action(pattern: str, where: str) -> None:
    if not _ACTION.fullmatch(pattern):
        raise PolicyError(f"{pattern!r} is not an action: write service:Api (wildcards * and ?)", where)


def _check_resource(pattern: str, where: str) -> None:
    if pattern != pattern.strip():
        raise PolicyError(f"{pattern!r} has leading or trailing spaces", where)


def _conditions(raw: object, path: str) -> tuple[Condition, ...]:
    operators = _fields(raw, path, None, path_prefix=f"{path}.")
    conditions: list[Condition] = []
    for operator, block in operators.items():
        where = f"{path}.{operator}"
        if isinstance(block, _Object) and block.duplicates:
            raise PolicyError("condition key given more than once", f"{where}.{block.duplicates[0]}")
        conditions.extend(parse_operator(operator, block, where))
    return tuple(conditions)


def _fields(raw: object, path: str, allowed: tuple[str, ...] | None, *, path_prefix: str) -> _Object:
    if not isinstance(raw, _Object):
        raise PolicyError(f"must be a JSON object, not {_show(raw)}", path)
    if raw.duplicates:
        raise PolicyError("element given more than once", path_prefix + raw.duplicates[0])
    if allowed is not None:
        for name in raw:
            if name not in allowed:
                expected = ", ".join(allowed)
                raise PolicyError(f"unknown element {name!r}; expected {expected}", path_prefix + name)
    return raw


def _show(value: object) -> str:
    if isinstance(value, _Constant):
        return value.name
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return json.dumps(value)
