"""Each cluster counts its task rows, so ListTasks' TotalCount costs one indexed read at any history size.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clusters") as batch:
        batch.add_column(sa.Column("task_count", sa.BigInteger, nullable=False, server_default="0"))
    op.execute(
        "UPDATE clusters SET task_count = (SELECT COUNT(*) FROM tasks WHERE tasks.cluster_id = clusters.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("clusters") as batch:
        batch.drop_column("task_count")
