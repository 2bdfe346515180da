"""kyc audit log append-only; bank accounts remember the bank's holder verification

Revision ID: 7c3e9a41d5f2
Revises: 61007be0730b
Created: 2026-12-06 11:40:00
"""

import sqlalchemy as sa
from alembic import op

from services.onboarding.adapters.immutability import create_statements, drop_statements

revision = "7c3e9a41d5f2"
down_revision = "61007be0730b"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bank_accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("holder_verification", sa.String(length=20), nullable=True))
    for statement in create_statements(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    for statement in drop_statements(op.get_bind().dialect.name):
        op.execute(statement)
    with op.batch_alter_table("bank_accounts", schema=None) as batch_op:
        batch_op.drop_column("holder_verification")
