"""the money cycle: marketplace settings, commission payouts, reversals and adjustments

Revision ID: a1c7e0d50007
Revises: 7c41d2e8f3a9
Created: 2026-12-06 13:10:00

- ``marketplace_settings``: the platform's fee per marketplace, its payout RIB and its commission
  payout schedule.
- ``payouts`` pay a marketplace's commission too: ``payee_type`` (artisan | marketplace) and
  ``marketplace_id``; ``artisan_id`` and ``bank_account_id`` are empty on a commission payout.
- ``journal_entries.reverses_entry_id``: the entry a reversal reverses, unique, so an entry is
  reversed at most once. Added without rebuilding the table (a plain ADD COLUMN and a unique
  index), so SQLite keeps the triggers that make the journal immutable.
- ``ledger_adjustments``: reversals and manual adjustments, proposed, approved (four-eyes) or
  rejected, and the entry each posted.
"""

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "a1c7e0d50007"
down_revision = "7c41d2e8f3a9"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "marketplace_settings",
        sa.Column("marketplace_id", sa.String(length=64), nullable=False),
        sa.Column("platform_fee_bp", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("platform_fee_fixed", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("payout_rib", sa.String(length=24), nullable=True),
        sa.Column("payout_iban", sa.String(length=28), nullable=True),
        sa.Column("payout_bank_code", sa.String(length=3), nullable=True),
        sa.Column("payout_holder_name", sa.String(length=200), nullable=True),
        sa.Column(
            "commission_payout_interval", sa.String(length=10), nullable=False, server_default="manual"
        ),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("marketplace_id"),
    )
    op.create_index(
        "ix_marketplace_settings_commission_payout_interval",
        "marketplace_settings",
        ["commission_payout_interval"],
    )

    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("payee_type", sa.String(length=12), nullable=False, server_default="artisan")
        )
        batch_op.add_column(sa.Column("marketplace_id", sa.String(length=64), nullable=True))
        batch_op.alter_column("artisan_id", existing_type=sa.String(length=40), nullable=True)
        batch_op.alter_column("bank_account_id", existing_type=sa.String(length=40), nullable=True)
        batch_op.create_index(batch_op.f("ix_payouts_marketplace_id"), ["marketplace_id"])

    op.add_column("journal_entries", sa.Column("reverses_entry_id", sa.String(length=40), nullable=True))
    op.create_index(
        "ix_journal_entries_reverses_entry_id", "journal_entries", ["reverses_entry_id"], unique=True
    )

    op.create_table(
        "ledger_adjustments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("reverses_entry_id", sa.String(length=40), nullable=True),
        sa.Column("case_id", sa.String(length=40), nullable=True),
        sa.Column("entry_id", sa.String(length=40), nullable=True),
        sa.Column("request_key", sa.String(length=320), nullable=True),
        sa.Column("proposed_by", sa.String(length=64), nullable=False),
        sa.Column("proposed_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decision_note", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_key", name="uq_ledger_adjustments_request_key"),
    )
    op.create_index("ix_ledger_adjustments_status", "ledger_adjustments", ["status"])
    op.create_index("ix_ledger_adjustments_case_id", "ledger_adjustments", ["case_id"])


def downgrade() -> None:
    op.drop_index("ix_ledger_adjustments_case_id", table_name="ledger_adjustments")
    op.drop_index("ix_ledger_adjustments_status", table_name="ledger_adjustments")
    op.drop_table("ledger_adjustments")
    op.drop_index("ix_journal_entries_reverses_entry_id", table_name="journal_entries")
    op.drop_column("journal_entries", "reverses_entry_id")
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payouts_marketplace_id"))
        batch_op.alter_column("bank_account_id", existing_type=sa.String(length=40), nullable=False)
        batch_op.alter_column("artisan_id", existing_type=sa.String(length=40), nullable=False)
        batch_op.drop_column("marketplace_id")
        batch_op.drop_column("payee_type")
    op.drop_index("ix_marketplace_settings_commission_payout_interval", table_name="marketplace_settings")
    op.drop_table("marketplace_settings")
