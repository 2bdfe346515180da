"""payment confirmation key: the Idempotency-Key a payment was confirmed with

Revision ID: 8e2d4b6a1c57
Revises: 4b7e1d2c1010
Created: 2026-12-02 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "8e2d4b6a1c57"
down_revision = "4b7e1d2c1010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: payments confirmed before this revision, or without a key, have none.
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("confirmation_key", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_column("confirmation_key")
