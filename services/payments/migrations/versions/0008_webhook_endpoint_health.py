"""webhook endpoint health: failing since, resting until

Revision ID: 0aade9cb261d
Revises: 3b9f1c2e7a41
Created: 2026-11-25 09:00:00
"""

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "0aade9cb261d"
down_revision = "3b9f1c2e7a41"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: every existing endpoint starts healthy and rested.
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failing_since", shared.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("resting_until", shared.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_column("resting_until")
        batch_op.drop_column("failing_since")
