"""payment capture request time and reversal of money held for failed payments

Revision ID: 3b9f1c2e7a41
Revises: 8d82370426de
Created: 2026-11-24 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "3b9f1c2e7a41"
down_revision = "8d82370426de"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("capture_requested_at", shared.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("reversal_status", sa.String(length=20), nullable=True))
        batch_op.create_index(batch_op.f("ix_payments_reversal_status"), ["reversal_status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payments_reversal_status"))
        batch_op.drop_column("reversal_status")
        batch_op.drop_column("capture_requested_at")
