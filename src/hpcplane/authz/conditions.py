"""RAM policy conditions: the operator families, their value parsing, and wildcard matching."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

IF_EXISTS = "IfExists"

_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_EPOCH = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class PolicyError(ValueError):
    """A malformed policy document; `position` says where (a JSON line and column, or an element path)."""

    position: str

    def __init__(self, message: str, position: str = "") -> None:
        super().__init__(message)  # str() is the message alone: callers say "at {position}" their own way
        self.message = message
        self.position = position


def wildcard_match(pattern: str, text: str, *, ignore_case: bool = False) -> bool:
    """Whether `text` matches `pattern`, where `*` is any run of characters (even none) and `?` one.

    Greedy matching with one backtrack point: O(len(pattern) * len(text)) at worst, never exponential.
    """
    if ignore_case:
        pattern, text = pattern.casefold(), text.casefold()
    p = t = 0
    star, mark = -1, 0
    while t < len(text):
        if p < len(pattern) and pattern[p] == "*":
            star, mark, p = p, t, p + 1
        elif p < len(pattern) and pattern[p] in ("?", text[t]):
            p, t = p + 1, t + 1
        elif star >= 0:
            mark += 1
            p, t = star + 1, mark
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


# --- policy values (parsed at creation; a bad one is a PolicyError) and request values (None: unusable)


def _policy_string(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int):
        return str(value)
    raise ValueError("must be a string")


def _request_string(value: object) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None:
        return None
    return str(value)


def _decimal(value: object) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        number = Decimal(value.strip())
    else:
        return None
    return number if number.is_finite() else None


def _policy_number(value: object) -> Decimal:
    number = _decimal(value)
    if number is None:
        raise ValueError("must be a number")
    return number


def _instant(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else None
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            text = value.strip()
            if _EPOCH.fullmatch(text):
                return datetime.fromtimestamp(float(text), UTC)
            when = datetime.fromisoformat(text)
            return when if when.tzinfo is not None else None
    except (ValueError, OverflowError, OSError, InvalidOperation):
        return None
    return None


def _policy_instant(value: object) -> datetime:
    when = _instant(value)
    if when is None:
        raise ValueError(
            "must be an ISO 8601 time with a zone (2019-08-12T17:00:00+08:00 or ...Z) or epoch seconds"
        )
    return when


def _boolean(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _policy_boolean(value: object) -> bool:
    flag = _boolean(value)
    if flag is None:
        raise ValueError('must be true or false (or the strings "true" / "false")')
    return flag


def _policy_network(value: object) -> IpNetwork:
    if not isinstance(value, str):
        raise ValueError("must be an IP address or CIDR block as a string")
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or CIDR block") from None


def _request_address(value: object) -> IpAddress | None:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        address: IpAddress = value
    elif isinstance(value, str):
        try:
            address = ipaddress.ip_address(value.strip())
        except ValueError:
            return None
    else:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
    return address


def _in_network(address: Any, network: Any) -> bool:
    return bool(address in network)


@dataclass(frozen=True, slots=True)
class _Family:
    parse: Callable[[object], object]  # a policy value, or ValueError
    coerce: Callable[[object], object | None]  # a request value, or None when it cannot be compared


_STRING = _Family(_policy_string, _request_string)
_NUMERIC = _Family(_policy_number, _decimal)
_DATE = _Family(_policy_instant, _instant)
_BOOL = _Family(_policy_boolean, _boolean)
_IP = _Family(_policy_network, _request_address)

Test = Callable[[Any, Any], bool]  # (request value, policy value) -> matches
_ORDERED: dict[str, Test] = {
    "Equals": lambda a, b: bool(a == b),
    "LessThan": lambda a, b: bool(a < b),
    "LessThanEquals": lambda a, b: bool(a <= b),
    "GreaterThan": lambda a, b: bool(a > b),
    "GreaterThanEquals": lambda a, b: bool(a >= b),
}


def _operators() -> dict[str, tuple[_Family, Test, bool]]:
    """Each base operator: its family, its test, and whether it is negated (matches none of the values)."""
    table: dict[str, tuple[_Family, Test, bool]] = {
        "StringEquals": (_STRING, lambda a, b: bool(a == b), False),
        "StringNotEquals": (_STRING, lambda a, b: bool(a == b), True),
        "StringEqualsIgnoreCase": (_STRING, lambda a, b: bool(a.casefold() == b.casefold()), False),
        "StringNotEqualsIgnoreCase": (_STRING, lambda a, b: bool(a.casefold() == b.casefold()), True),
        "StringLike": (_STRING, lambda a, b: wildcard_match(b, a), False),
        "StringNotLike": (_STRING, lambda a, b: wildcard_match(b, a), True),
        "Bool": (_BOOL, lambda a, b: bool(a == b), False),
        "IpAddress": (_IP, _in_network, False),
        "NotIpAddress": (_IP, _in_network, True),
    }
    for prefix, family in (("Numeric", _NUMERIC), ("Date", _DATE)):
        for suffix, test in _ORDERED.items():
            table[prefix + suffix] = (family, test, False)
        table[prefix + "NotEquals"] = (family, _ORDERED["Equals"], True)
    return table


OPERATORS = _operators()


@dataclass(frozen=True)
class Condition:
    """One key under one operator: `{"StringEquals": {"acs:SourceVpc": ["vpc-1", "vpc-2"]}}`."""

    operator: str  # as written, e.g. "StringNotEqualsIfExists"
    key: str  # as written; matched case-insensitively
    values: tuple[object, ...]  # parsed: str, Decimal, aware datetime, bool or an IP network
    negated: bool
    if_exists: bool
    _family: _Family
    _test: Test

    def matches(self, keys: Mapping[str, object]) -> bool:
        """Whether the request satisfies this condition; `keys` must be keyed by lower-cased names."""
        raw = keys.get(self.key.lower())
        if raw is None:
            return self.if_exists or self.negated
        value = self._family.coerce(raw)
        hit = value is not None and any(self._safe_test(value, expected) for expected in self.values)
        return not hit if self.negated else hit

    def _safe_test(self, value: object, expected: object) -> bool:
        try:
            return self._test(value, expected)
        except TypeError:  # e.g. an IPv6 request address against an IPv4 block
            return False


def parse_operator(operator: str, block: object, position: str) -> tuple[Condition, ...]:
    """The Conditions under one operator, `{"Key": value | [values], ...}` at `position`.

    Raises PolicyError at `position` for an unknown operator, at `position.Key` for a bad key, and at
    `position.Key[i]` for a bad item of a list of values.
    """
    base = operator.removesuffix(IF_EXISTS)
    if base not in OPERATORS:
        raise PolicyError(f"unknown condition operator {operator!r}", position)
    if not isinstance(block, dict):
        raise PolicyError("must be an object mapping condition keys to values", position)
    family, test, negated = OPERATORS[base]
    conditions: list[Condition] = []
    for key, raw in block.items():
        where = f"{position}.{key}"
        if not key.strip():
            raise PolicyError("a condition key must not be empty", where)
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            raise PolicyError("a condition key needs at least one value", where)
        values: list[object] = []
        for index, item in enumerate(items):
            try:
                values.append(family.parse(item))
            except ValueError as error:
                at = f"{where}[{index}]" if isinstance(raw, list) else where
                raise PolicyError(str(error), at) from None
        conditions.append(Condition(operator, key, tuple(values), negated, operator != base, family, test))
    return tuple(conditions)
