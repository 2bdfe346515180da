"""ledger postings

Revision ID: 923f8a36e2ea
Revises: dc62e6afe813
Created: 2026-11-23 06:05:03.838223
"""

import sqlalchemy as sa
from alembic import op

import shared.db
from services.accounts.adapters.immutability import create_statements, drop_statements

revision = "923f8a36e2ea"
down_revision = "dc62e6afe813"
branch_labels = None
depends_on = None


def _create_immutability_triggers() -> None:
    for statement in create_statements(op.get_bind().dialect.name):
        op.execute(statement)


def _drop_immutability_triggers() -> None:
    for statement in drop_statements(op.get_bind().dialect.name):
        op.execute(statement)


def upgrade() -> None:
    op.create_table(
        "dispute_holds",
        sa.Column("dispute_id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("artisan_id", sa.String(length=40), nullable=False),
        sa.Column("marketplace_id", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("from_pending", sa.BigInteger(), nullable=False),
        sa.Column("from_available", sa.BigInteger(), nullable=False),
        sa.Column("from_reserve", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.PrimaryKeyConstraint("dispute_id"),
    )
    with op.batch_alter_table("dispute_holds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dispute_holds_artisan_id"), ["artisan_id"], unique=False)

    op.create_table(
        "ledger_cases",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("cause", sa.String(length=20), nullable=False),
        sa.Column("cause_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=True),
        sa.Column("artisan_id", sa.String(length=40), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ledger_cases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_cases_artisan_id"), ["artisan_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ledger_cases_status"), ["status"], unique=False)

    op.create_table(
        "pending_holds",
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("artisan_id", sa.String(length=40), nullable=False),
        sa.Column("marketplace_id", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("held", sa.BigInteger(), nullable=False),
        sa.Column("released", sa.BigInteger(), nullable=False),
        sa.Column("taken", sa.BigInteger(), nullable=False),
        sa.Column("release_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("payment_id"),
    )
    with op.batch_alter_table("pending_holds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pending_holds_artisan_id"), ["artisan_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_pending_holds_release_at"), ["release_at"], unique=False)

    with op.batch_alter_table("journal_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cause_id", sa.String(length=64), nullable=False, server_default=""))
        batch_op.add_column(
            sa.Column("posting_key", sa.String(length=120), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("artisan_id", sa.String(length=40), nullable=True))
        batch_op.alter_column("cause_event_id", existing_type=sa.VARCHAR(length=40), nullable=True)
        batch_op.create_index(batch_op.f("ix_journal_entries_artisan_id"), ["artisan_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_journal_entries_cause_id"), ["cause_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_journal_entries_posted_at"), ["posted_at"], unique=False)
        batch_op.create_unique_constraint("uq_journal_entries_posting_key", ["posting_key"])

    with op.batch_alter_table("ledger_accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("normal_side", sa.String(length=6), nullable=False, server_default="credit")
        )
        batch_op.add_column(sa.Column("balance", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.alter_column(
            "kind", existing_type=sa.VARCHAR(length=40), type_=sa.String(length=60), existing_nullable=False
        )

    _create_immutability_triggers()


def downgrade() -> None:
    _drop_immutability_triggers()
    with op.batch_alter_table("ledger_accounts", schema=None) as batch_op:
        batch_op.alter_column(
            "kind", existing_type=sa.String(length=60), type_=sa.VARCHAR(length=40), existing_nullable=False
        )
        batch_op.drop_column("balance")
        batch_op.drop_column("normal_side")

    with op.batch_alter_table("journal_entries", schema=None) as batch_op:
        # WARNING: constraint name is None; this directive will fail as
        # rendered.  Add a name, or use a naming convention; see
        # https://alembic.sqlalchemy.org/en/latest/naming.html
        batch_op.drop_constraint("uq_journal_entries_posting_key", type_="unique")
        batch_op.drop_index(batch_op.f("ix_journal_entries_posted_at"))
        batch_op.drop_index(batch_op.f("ix_journal_entries_cause_id"))
        batch_op.drop_index(batch_op.f("ix_journal_entries_artisan_id"))
        batch_op.alter_column("cause_event_id", existing_type=sa.VARCHAR(length=40), nullable=False)
        batch_op.drop_column("artisan_id")
        batch_op.drop_column("posting_key")
        batch_op.drop_column("cause_id")

    with op.batch_alter_table("pending_holds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pending_holds_release_at"))
        batch_op.drop_index(batch_op.f("ix_pending_holds_artisan_id"))

    op.drop_table("pending_holds")
    with op.batch_alter_table("ledger_cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_cases_status"))
        batch_op.drop_index(batch_op.f("ix_ledger_cases_artisan_id"))

    op.drop_table("ledger_cases")
    with op.batch_alter_table("dispute_holds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dispute_holds_artisan_id"))

    op.drop_table("dispute_holds")
