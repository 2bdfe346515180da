"""a bank partner's API client is bound to its bank (bank_code)

Revision ID: 0b5d2e8f4a17
Revises: 7c3e9a41d5f2
Created: 2026-12-06 13:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0b5d2e8f4a17"
down_revision = "7c3e9a41d5f2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing bank partner clients stay unbound (null): their token requests are refused until an
    # operator binds them to a bank, rather than guessing one.
    with op.batch_alter_table("api_clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bank_code", sa.String(length=3), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_clients", schema=None) as batch_op:
        batch_op.drop_column("bank_code")
