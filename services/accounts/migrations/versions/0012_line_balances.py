"""journal lines carry their account's balance after them, and their entry's posted_at

Revision ID: b7e5c1d20010
Revises: 4b7e1d2c0010
Created: 2026-12-06 16:40:00

- ``journal_lines.balance_after``: the account's stored balance right after the line, its lines
  taken in id order (the order they were posted in, under the account's lock); backfilled as a
  running sum of the account's lines.
- ``journal_lines.posted_at``: the entry's, copied beside the account's lines.
- ``ix_journal_lines_account_id`` gives way to ``(account_id, id)`` (a statement page from its
  cursor) and ``(account_id, posted_at, id)`` (where a date range starts and ends): a page and its
  opening balance are index lookups, whatever the account's history.

The journal is immutable: its triggers are lifted for the backfill and put back in the same
transaction on PostgreSQL (SQLite rebuilds the table to make the columns NOT NULL, which drops
them anyway).
"""

import sqlalchemy as sa
from alembic import op

import shared.db
from services.accounts.adapters.immutability import create_statements, drop_statements

revision = "b7e5c1d20010"
down_revision = "4b7e1d2c0010"
branch_labels = None
depends_on = None

# Each line's entry's posted_at, and the running sum of its account's lines up to it (inclusive).
BACKFILL = """
UPDATE journal_lines SET posted_at = history.posted_at, balance_after = history.balance_after
FROM (
    SELECT l.id AS id, e.posted_at AS posted_at,
           SUM(l.amount) OVER (PARTITION BY l.account_id ORDER BY l.id
                               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS balance_after
    FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id
) AS history
WHERE history.id = journal_lines.id
"""


def _run(statements: list[str]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    _run(drop_statements(dialect))
    with op.batch_alter_table("journal_lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("posted_at", shared.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("balance_after", sa.BigInteger(), nullable=True))
    op.execute(BACKFILL)
    with op.batch_alter_table("journal_lines", schema=None) as batch_op:
        batch_op.alter_column("posted_at", existing_type=shared.db.UTCDateTime(timezone=True), nullable=False)
        batch_op.alter_column("balance_after", existing_type=sa.BigInteger(), nullable=False)
        batch_op.drop_index("ix_journal_lines_account_id")
        batch_op.create_index("ix_journal_lines_account_id_id", ["account_id", "id"], unique=False)
        batch_op.create_index(
            "ix_journal_lines_account_id_posted_at", ["account_id", "posted_at", "id"], unique=False
        )
    _run(create_statements(dialect))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    _run(drop_statements(dialect))
    with op.batch_alter_table("journal_lines", schema=None) as batch_op:
        batch_op.drop_index("ix_journal_lines_account_id_posted_at")
        batch_op.drop_index("ix_journal_lines_account_id_id")
        batch_op.create_index("ix_journal_lines_account_id", ["account_id"], unique=False)
        batch_op.drop_column("balance_after")
        batch_op.drop_column("posted_at")
    _run(create_statements(dialect))
