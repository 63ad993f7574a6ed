"""Reading the flattened list parameters of the SDKs: Instance.1.Id, Instance.2.Id, ..."""

from __future__ import annotations

from collections.abc import Mapping

from hpcplane.api import values
from hpcplane.domain.errors import InvalidParams


def indexed(
    raw: Mapping[str, str], prefix: str, field: str, *, maximum: int, required: bool
) -> list[tuple[str, str]]:
    """The values of `prefix.N.field` for N = 1..maximum, in N order, as (parameter name, value).

    N is canonical (ASCII digits, no leading zero): `Instance.01.Id` or an Arabic-Indic one is InvalidParams,
    never a second spelling of `Instance.1.Id`."""
    head, tail = f"{prefix}.", f".{field}"
    found: list[tuple[int, str, str]] = []
    for name, value in raw.items():
        if not (name.startswith(head) and name.endswith(tail)) or len(name) < len(head) + len(tail):
            continue
        number = values.list_index(name, name[len(head) : len(name) - len(tail)], maximum)
        if not value:
            raise InvalidParams(name, "is empty")
        found.append((number, name, values.check_text(name, value)))
    if not found and required:
        raise InvalidParams(f"{prefix}.1.{field}", "is required")
    return [(name, value) for _, name, value in sorted(found)]
