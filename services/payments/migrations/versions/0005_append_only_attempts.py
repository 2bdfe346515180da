"""gateway attempts append-only

Revision ID: 5e1c0a7d2b90
Revises: addbfa60f4c5
Created: 2026-11-23 08:50:00
"""

from alembic import op

from services.payments.adapters.immutability import create_statements, drop_statements

revision = "5e1c0a7d2b90"
down_revision = "addbfa60f4c5"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in create_statements(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    for statement in drop_statements(op.get_bind().dialect.name):
        op.execute(statement)
