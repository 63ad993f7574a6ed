"""The tables of the E-HPC actions automation calls: cluster logs, job templates, users, queues.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from hpcplane.store.tables import BigId
from hpcplane.store.types import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


_TEMPLATE_TEXT = (
    ("array_request", 64),
    ("clock_time", 16),
    ("input_file_url", 1024),
    ("mem", 16),
    ("package_path", 512),
    ("queue", 64),
    ("runas_user", 32),
    ("stderr_redirect_path", 512),
    ("stdout_redirect_path", 512),
    ("unzip_cmd", 16),
    ("variables", 2048),
)
_TEMPLATE_INTS = ("gpu", "node", "priority", "task", "thread")


def _str(name: str, width: int) -> sa.Column[str]:
    return sa.Column(name, sa.String(width), nullable=False, server_default="")


def _flag(name: str) -> sa.Column[bool]:
    return sa.Column(name, sa.Boolean, nullable=False, server_default=sa.text("false"))


def _account_fk() -> sa.Column[str]:
    return sa.Column(
        "account_id", sa.String(32), sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    )


def _cluster_fk() -> sa.Column[str]:
    return sa.Column(
        "cluster_id", sa.String(64), sa.ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "cluster_logs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        _cluster_fk(),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("message", sa.String(512), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_cluster_logs_cluster_id_id", "cluster_logs", ["cluster_id", "id"])
    op.create_table(
        "job_templates",
        sa.Column("id", sa.String(64), primary_key=True),
        _account_fk(),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("command_line", sa.String(2048), nullable=False),
        *(_str(name, width) for name, width in _TEMPLATE_TEXT),
        *(sa.Column(name, sa.Integer, nullable=False, server_default="0") for name in _TEMPLATE_INTS),
        _flag("re_runable"),
        _flag("with_unzip_cmd"),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_job_templates_account_id_created_at", "job_templates", ["account_id", "created_at"])
    op.create_table(
        "cluster_users",
        _cluster_fk(),
        sa.Column("name", sa.String(30), nullable=False),
        sa.Column("user_group", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(160), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("cluster_id", "name"),
    )
    op.create_table(
        "cluster_queues",
        _cluster_fk(),
        sa.Column("name", sa.String(63), nullable=False),
        _str("compute_instance_type", 256),
        _str("deployment_set_id", 64),
        sa.Column("network_interface_traffic_mode", sa.String(16), nullable=False, server_default="Standard"),
        _str("resource_group_id", 64),
        _flag("use_ess"),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("cluster_id", "name"),
    )


def downgrade() -> None:
    op.drop_table("cluster_queues")
    op.drop_table("cluster_users")
    op.drop_table("job_templates")
    op.drop_table("cluster_logs")
