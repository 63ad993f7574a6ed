"""Jobs: the submission waiting for the provider's confirmation.

`submission` holds the job's JobSubmission (JSON) from the moment it is recorded until the provider
confirms it; NULL once confirmed (and for every job recorded before this revision, all of which the
simulated cloud had taken). The scheduling round hands a job still holding one to the provider again,
with the same token.

Revision ID: 0009
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("submission", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("submission")
