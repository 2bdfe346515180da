"""payouts

Revision ID: fad847dfdf81
Revises: 923f8a36e2ea
Created: 2026-11-23 06:28:59.412690
"""

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "fad847dfdf81"
down_revision = "923f8a36e2ea"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payout_schedules",
        sa.Column("artisan_id", sa.String(length=40), nullable=False),
        sa.Column("interval", sa.String(length=10), nullable=False),
        sa.Column("threshold_amount", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("artisan_id"),
    )
    with op.batch_alter_table("payout_schedules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payout_schedules_interval"), ["interval"], unique=False)

    op.create_table(
        "payouts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("artisan_id", sa.String(length=40), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("bank_account_id", sa.String(length=40), nullable=False),
        sa.Column("rib", sa.String(length=24), nullable=False),
        sa.Column("holder_name", sa.String(length=200), nullable=False),
        sa.Column("bank_code", sa.String(length=3), nullable=False),
        sa.Column("partner_bank", sa.String(length=40), nullable=False),
        sa.Column("source_bank_code", sa.String(length=3), nullable=False),
        sa.Column("partner_reference", sa.String(length=64), nullable=True),
        sa.Column("failure_code", sa.String(length=40), nullable=True),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("schedule_key", sa.String(length=120), nullable=True),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("paid_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("failed_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("schedule_key"),
    )
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payouts_artisan_id"), ["artisan_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_payouts_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payouts_status"))
        batch_op.drop_index(batch_op.f("ix_payouts_artisan_id"))

    op.drop_table("payouts")
    with op.batch_alter_table("payout_schedules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payout_schedules_interval"))

    op.drop_table("payout_schedules")
