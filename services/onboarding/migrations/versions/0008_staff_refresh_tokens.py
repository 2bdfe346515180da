"""staff refresh tokens: a console session renews its staff access token without signing in again

Revision ID: e8d5f6a70008
Revises: d7c4e5f60007
Created: 2026-12-06 16:30:00
"""

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "e8d5f6a70008"
down_revision = "d7c4e5f60007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staff_refresh_tokens",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("session_id", sa.String(length=40), nullable=False),
        sa.Column("staff_id", sa.String(length=40), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("session_expires_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("replaced_by", sa.String(length=40), nullable=True),
        sa.Column("revoked_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(["staff_id"], ["staff_members.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("staff_refresh_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_refresh_tokens_session_id"), ["session_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_staff_refresh_tokens_staff_id"), ["staff_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("staff_refresh_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_refresh_tokens_staff_id"))
        batch_op.drop_index(batch_op.f("ix_staff_refresh_tokens_session_id"))
    op.drop_table("staff_refresh_tokens")
