"""What each column can hold, read from the schema: validation bounds text by it before any SQL runs."""

from __future__ import annotations

from sqlalchemy import Column, String
from sqlalchemy.sql.schema import Table

from hpcplane.store import tables

TABLES: dict[str, Table] = dict(tables.metadata.tables)


def width(table: str, column: str, *, unbounded: int | None = None) -> int:
    """The declared length of a String column (PostgreSQL's VARCHAR(n); SQLite would take any length);
    for a Text column, `unbounded` (the limit the caller chose), else ValueError."""
    col: Column[object] = TABLES[table].c[column]
    length = col.type.length if isinstance(col.type, String) else None
    if length is None:
        if unbounded is None:
            raise ValueError(f"{table}.{column} is not a bounded String column")
        return unbounded
    return length


def fit(table: str, column: str, value: str | None) -> str | None:
    """`value` as a column can always store it: NUL bytes and lone surrogates replaced, cut to the width.
    For records the server writes whatever a client sent (the audit trail), never for parameters."""
    if value is None:
        return None
    clean = value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    return clean[: width(table, column)]
