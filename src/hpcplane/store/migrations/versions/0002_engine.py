"""The task engine: plans, step state, leases, idempotency tokens, operation locks, simulated-cloud log.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from hpcplane.store.tables import BigId
from hpcplane.store.types import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TASK_COLUMNS: list[sa.Column[Any]] = [
    sa.Column("plan", sa.Text, nullable=False, server_default="[]"),
    sa.Column("state", sa.Text, nullable=False, server_default="{}"),
    sa.Column("run_after", UtcDateTime, nullable=True),
    sa.Column("lease_owner", sa.String(128), nullable=True),
    sa.Column("lease_token", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lease_expires_at", UtcDateTime, nullable=True),
    sa.Column("lost_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("client_token", sa.String(64), nullable=True),
    sa.Column("params_hash", sa.String(64), nullable=True),
]


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        for column in _TASK_COLUMNS:
            batch.add_column(column)
    op.create_index(
        "ix_tasks_due",
        "tasks",
        ["run_after"],
        sqlite_where=sa.text("finished_at IS NULL"),
        postgresql_where=sa.text("finished_at IS NULL"),
    )
    op.create_index(
        "ix_tasks_client_token", "tasks", ["account_id", "task_type", "client_token"], unique=True
    )
    with op.batch_alter_table("clusters") as batch:
        batch.add_column(sa.Column("task_id", sa.String(64), nullable=True))
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("task_id", sa.String(64), nullable=True))
    op.create_table(
        "sim_calls",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("token", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("instance_ids", sa.Text, nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_sim_calls_token", "sim_calls", ["token"])


def downgrade() -> None:
    op.drop_table("sim_calls")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("task_id")
    with op.batch_alter_table("clusters") as batch:
        batch.drop_column("task_id")
    op.drop_index("ix_tasks_client_token", "tasks")
    op.drop_index("ix_tasks_due", "tasks")
    with op.batch_alter_table("tasks") as batch:
        for column in reversed(_TASK_COLUMNS):
            batch.drop_column(column.name)
