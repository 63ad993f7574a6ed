"""JSON-string lists of ids (DeleteJobTemplates' Templates, DeleteJobs' Jobs), read with `Params.json`'s
size and nesting bounds; every failure is InvalidParams naming the parameter."""

from __future__ import annotations

from hpcplane.api.params import Params
from hpcplane.domain.errors import InvalidParams


def id_list(p: Params, name: str, *, key: str = "Id", maximum: int) -> list[str]:
    """A required JSON list of objects {"<key>": "<id>"} (DeleteJobTemplates' Templates, DeleteJobs' Jobs)."""
    value = p.json(name, required=True)
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
