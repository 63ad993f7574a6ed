"""PostgreSQL: the tasks table keeps 30% of each page free, so a step's UPDATE stays on its page.

A step's fenced UPDATE changes no indexed column (engine/runner.py, `_apply`), so PostgreSQL can update
the row in place (a heap-only tuple: no new entry in any of the table's seven indexes) if the row's page
has room for the new version. With the default fillfactor (100) the pages of freshly accepted tasks are
full, and 5-9% of the steps' UPDATEs were HOT; at 70, 48-54% (docs/decisions/0060). Pages written before
this revision keep their fill until they are rewritten (VACUUM FULL or pg_repack); new tasks get the
room at once. SQLite has no such setting.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

FILLFACTOR = 70


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE tasks SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE tasks RESET (fillfactor)")
