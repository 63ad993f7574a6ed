"""Many rows in one bound parameter: a JSON array of arrays, read in SQL by `json_array_elements`.

The engine's batched statements (PostgreSQL) send a round's rows this way: one statement text whatever
the number of rows, so it is prepared once, and one `json.dumps` by the C encoder costs the worker less
than binding a typed array per column (psycopg's array dumper escapes each text in Python). A timestamp
travels as whole microseconds since the epoch: exact, and cheaper to make and to read than ISO text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def json_value(value: Any) -> Any:
    """What the JSON carries for a value json cannot encode itself: an aware datetime as whole
    microseconds since the epoch (anything else is refused, as json would)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a hot statement")
        return (value - _EPOCH) // _MICROSECOND
    raise TypeError(f"not a value of a batched row: {type(value).__name__}")


def encode(rows: Sequence[Sequence[Any]]) -> str:
    """The rows as the one parameter (only a datetime makes json's C encoder call back, `default`)."""
    return json.dumps(rows, separators=(",", ":"), default=json_value)


def field(n: int, name: str, kind: str) -> str:
    """Element `n` of a JSON row (`r`, an element of json_array_elements) as the column `name` of
    PostgreSQL type `kind`."""
    if kind == "text":
        return f"r->>{n} AS {name}"
    if kind == "timestamp":
        return f"timestamp '1970-01-01' + (r->>{n})::bigint * interval '1 microsecond' AS {name}"
    return f"(r->>{n})::{kind} AS {name}"
