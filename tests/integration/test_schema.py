"""The migrations build exactly the schema that store/tables.py describes, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from hpcplane.store.db import Database
from hpcplane.store.tables import metadata


def test_migrated_schema_matches_the_tables(db: Database) -> None:
    """Autogenerate finds nothing to change: no table, column, type, nullability or index differs."""
    with db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": False}
        )
        differences = compare_metadata(context, metadata)
    assert differences == []
