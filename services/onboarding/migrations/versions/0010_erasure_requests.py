"""erasure requests: an artisan's data restricted until the AML retention duty ends, then erased

``erasure_requests`` holds one request per artisan (law 09-08) and when the anti-money-laundering
duty to keep their records ends; ``artisans.restricted_at`` marks the artisan as no longer
processed nor shown beyond compliance meanwhile.

Revision ID: 9c3a7e2d0010
Revises: 4b7e1d2c0008
Created: 2026-12-06 20:00:00
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision = "9c3a7e2d0010"
down_revision = "4b7e1d2c0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("artisans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("restricted_at", UTCDateTime(timezone=True), nullable=True))
    op.create_table(
        "erasure_requests",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("artisan_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("requested_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("relationship_ended_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("retain_until", UTCDateTime(timezone=True), nullable=False),
        sa.Column("erased_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["artisan_id"], ["artisans.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("artisan_id"),
    )
    op.create_index("ix_erasure_requests_retain_until", "erasure_requests", ["retain_until"])


def downgrade() -> None:
    op.drop_index("ix_erasure_requests_retain_until", table_name="erasure_requests")
    op.drop_table("erasure_requests")
    with op.batch_alter_table("artisans", schema=None) as batch_op:
        batch_op.drop_column("restricted_at")
