"""kyc projection

Revision ID: 6f3d7ed2b205
Revises: daa52aedec68
Created: 2026-11-23 05:40:12.883181
"""

import sqlalchemy as sa
from alembic import op

revision = "6f3d7ed2b205"
down_revision = "daa52aedec68"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Server defaults fill the payees that already exist: active, and no KYC change seen yet, so
    # the first kyc_tier_changed (version 1 or more) applies.
    with op.batch_alter_table("payees", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kyc_status", sa.String(length=20), nullable=False, server_default="active")
        )
        batch_op.add_column(sa.Column("kyc_version", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("payees", schema=None) as batch_op:
        batch_op.drop_column("kyc_version")
        batch_op.drop_column("kyc_status")
