"""erased artisans: the limits row remembers the erasure, so no replay brings a RIB back

Revision ID: 7a4c2e9b0015
Revises: b4f8c1d20013
Created: 2026-12-06 21:00:00
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision = "7a4c2e9b0015"
down_revision = "b4f8c1d20013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("artisan_limits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("erased_at", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("artisan_limits", schema=None) as batch_op:
        batch_op.drop_column("erased_at")
