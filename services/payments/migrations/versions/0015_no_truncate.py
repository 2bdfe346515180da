"""gateway attempts refuse TRUNCATE too

Row triggers refuse every UPDATE and DELETE, but PostgreSQL's ``TRUNCATE`` fires no row trigger, so
it could empty a payment's gateway attempts without a trace. A statement trigger now refuses it, with the same message.

Revision ID: 8d4a2c7e0015
Revises: 2e7b9d4c0014
Created: 2026-12-07 00:00:00
"""

from alembic import op

from services.payments.adapters.immutability import ATTEMPTS

revision = "8d4a2c7e0015"
down_revision = "2e7b9d4c0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in ATTEMPTS.truncate_guard_statements(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    for statement in ATTEMPTS.drop_truncate_guard_statements(op.get_bind().dialect.name):
        op.execute(statement)
