"""shredded documents: KYC documents whose data key was destroyed when their artisan was erased

Revision ID: 5f1d8b3a0011
Revises: 9c3a7e2d0010
Created: 2026-12-06 21:00:00
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision = "5f1d8b3a0011"
down_revision = "9c3a7e2d0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("kyc_documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("shredded_at", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("kyc_documents", schema=None) as batch_op:
        batch_op.drop_column("shredded_at")
