"""JSON-string parameters (Templates, Filter, ...) read with bounds on size and nesting.

A local reader until the shared bounded JSON reader of api/params.py lands; it refuses before parsing
anything over `max_bytes` or nested deeper than `max_depth`, and every failure is InvalidParams naming
the parameter.
"""

from __future__ import annotations

import json

from hpcplane.api.params import Params
from hpcplane.domain.errors import InvalidParams

MAX_BYTES = 64 * 1024
MAX_DEPTH = 32


def _depth(text: str) -> int:
    """The deepest nesting of [ and { outside strings."""
    depth = deepest = 0
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
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def json_param(
    p: Params, name: str, *, required: bool = False, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH
) -> object | None:
    """The parsed value of a JSON-string parameter; None when absent and not required."""
    text = p.text(name, required=required, max_length=max_bytes)
    if text is None:
        return None
    if len(text.encode()) > max_bytes:
        raise InvalidParams(name, f"is longer than {max_bytes} bytes")
    if _depth(text) > max_depth:
        raise InvalidParams(name, f"is nested deeper than {max_depth}")
    try:
        value: object = json.loads(text)
    except ValueError:
        raise InvalidParams(name, "is not JSON") from None
    return value


def id_list(p: Params, name: str, *, key: str = "Id", maximum: int) -> list[str]:
    """A required JSON list of objects {"<key>": "<id>"} (DeleteJobTemplates' Templates, DeleteJobs' Jobs)."""
    value = json_param(p, name, required=True)
    if not isinstance(value, list) or not value:
        raise InvalidParams(name, f'must be a non-empty JSON list of {{"{key}": ...}}')
    if len(value) > maximum:
        raise InvalidParams(name, f"may name at most {maximum} items")
    found: list[str] = []
    for item in value:
        ident = item.get(key) if isinstance(item, dict) else None
        if not isinstance(ident, str) or not ident or len(ident) > 64:
            raise InvalidParams(name, f'every item must be {{"{key}": "<id of at most 64 characters>"}}')
        found.append(ident)
    return list(dict.fromkeys(found))
