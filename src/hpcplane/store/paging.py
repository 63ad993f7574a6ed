"""One page of a table's rows and how many match: the count+page read of the List* families."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, RowMapping, Select, Table, func, select


def counted_page(
    conn: Connection,
    table: Table,
    where: Sequence[ColumnElement[bool]],
    query: Select[Any],
    *,
    offset: int,
    limit: int,
) -> tuple[list[RowMapping], int]:
    """The rows of `query` (its columns and order) matching `where`, from `offset`, at most `limit` of
    them; and how many rows of `table` match `where`."""
    total = conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
    rows = conn.execute(query.where(*where).offset(offset).limit(limit)).mappings()
    return list(rows), int(total)
