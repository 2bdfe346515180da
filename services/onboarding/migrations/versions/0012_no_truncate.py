"""the KYC audit log refuses TRUNCATE too

Row triggers refuse every UPDATE and DELETE, but PostgreSQL's ``TRUNCATE`` fires no row trigger, so
it could empty the KYC audit log without a trace. A statement trigger now refuses it, with the same message.

Revision ID: 3b7e1f6a0012
Revises: 5f1d8b3a0011
Created: 2026-12-07 00:00:00
"""

from alembic import op

from services.onboarding.adapters.immutability import AUDIT_LOG

revision = "3b7e1f6a0012"
down_revision = "5f1d8b3a0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in AUDIT_LOG.truncate_guard_statements(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    for statement in AUDIT_LOG.drop_truncate_guard_statements(op.get_bind().dialect.name):
        op.execute(statement)
