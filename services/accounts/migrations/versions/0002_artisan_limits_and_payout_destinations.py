"""artisan limits and payout destinations

Revision ID: dc62e6afe813
Revises: 352eb83623f2
Created: 2026-11-23 05:40:15.989028
"""

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "dc62e6afe813"
down_revision = "352eb83623f2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "artisan_limits",
        sa.Column("artisan_id", sa.String(length=40), nullable=False),
        sa.Column("kyc_tier", sa.Integer(), nullable=False),
        sa.Column("cap_amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("kyc_status", sa.String(length=20), nullable=False),
        sa.Column("kyc_version", sa.Integer(), nullable=False),
        sa.Column("updated_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("artisan_id"),
    )
    op.create_table(
        "payout_destinations",
        sa.Column("bank_account_id", sa.String(length=40), nullable=False),
        sa.Column("artisan_id", sa.String(length=40), nullable=False),
        sa.Column("rib", sa.String(length=24), nullable=False),
        sa.Column("iban", sa.String(length=28), nullable=False),
        sa.Column("bank_code", sa.String(length=3), nullable=False),
        sa.Column("bank_name", sa.String(length=100), nullable=False),
        sa.Column("holder_name", sa.String(length=200), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("linked_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("bank_account_id"),
    )
    with op.batch_alter_table("payout_destinations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payout_destinations_artisan_id"), ["artisan_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("payout_destinations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payout_destinations_artisan_id"))

    op.drop_table("payout_destinations")
    op.drop_table("artisan_limits")
