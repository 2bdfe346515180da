"""signed income statements, found again by their verification code

Revision ID: a9d3e4f50009
Revises: c2e9b4a60008
Created: 2026-12-06 13:30:00
"""

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "a9d3e4f50009"
down_revision = "c2e9b4a60008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "income_statements",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("code_digest", sa.String(length=64), nullable=False),
        sa.Column("artisan_id", sa.String(length=40), nullable=False),
        sa.Column("period_from", sa.String(length=7), nullable=False),
        sa.Column("period_to", sa.String(length=7), nullable=False),
        sa.Column("kid", sa.String(length=40), nullable=False),
        sa.Column("jws", sa.Text(), nullable=False),
        sa.Column("issued_by", sa.String(length=64), nullable=False),
        sa.Column("issued_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_digest"),
    )
    with op.batch_alter_table("income_statements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_income_statements_artisan_id"), ["artisan_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("income_statements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_income_statements_artisan_id"))
    op.drop_table("income_statements")
