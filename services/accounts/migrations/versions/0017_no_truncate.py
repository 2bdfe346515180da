"""journal entries and lines refuse TRUNCATE too

Row triggers refuse every UPDATE and DELETE, but PostgreSQL's ``TRUNCATE`` fires no row trigger, so
it could empty the journal without a trace. A statement trigger now refuses it, with the same message.

Revision ID: c6f1a9d30017
Revises: e2c9a4b70016
Created: 2026-12-07 00:00:00
"""

from alembic import op

from services.accounts.adapters.immutability import LEDGER

revision = "c6f1a9d30017"
down_revision = "e2c9a4b70016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in LEDGER.truncate_guard_statements(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    for statement in LEDGER.drop_truncate_guard_statements(op.get_bind().dialect.name):
        op.execute(statement)
