"""The provider and host that own each cluster; tasks bound to the owning host.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clusters") as batch:
        batch.add_column(sa.Column("provider", sa.String(32), nullable=False, server_default="simulated"))
        batch.add_column(sa.Column("host", sa.String(255), nullable=True))
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("host", sa.String(255), nullable=True))
    op.create_index("ix_clusters_host", "clusters", ["host"])


def downgrade() -> None:
    op.drop_index("ix_clusters_host", table_name="clusters")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("host")
    with op.batch_alter_table("clusters") as batch:
        batch.drop_column("host")
        batch.drop_column("provider")
