"""artisans sign in by phone: sign-ins (OTP), lockouts, devices, refresh tokens

Revision ID: e5a1b2c30005
Revises: 7c3e9a41d5f2
Created: 2026-12-06 13:10:14.694747
"""

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "e5a1b2c30005"
down_revision = "0b5d2e8f4a17"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sign_in_lockouts",
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("failed_codes", sa.Integer(), nullable=False),
        sa.Column("window_started_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("locked_until", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("phone"),
    )
    op.create_table(
        "artisan_devices",
        sa.Column("artisan_id", sa.String(length=40), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("first_signed_in_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_signed_in_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_refreshed_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["artisan_id"],
            ["artisans.id"],
        ),
        sa.PrimaryKeyConstraint("artisan_id", "device_id"),
    )
    op.create_table(
        "artisan_refresh_tokens",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("family_id", sa.String(length=40), nullable=False),
        sa.Column("artisan_id", sa.String(length=40), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("replaced_by", sa.String(length=40), nullable=True),
        sa.Column("revoked_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["artisan_id"],
            ["artisans.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("artisan_refresh_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_artisan_refresh_tokens_artisan_id"), ["artisan_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_artisan_refresh_tokens_family_id"), ["family_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_artisan_refresh_tokens_status"), ["status"], unique=False)

    op.create_table(
        "artisan_sign_ins",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("artisan_id", sa.String(length=40), nullable=True),
        sa.Column("client_ip", sa.String(length=45), nullable=True),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("verified_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["artisan_id"],
            ["artisans.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("artisan_sign_ins", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_artisan_sign_ins_artisan_id"), ["artisan_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_artisan_sign_ins_client_ip"), ["client_ip"], unique=False)
        batch_op.create_index(batch_op.f("ix_artisan_sign_ins_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_artisan_sign_ins_phone"), ["phone"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("artisan_sign_ins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_artisan_sign_ins_phone"))
        batch_op.drop_index(batch_op.f("ix_artisan_sign_ins_created_at"))
        batch_op.drop_index(batch_op.f("ix_artisan_sign_ins_client_ip"))
        batch_op.drop_index(batch_op.f("ix_artisan_sign_ins_artisan_id"))

    op.drop_table("artisan_sign_ins")
    with op.batch_alter_table("artisan_refresh_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_artisan_refresh_tokens_status"))
        batch_op.drop_index(batch_op.f("ix_artisan_refresh_tokens_family_id"))
        batch_op.drop_index(batch_op.f("ix_artisan_refresh_tokens_artisan_id"))

    op.drop_table("artisan_refresh_tokens")
    op.drop_table("artisan_devices")
    op.drop_table("sign_in_lockouts")
