"""back office indexes: payments by status or reversal status then id, open disputes by id, failed
webhook deliveries by marketplace

The back office pages through payments in one state (stuck in processing, a reversal to review)
and disputes in one status, in id order (the cursor's): each single-column index is replaced by
one that ends with the id, which serves every query the old one did. Failed and retrying webhook
deliveries are counted per marketplace.

Revision ID: 8b3f6d2a9c41
Revises: 5c1e7a9d3f20
Created: 2026-12-08 09:00:00
"""

from alembic import op

revision = "8b3f6d2a9c41"
down_revision = "5c1e7a9d3f20"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_payments_status_id", "payments", ["status", "id"], unique=False)
    op.drop_index("ix_payments_status", table_name="payments")
    op.create_index("ix_payments_reversal_status_id", "payments", ["reversal_status", "id"], unique=False)
    op.drop_index("ix_payments_reversal_status", table_name="payments")
    op.create_index("ix_disputes_status_id", "disputes", ["status", "id"], unique=False)
    op.drop_index("ix_disputes_status", table_name="disputes")
    op.create_index(
        "ix_webhook_deliveries_status_marketplace",
        "webhook_deliveries",
        ["status", "marketplace_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_status_marketplace", table_name="webhook_deliveries")
    op.create_index("ix_disputes_status", "disputes", ["status"], unique=False)
    op.drop_index("ix_disputes_status_id", table_name="disputes")
    op.create_index("ix_payments_reversal_status", "payments", ["reversal_status"], unique=False)
    op.drop_index("ix_payments_reversal_status_id", table_name="payments")
    op.create_index("ix_payments_status", "payments", ["status"], unique=False)
    op.drop_index("ix_payments_status_id", table_name="payments")
