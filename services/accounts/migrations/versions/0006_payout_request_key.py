"""payouts remember the Idempotency-Key they were asked with; failed payouts' funds kept back by the cap wait

Revision ID: 7c41d2e8f3a9
Revises: 5b0e1c7a9d24
Created: 2026-12-06 04:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "7c41d2e8f3a9"
down_revision = "5b0e1c7a9d24"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_key", sa.String(length=320), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_payouts_request_key"), ["request_key"])
    # A failed payout's funds kept back by the cap now wait to come back by themselves (the worker
    # returns them once they fit): cases recorded before that were left open for an operator.
    op.execute(
        "UPDATE ledger_cases SET status = 'waiting' "
        "WHERE cause = 'payout' AND kind = 'tier_cap_exceeded' AND status = 'open'"
    )


def downgrade() -> None:
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_payouts_request_key"), type_="unique")
        batch_op.drop_column("request_key")
