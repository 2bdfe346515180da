"""payment capture and cancel keys: the Idempotency-Keys a payment was captured and canceled with

As with ``confirmation_key``: a capture or cancel whose stored answer was lost (the process killed
between its commit and the answer's) and that is retried with its key answers the payment as it
stands, instead of 409 ``invalid_state``.

Revision ID: 5c8e1a4f0016
Revises: 8d4a2c7e0015
Created: 2026-12-07 00:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "5c8e1a4f0016"
down_revision = "8d4a2c7e0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: payments captured or canceled before this revision, or without a key, have none.
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("capture_key", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("cancel_key", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_column("cancel_key")
        batch_op.drop_column("capture_key")
