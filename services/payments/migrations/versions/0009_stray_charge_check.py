"""payment stray charge check: one more look at a payment failed as never recorded by the gateway

Revision ID: 5c1e7a9d3f20
Revises: 0aade9cb261d
Created: 2026-11-26 09:00:00
"""

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "5c1e7a9d3f20"
down_revision = "0aade9cb261d"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: payments failed before this revision get no second look.
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("stray_charge_check_at", shared.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            batch_op.f("ix_payments_stray_charge_check_at"), ["stray_charge_check_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payments_stray_charge_check_at"))
        batch_op.drop_column("stray_charge_check_at")
