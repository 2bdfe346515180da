"""payments, gateway attempts, refunds and disputes

Revision ID: 579dae087bd0
Revises: 6f3d7ed2b205
Created: 2026-11-23 08:02:59.089994
"""

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "579dae087bd0"
down_revision = "6f3d7ed2b205"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_attempts",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("refund_id", sa.String(length=40), nullable=True),
        sa.Column("gateway", sa.String(length=20), nullable=False),
        sa.Column("operation", sa.String(length=30), nullable=False),
        sa.Column("idempotency_key", sa.String(length=120), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("raw_status", sa.String(length=40), nullable=True),
        sa.Column("gateway_reference", sa.String(length=100), nullable=True),
        sa.Column("error_code", sa.String(length=60), nullable=True),
        sa.Column("message", sa.String(length=300), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("gateway_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gateway_attempts_payment_id"), ["payment_id"], unique=False)

    op.create_table(
        "gateway_callback_receipts",
        sa.Column("gateway", sa.String(length=20), nullable=False),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=60), nullable=False),
        sa.Column("received_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("gateway", "event_id"),
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("marketplace_id", sa.String(length=64), nullable=False),
        sa.Column("artisan_id", sa.String(length=40), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("application_fee", sa.BigInteger(), nullable=False),
        sa.Column("payment_method_type", sa.String(length=20), nullable=False),
        sa.Column("capture_method", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.Column("order_reference", sa.String(length=200), nullable=True),
        sa.Column("creation_key", sa.String(length=255), nullable=True),
        sa.Column("gateway", sa.String(length=20), nullable=False),
        sa.Column("gateway_reference", sa.String(length=100), nullable=True),
        sa.Column("gateway_updated_at", sa.BigInteger(), nullable=False),
        sa.Column("amount_captured", sa.BigInteger(), nullable=False),
        sa.Column("amount_refunded", sa.BigInteger(), nullable=False),
        sa.Column("application_fee_refunded", sa.BigInteger(), nullable=False),
        sa.Column("next_action", sa.Text(), nullable=True),
        sa.Column("failure_code", sa.String(length=40), nullable=True),
        sa.Column("failure_message", sa.String(length=300), nullable=True),
        sa.Column("card_brand", sa.String(length=20), nullable=True),
        sa.Column("card_last4", sa.String(length=4), nullable=True),
        sa.Column("card_country", sa.String(length=2), nullable=True),
        sa.Column("wallet_phone_last4", sa.String(length=4), nullable=True),
        sa.Column("return_url", sa.String(length=2048), nullable=True),
        sa.Column("ledger_posted", sa.Boolean(), nullable=False),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("gateway_checked_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("succeeded_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("failed_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("canceled_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("gateway", "gateway_reference", name="uq_payments_gateway_reference"),
        sa.UniqueConstraint("marketplace_id", "creation_key", name="uq_payments_creation_key"),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payments_artisan_id"), ["artisan_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_payments_created_at"), ["created_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_payments_gateway_checked_at"), ["gateway_checked_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_payments_marketplace_id"), ["marketplace_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_payments_status"), ["status"], unique=False)

    op.create_table(
        "disputes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("marketplace_id", sa.String(length=64), nullable=False),
        sa.Column("artisan_id", sa.String(length=40), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("gateway", sa.String(length=20), nullable=False),
        sa.Column("gateway_reference", sa.String(length=100), nullable=False),
        sa.Column("opened_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("gateway", "gateway_reference", name="uq_disputes_gateway_reference"),
    )
    with op.batch_alter_table("disputes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_disputes_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_disputes_marketplace_id"), ["marketplace_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_disputes_payment_id"), ["payment_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_disputes_status"), ["status"], unique=False)

    op.create_table(
        "refunds",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("marketplace_id", sa.String(length=64), nullable=False),
        sa.Column("artisan_id", sa.String(length=40), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("application_fee_refunded", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("gateway", sa.String(length=20), nullable=False),
        sa.Column("gateway_reference", sa.String(length=100), nullable=True),
        sa.Column("failure_code", sa.String(length=40), nullable=True),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("creation_key", sa.String(length=255), nullable=True),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("gateway_checked_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("succeeded_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("failed_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("marketplace_id", "creation_key", name="uq_refunds_creation_key"),
    )
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_refunds_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_refunds_marketplace_id"), ["marketplace_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_refunds_payment_id"), ["payment_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_refunds_status"), ["status"], unique=False)

    with op.batch_alter_table("payees", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ledger_balance", sa.BigInteger(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("payees", schema=None) as batch_op:
        batch_op.drop_column("ledger_balance")

    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_refunds_status"))
        batch_op.drop_index(batch_op.f("ix_refunds_payment_id"))
        batch_op.drop_index(batch_op.f("ix_refunds_marketplace_id"))
        batch_op.drop_index(batch_op.f("ix_refunds_created_at"))

    op.drop_table("refunds")
    with op.batch_alter_table("disputes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_disputes_status"))
        batch_op.drop_index(batch_op.f("ix_disputes_payment_id"))
        batch_op.drop_index(batch_op.f("ix_disputes_marketplace_id"))
        batch_op.drop_index(batch_op.f("ix_disputes_created_at"))

    op.drop_table("disputes")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payments_status"))
        batch_op.drop_index(batch_op.f("ix_payments_marketplace_id"))
        batch_op.drop_index(batch_op.f("ix_payments_gateway_checked_at"))
        batch_op.drop_index(batch_op.f("ix_payments_created_at"))
        batch_op.drop_index(batch_op.f("ix_payments_artisan_id"))

    op.drop_table("payments")
    op.drop_table("gateway_callback_receipts")
    with op.batch_alter_table("gateway_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_attempts_payment_id"))

    op.drop_table("gateway_attempts")
