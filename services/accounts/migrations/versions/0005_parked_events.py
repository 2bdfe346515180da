"""parked events: money events that wait for news about their artisan

Revision ID: 5b0e1c7a9d24
Revises: fad847dfdf81
Created: 2026-12-06 04:00:00
"""

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "5b0e1c7a9d24"
down_revision = "fad847dfdf81"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "parked_events",
        sa.Column(
            "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("event_type", sa.String(length=80), nullable=False),
        sa.Column("artisan_id", sa.String(length=40), nullable=False),
        sa.Column("envelope", sa.JSON(), nullable=False),
        sa.Column("waiting_for", sa.String(length=40), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("parked_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("parked_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_parked_events_artisan_id"), ["artisan_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("parked_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_parked_events_artisan_id"))
    op.drop_table("parked_events")
