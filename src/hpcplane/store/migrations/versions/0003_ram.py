"""RAM groups, roles, policies and attachments; STS credentials; the audit trail.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from hpcplane.store.tables import BigId
from hpcplane.store.types import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _owned(name: str, *columns: sa.Column[object], unique_name: bool = True) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "account_id", sa.String(32), sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
        ),
        *columns,
        sa.Column("created_at", UtcDateTime, nullable=False),
        *([sa.UniqueConstraint("account_id", "name")] if unique_name else []),
    )


def upgrade() -> None:
    _owned("ram_groups", sa.Column("name", sa.String(64), nullable=False))
    op.create_table(
        "ram_group_members",
        sa.Column(
            "group_id", sa.String(32), sa.ForeignKey("ram_groups.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "user_id", sa.String(32), sa.ForeignKey("ram_users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.PrimaryKeyConstraint("group_id", "user_id"),
    )
    _owned(
        "ram_roles",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("trust_document", sa.Text, nullable=False),
        sa.Column("max_session_duration", sa.Integer, nullable=False, server_default="3600"),
    )
    _owned(
        "ram_policies",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("document", sa.Text, nullable=False),
    )
    op.create_table(
        "ram_attachments",
        sa.Column(
            "policy_id", sa.String(32), sa.ForeignKey("ram_policies.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("principal_type", sa.String(8), nullable=False),
        sa.Column("principal_id", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("policy_id", "principal_type", "principal_id"),
    )
    op.create_index(
        "ix_ram_attachments_principal_type_principal_id",
        "ram_attachments",
        ["principal_type", "principal_id"],
    )
    op.create_table(
        "sts_credentials",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "account_id", sa.String(32), sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "role_id", sa.String(32), sa.ForeignKey("ram_roles.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("session_name", sa.String(64), nullable=False),
        sa.Column("secret_enc", sa.Text, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("session_policy", sa.Text, nullable=True),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_sts_credentials_expires_at", "sts_credentials", ["expires_at"])
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(32), nullable=True),
        sa.Column("principal", sa.String(200), nullable=True),
        sa.Column("access_key_id", sa.String(64), nullable=True),
        sa.Column("action", sa.String(64), nullable=True),
        sa.Column("resource", sa.String(300), nullable=True),
        sa.Column("source_ip", sa.String(64), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_action_at", "audit_log", ["action", "at"])
    op.create_index("ix_audit_log_principal_at", "audit_log", ["principal", "at"])


def downgrade() -> None:
    for table in (
        "audit_log",
        "sts_credentials",
        "ram_attachments",
        "ram_policies",
        "ram_roles",
        "ram_group_members",
        "ram_groups",
    ):
        op.drop_table(table)
