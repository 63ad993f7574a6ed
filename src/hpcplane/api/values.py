"""The rules every value obeys, whatever the action: text, integers, list indexes and JSON.

A value that breaks one is InvalidParams naming the parameter, refused the same way on SQLite and
PostgreSQL before any SQL runs (PostgreSQL refuses NUL bytes in text, and nobody can encode a lone
surrogate as UTF-8).
"""

from __future__ import annotations

import re

import orjson

from hpcplane.domain.errors import InvalidParams

# An integer: an optional sign and 1 to 64 ASCII digits (callers then check their range).
INTEGER_DIGITS = 64
_INTEGER = re.compile(rf"[+-]?[0-9]{{1,{INTEGER_DIGITS}}}", re.ASCII)
# A list index: 1 to 6 ASCII digits, no leading zero (so one index has one spelling).
INDEX_DIGITS = 6
_INDEX = re.compile(rf"[1-9][0-9]{{0,{INDEX_DIGITS - 1}}}", re.ASCII)
_SURROGATE = re.compile("[\ud800-\udfff]")
JSON_MAX_DEPTH = 32
JSON_MAX_CHARS = 16_384
_JSON_INT_MAX = 2**63 - 1


def check_text(name: str, value: str) -> str:
    """`value` unchanged, unless it holds a NUL byte or a lone surrogate (InvalidParams naming `name`)."""
    if "\x00" in value:
        raise InvalidParams(name, "holds a NUL byte")
    if not value.isascii() and _SURROGATE.search(value):  # ASCII holds no surrogate: skip the search
        raise InvalidParams(name, "is not valid Unicode")
    return value


def ascii_int(name: str, text: str) -> int:
    """An integer written in ASCII digits (surrounding whitespace ignored), at most INTEGER_DIGITS long."""
    stripped = text.strip()
    if not _INTEGER.fullmatch(stripped):
        raise InvalidParams(name, f"is not an integer of at most {INTEGER_DIGITS} ASCII digits")
    return int(stripped)


def list_index(name: str, text: str, maximum: int) -> int:
    """The N of a flattened list parameter (`Instance.N.Id`): canonical ASCII, 1 to `maximum`."""
    if not _INDEX.fullmatch(text):
        raise InvalidParams(name, "N must be written in ASCII digits without a leading zero")
    number = int(text)
    if number > maximum:
        raise InvalidParams(name, f"N must be 1 to {maximum}")
    return number


def read_json(
    name: str, text: str, *, max_depth: int = JSON_MAX_DEPTH, max_chars: int = JSON_MAX_CHARS
) -> object:
    """A JSON value of at most `max_chars` characters and `max_depth` levels of nesting, whose strings
    and keys obey check_text and whose integers fit in 64 bits; else InvalidParams naming `name`."""
    if len(text) > max_chars:
        raise InvalidParams(name, f"is longer than {max_chars} characters")
    _check_depth(name, text, max_depth)
    try:
        value: object = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidParams(name, "is not valid JSON") from None
    _check_tree(name, value)
    return value


def _check_depth(name: str, text: str, max_depth: int) -> None:
    """Count the nesting of brackets outside strings, before any parser recurses into them."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                raise InvalidParams(name, f"nests deeper than {max_depth} levels")
        elif char in "]}":
            depth -= 1


def _check_tree(name: str, value: object) -> None:
    """Walk the parsed value without recursion: strings and keys, and integers' range."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            check_text(name, item)
        elif isinstance(item, bool | float) or item is None:
            continue
        elif isinstance(item, int):
            if not -_JSON_INT_MAX - 1 <= item <= _JSON_INT_MAX:
                raise InvalidParams(name, "holds an integer out of the 64-bit range")
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
