"""Initial schema: accounts, RAM users, access keys, clusters, nodes, tasks, nonces.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from hpcplane.store.tables import BigId
from hpcplane.store.types import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _text(name: str, default: str = "") -> sa.Column[str]:
    return sa.Column(name, sa.Text, nullable=False, server_default=default)


def _str(name: str, length: int, default: str = "") -> sa.Column[str]:
    return sa.Column(name, sa.String(length), nullable=False, server_default=default)


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("ehpc_enabled", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "ram_users",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "account_id", sa.String(32), sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("account_id", "name"),
    )
    op.create_table(
        "access_keys",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "account_id", sa.String(32), sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("ram_users.id", ondelete="CASCADE"), nullable=True),
        sa.Column("secret_enc", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_access_keys_account_id", "access_keys", ["account_id"])
    op.create_table(
        "clusters",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "account_id", sa.String(32), sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("region_id", sa.String(32), nullable=False),
        _str("zone_id", 64),
        sa.Column("name", sa.String(128), nullable=False),
        _text("description"),
        sa.Column("status", sa.String(32), nullable=False),
        _str("os_tag", 128),
        _str("image_id", 128),
        _str("image_owner_alias", 32, "system"),
        _str("base_os", 64),
        _str("scheduler_type", 32, "pbs"),
        _str("deploy_mode", 32, "Standard"),
        sa.Column("ha_enable", sa.Boolean, nullable=False, server_default=sa.text("false")),
        _str("account_type", 32, "nis"),
        _str("vpc_id", 64),
        _str("vswitch_id", 64),
        _str("security_group_id", 64),
        _str("client_version", 32, "2.0.0"),
        _str("location", 32, "PublicCloud"),
        _str("ecs_charge_type", 32, "PostPaid"),
        _str("key_pair_name", 128),
        _str("manager_instance_type", 64),
        _str("login_instance_type", 64),
        _str("compute_instance_type", 64),
        _text("extra", "{}"),
        sa.Column("client_token", sa.String(64), nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("deleted_at", UtcDateTime, nullable=True),
    )
    op.create_index("ix_clusters_account_id_created_at", "clusters", ["account_id", "created_at"])
    op.create_table(
        "nodes",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "cluster_id", sa.String(64), sa.ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("hostname", sa.String(128), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        _str("instance_type", 64),
        _str("private_ip", 64),
        _str("public_ip", 64),
        _str("zone_id", 64),
        _str("image_id", 128),
        _str("image_owner_alias", 32, "system"),
        _str("create_mode", 16, "manual"),
        _str("spot_strategy", 32, "NoSpot"),
        _str("instance_charge_type", 32, "PostPaid"),
        sa.Column("expired", sa.Boolean, nullable=False, server_default=sa.text("false")),
        _text("extra", "{}"),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("deleted_at", UtcDateTime, nullable=True),
    )
    op.create_index("ix_nodes_cluster_id_role_hostname", "nodes", ["cluster_id", "role", "hostname"])
    op.create_table(
        "tasks",
        sa.Column("seq", BigId, primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.String(64), nullable=False, unique=True),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("cluster_id", sa.String(64), nullable=False),
        sa.Column("task_type", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("current_step", sa.Integer, nullable=False, server_default="0"),
        sa.Column("total_steps", sa.Integer, nullable=False),
        _text("result", "{}"),
        _text("errors", "[]"),
        _text("request", "{}"),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("finished_at", UtcDateTime, nullable=True),
    )
    op.create_index("ix_tasks_cluster_created", "tasks", ["cluster_id", "created_at", "seq"])
    op.create_index(
        "ix_tasks_cluster_running",
        "tasks",
        ["cluster_id", "created_at", "seq"],
        sqlite_where=sa.text("finished_at IS NULL"),
        postgresql_where=sa.text("finished_at IS NULL"),
    )
    op.create_index("ix_tasks_finished", "tasks", ["finished_at"])
    op.create_table(
        "nonces",
        sa.Column("access_key_id", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(128), nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("access_key_id", "nonce"),
    )
    op.create_index("ix_nonces_expires_at", "nonces", ["expires_at"])


def downgrade() -> None:
    for table in ("nonces", "tasks", "nodes", "clusters", "access_keys", "ram_users", "accounts", "meta"):
        op.drop_table(table)
