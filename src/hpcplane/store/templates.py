"""Job templates in the store: one row per template, owned by an account."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from hpcplane.store.paging import counted_page
from hpcplane.store.tables import job_templates


def insert_template(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(insert(job_templates).values(**values))


def update_template(conn: Connection, account_id: str, template_id: str, values: Mapping[str, Any]) -> bool:
    """Overwrite the template's fields; False when the account has no such template."""
    result = conn.execute(
        update(job_templates)
        .where(job_templates.c.id == template_id, job_templates.c.account_id == account_id)
        .values(**values)
    )
    return result.rowcount == 1


def delete_templates(conn: Connection, account_id: str, template_ids: list[str]) -> int:
    result = conn.execute(
        delete(job_templates).where(
            job_templates.c.account_id == account_id, job_templates.c.id.in_(template_ids)
        )
    )
    return int(result.rowcount)


def page(
    conn: Connection, account_id: str, *, name: str | None, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """One page of the account's templates (by Name when given), oldest first, and how many match."""
    where = [job_templates.c.account_id == account_id]
    if name is not None:
        where.append(job_templates.c.name == name)
    query = select(job_templates).order_by(job_templates.c.created_at, job_templates.c.id)
    rows, total = counted_page(conn, job_templates, where, query, offset=offset, limit=limit)
    return [dict(row) for row in rows], total


def get_template(conn: Connection, account_id: str, template_id: str) -> dict[str, Any] | None:
    row = (
        conn.execute(
            select(job_templates).where(
                job_templates.c.id == template_id, job_templates.c.account_id == account_id
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None
