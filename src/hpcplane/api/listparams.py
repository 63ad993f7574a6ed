"""Reading the flattened list parameters of the SDKs: Instance.1.Id, Instance.2.Id, ..."""

from __future__ import annotations

import re
from collections.abc import Mapping

from hpcplane.domain.errors import InvalidParams


def indexed(
    raw: Mapping[str, str], prefix: str, field: str, *, maximum: int, required: bool
) -> list[tuple[str, str]]:
    """The values of `prefix.N.field` for N = 1..maximum, in N order, as (parameter name, value)."""
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.{re.escape(field)}$")
    found: list[tuple[int, str, str]] = []
    for name, value in raw.items():
        match = pattern.match(name)
        if match is None:
            continue
        number = int(match.group(1))
        if not 1 <= number <= maximum:
            raise InvalidParams(name, f"N must be 1 to {maximum}")
        if not value:
            raise InvalidParams(name, "is empty")
        found.append((number, name, value))
    if not found and required:
        raise InvalidParams(f"{prefix}.1.{field}", "is required")
    return [(name, value) for _, name, value in sorted(found)]
