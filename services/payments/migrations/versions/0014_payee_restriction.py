"""payees restricted after an erasure request: no new payment to them

``payees.restricted_at`` is set from ``onboarding.artisan.processing_restricted``: from then on a
payment to the artisan is refused (``payee_restricted``) and marketplaces no longer see the payee.

Revision ID: 2e7b9d4c0014
Revises: 6d2f8b1e0010
Created: 2026-12-06 20:00:00
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision = "2e7b9d4c0014"
down_revision = "6d2f8b1e0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payees", schema=None) as batch_op:
        batch_op.add_column(sa.Column("restricted_at", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payees", schema=None) as batch_op:
        batch_op.drop_column("restricted_at")
