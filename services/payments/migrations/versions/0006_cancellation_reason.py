"""payment cancellation reason

Revision ID: 8d82370426de
Revises: 5e1c0a7d2b90
Created: 2026-11-23 09:21:02.386617
"""

import sqlalchemy as sa
from alembic import op

revision = "8d82370426de"
down_revision = "5e1c0a7d2b90"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cancellation_reason", sa.String(length=30), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_column("cancellation_reason")
