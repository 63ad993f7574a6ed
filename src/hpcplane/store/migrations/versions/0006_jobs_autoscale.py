"""Jobs and autoscaling configurations.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from hpcplane.store.types import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _str(name: str, width: int) -> sa.Column[str]:
    return sa.Column(name, sa.String(width), nullable=False, server_default="")


def _cluster_fk(*, primary_key: bool = False) -> sa.Column[str]:
    return sa.Column(
        "cluster_id",
        sa.String(64),
        sa.ForeignKey("clusters.id", ondelete="CASCADE"),
        nullable=False,
        primary_key=primary_key,
    )


def upgrade() -> None:
    op.create_table(
        "jobs",
        _cluster_fk(),
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(30), nullable=False),
        sa.Column("queue", sa.String(63), nullable=False),
        sa.Column("command_line", sa.String(2048), nullable=False),
        sa.Column("nodes", sa.Integer, nullable=False),
        sa.Column("cpus", sa.Integer, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("re_runable", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("state", sa.String(16), nullable=False),
        _str("node_list", 2048),
        _str("stdout_path", 512),
        _str("stderr_path", 512),
        _str("package_path", 512),
        _str("variables", 2048),
        _str("array_request", 64),
        _str("clock_time", 16),
        _str("comment", 256),
        sa.Column("submitted_at", UtcDateTime, nullable=False),
        sa.Column("started_at", UtcDateTime, nullable=True),
        sa.Column("ends_at", UtcDateTime, nullable=True),
        sa.Column("finished_at", UtcDateTime, nullable=True),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("deleted_at", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("cluster_id", "id"),
    )
    op.create_index("ix_jobs_cluster_id_seq", "jobs", ["cluster_id", "seq"])
    op.create_index("ix_jobs_state", "jobs", ["state"])
    op.create_table(
        "autoscale_configs",
        _cluster_fk(primary_key=True),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False, server_default="{}"),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("autoscale_configs")
    op.drop_table("jobs")
