"""payout step indexes: the payouts sent, paid and failed in a period, for the back office's figures

Revision ID: b4e7c1d20010
Revises: a9d3e4f50009
Created: 2026-12-08 09:00:00
"""

from alembic import op

revision = "b4e7c1d20010"
down_revision = "a9d3e4f50009"
branch_labels = None
depends_on = None

STEPS = ("submitted_at", "paid_at", "failed_at")


def upgrade() -> None:
    for column in STEPS:
        op.create_index(f"ix_payouts_{column}", "payouts", [column], unique=False)


def downgrade() -> None:
    for column in STEPS:
        op.drop_index(f"ix_payouts_{column}", table_name="payouts")
