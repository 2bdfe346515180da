"""kyc tiers, otp, documents, screening, reviews, bank accounts

Revision ID: 61007be0730b
Revises: 2d663757de38
Created: 2026-11-23 05:27:18.099577
"""

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "61007be0730b"
down_revision = "2d663757de38"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "screening_lists",
        sa.Column("version", sa.String(length=80), nullable=False),
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.Column("entry_count", sa.Integer(), nullable=False),
        sa.Column("entries", sa.JSON(), nullable=True),
        sa.Column("loaded_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    with op.batch_alter_table("screening_lists", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_screening_lists_loaded_at"), ["loaded_at"], unique=False)

    op.create_table(
        "bank_accounts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("artisan_id", sa.String(length=40), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("bank_code", sa.String(length=3), nullable=True),
        sa.Column("partner_bank", sa.String(length=40), nullable=True),
        sa.Column("rib", sa.String(length=24), nullable=True),
        sa.Column("iban", sa.String(length=28), nullable=True),
        sa.Column("holder_name", sa.String(length=200), nullable=False),
        sa.Column("holder_name_score", sa.Float(), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("default_requested", sa.Boolean(), nullable=False),
        sa.Column("partner_reference", sa.String(length=64), nullable=True),
        sa.Column("submitted_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("refusal_reason", sa.String(length=80), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["artisan_id"],
            ["artisans.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rib"),
    )
    with op.batch_alter_table("bank_accounts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bank_accounts_artisan_id"), ["artisan_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_bank_accounts_partner_reference"), ["partner_reference"], unique=False
        )

    op.create_table(
        "kyc_audit_log",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("artisan_id", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.String(length=40), nullable=True),
        sa.Column("reason_code", sa.String(length=40), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["artisan_id"],
            ["artisans.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("kyc_audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_kyc_audit_log_artisan_id"), ["artisan_id"], unique=False)

    op.create_table(
        "kyc_documents",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("artisan_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("content_type", sa.String(length=40), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("submitted_by", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["artisan_id"],
            ["artisans.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("kyc_documents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_kyc_documents_artisan_id"), ["artisan_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_kyc_documents_key_id"), ["key_id"], unique=False)

    op.create_table(
        "kyc_reviews",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("artisan_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("requested_tier", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("submitted_by", sa.String(length=64), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("decision", sa.String(length=10), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("reason_code", sa.String(length=40), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["artisan_id"],
            ["artisans.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("kyc_reviews", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_kyc_reviews_artisan_id"), ["artisan_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_kyc_reviews_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_kyc_reviews_status"), ["status"], unique=False)

    op.create_table(
        "kyc_tier_changes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("artisan_id", sa.String(length=40), nullable=False),
        sa.Column("from_tier", sa.Integer(), nullable=False),
        sa.Column("to_tier", sa.Integer(), nullable=False),
        sa.Column("reason_code", sa.String(length=40), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("kyc_version", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["artisan_id"],
            ["artisans.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("kyc_tier_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_kyc_tier_changes_artisan_id"), ["artisan_id"], unique=False)

    op.create_table(
        "phone_verifications",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("artisan_id", sa.String(length=40), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("verified_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["artisan_id"],
            ["artisans.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("phone_verifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_phone_verifications_artisan_id"), ["artisan_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_phone_verifications_created_at"), ["created_at"], unique=False)

    op.create_table(
        "screening_results",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("artisan_id", sa.String(length=40), nullable=False),
        sa.Column("list_version", sa.String(length=80), nullable=False),
        sa.Column("screened_name", sa.String(length=200), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("matches", sa.JSON(), nullable=False),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["artisan_id"],
            ["artisans.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("screening_results", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_screening_results_artisan_id"), ["artisan_id"], unique=False)

    with op.batch_alter_table("artisans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("artisan_card_number", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("cooperative_ice", sa.String(length=15), nullable=True))
        batch_op.add_column(sa.Column("warnings", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("kyc_version", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("phone_verified_at", shared.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("screening_status", sa.String(length=20), nullable=False, server_default="pending")
        )


def downgrade() -> None:
    with op.batch_alter_table("artisans", schema=None) as batch_op:
        batch_op.drop_column("screening_status")
        batch_op.drop_column("phone_verified_at")
        batch_op.drop_column("kyc_version")
        batch_op.drop_column("warnings")
        batch_op.drop_column("cooperative_ice")
        batch_op.drop_column("artisan_card_number")

    with op.batch_alter_table("screening_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_screening_results_artisan_id"))

    op.drop_table("screening_results")
    with op.batch_alter_table("phone_verifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_phone_verifications_created_at"))
        batch_op.drop_index(batch_op.f("ix_phone_verifications_artisan_id"))

    op.drop_table("phone_verifications")
    with op.batch_alter_table("kyc_tier_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_kyc_tier_changes_artisan_id"))

    op.drop_table("kyc_tier_changes")
    with op.batch_alter_table("kyc_reviews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_kyc_reviews_status"))
        batch_op.drop_index(batch_op.f("ix_kyc_reviews_created_at"))
        batch_op.drop_index(batch_op.f("ix_kyc_reviews_artisan_id"))

    op.drop_table("kyc_reviews")
    with op.batch_alter_table("kyc_documents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_kyc_documents_key_id"))
        batch_op.drop_index(batch_op.f("ix_kyc_documents_artisan_id"))

    op.drop_table("kyc_documents")
    with op.batch_alter_table("kyc_audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_kyc_audit_log_artisan_id"))

    op.drop_table("kyc_audit_log")
    with op.batch_alter_table("bank_accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bank_accounts_partner_reference"))
        batch_op.drop_index(batch_op.f("ix_bank_accounts_artisan_id"))

    op.drop_table("bank_accounts")
    with op.batch_alter_table("screening_lists", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_screening_lists_loaded_at"))

    op.drop_table("screening_lists")
