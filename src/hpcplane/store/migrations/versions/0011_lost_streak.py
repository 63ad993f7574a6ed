"""Tasks count the leases lost since their last recorded step (`lost_streak`), which HPCPLANE_MAX_ATTEMPTS
now bounds instead of the leases lost over the task's whole life (`lost_attempts`, kept as a diagnostic).

A worker killed while it holds many tasks' leases (a thread runs up to 16 tasks side by side) cost each
of them an attempt even when they were progressing; a few such kills failed tasks that every other
worker could have finished (docs/decisions/0063). Existing rows start at 0: a task running during the
upgrade is forgiven the leases it lost before it.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("lost_streak", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("lost_streak")
