"""reconciliation: files, runs, items, cases and their history, fetched days

Revision ID: c2e9b4a60008
Revises: a1c7e0d50007
Created: 2026-12-06 12:59:00

- ``recon_files``: every file received (settlement files, bank statements), unique by SHA-256.
- ``recon_runs``: one run per file, its status, counts per state and (statements) balances.
- ``recon_items``: the staging table and the items: each line of a run's file, and what the
  ledger has that no file had, each in one state.
- ``recon_cases`` and ``recon_case_history`` (append-only): the breaks, for people.
- ``recon_fetched_days``: the days whose files the worker has fetched.
"""

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "c2e9b4a60008"
down_revision = "a1c7e0d50007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recon_case_history",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("recon_case_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recon_case_history_case_id"), ["case_id"], unique=False)

    op.create_table(
        "recon_cases",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=14), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("object_id", sa.String(length=140), nullable=True),
        sa.Column("bank_code", sa.String(length=3), nullable=True),
        sa.Column("gateway", sa.String(length=20), nullable=True),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("assignee", sa.String(length=64), nullable=True),
        sa.Column("resolution", sa.JSON(), nullable=True),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("recon_cases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recon_cases_bank_code"), ["bank_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_recon_cases_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_recon_cases_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_recon_cases_object_id"), ["object_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_recon_cases_state"), ["state"], unique=False)

    op.create_table(
        "recon_fetched_days",
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("party", sa.String(length=20), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("fetched_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "party", "day"),
    )
    op.create_table(
        "recon_files",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("received_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sha256"),
    )
    op.create_table(
        "recon_items",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=12), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("line_number", sa.Integer(), nullable=True),
        sa.Column("object_id", sa.String(length=140), nullable=False),
        sa.Column("reference", sa.String(length=140), nullable=False),
        sa.Column("batch_reference", sa.String(length=64), nullable=True),
        sa.Column("dedup_key", sa.String(length=300), nullable=False),
        sa.Column("gateway", sa.String(length=20), nullable=True),
        sa.Column("bank_code", sa.String(length=3), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=True),
        sa.Column("net", sa.BigInteger(), nullable=True),
        sa.Column("expected_amount", sa.BigInteger(), nullable=True),
        sa.Column("expected_fee", sa.BigInteger(), nullable=True),
        sa.Column("card_scheme", sa.String(length=20), nullable=True),
        sa.Column("card_region", sa.String(length=20), nullable=True),
        sa.Column("value_date", sa.Date(), nullable=False),
        sa.Column("transaction_type", sa.String(length=8), nullable=True),
        sa.Column("bank_reference", sa.String(length=64), nullable=True),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=True),
        sa.Column("ledger_entry_id", sa.String(length=40), nullable=True),
        sa.Column("posted_entry_id", sa.String(length=40), nullable=True),
        sa.Column("case_id", sa.String(length=40), nullable=True),
        sa.Column("healed_by_run_id", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("recon_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recon_items_batch_reference"), ["batch_reference"], unique=False)
        batch_op.create_index(batch_op.f("ix_recon_items_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_recon_items_dedup_key"), ["dedup_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_recon_items_ledger_entry_id"), ["ledger_entry_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_recon_items_object_id"), ["object_id"], unique=False)
        batch_op.create_index("ix_recon_items_run_state", ["run_id", "state"], unique=False)

    op.create_table(
        "recon_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("file_id", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("gateway", sa.String(length=20), nullable=True),
        sa.Column("bank_code", sa.String(length=3), nullable=True),
        sa.Column("format", sa.String(length=12), nullable=True),
        sa.Column("day", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("lines_total", sa.BigInteger(), nullable=False),
        sa.Column("lines_done", sa.BigInteger(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("closing_balance", sa.BigInteger(), nullable=True),
        sa.Column("expected_balance", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["recon_files.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("file_id"),
    )
    with op.batch_alter_table("recon_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recon_runs_bank_code"), ["bank_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_recon_runs_source"), ["source"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("recon_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recon_runs_source"))
        batch_op.drop_index(batch_op.f("ix_recon_runs_bank_code"))

    op.drop_table("recon_runs")
    with op.batch_alter_table("recon_items", schema=None) as batch_op:
        batch_op.drop_index("ix_recon_items_run_state")
        batch_op.drop_index(batch_op.f("ix_recon_items_object_id"))
        batch_op.drop_index(batch_op.f("ix_recon_items_ledger_entry_id"))
        batch_op.drop_index(batch_op.f("ix_recon_items_dedup_key"))
        batch_op.drop_index(batch_op.f("ix_recon_items_case_id"))
        batch_op.drop_index(batch_op.f("ix_recon_items_batch_reference"))

    op.drop_table("recon_items")
    op.drop_table("recon_files")
    op.drop_table("recon_fetched_days")
    with op.batch_alter_table("recon_cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recon_cases_state"))
        batch_op.drop_index(batch_op.f("ix_recon_cases_object_id"))
        batch_op.drop_index(batch_op.f("ix_recon_cases_kind"))
        batch_op.drop_index(batch_op.f("ix_recon_cases_created_at"))
        batch_op.drop_index(batch_op.f("ix_recon_cases_bank_code"))

    op.drop_table("recon_cases")
    with op.batch_alter_table("recon_case_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recon_case_history_case_id"))

    op.drop_table("recon_case_history")
