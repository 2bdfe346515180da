"""staff sign-in failures per network address

A staff member's lockout stops guessing one account's password; failures are now also kept by
network address, so an address that fails too often within the window is refused
(``sign_in_ip_limit``), whichever emails it tries.

Revision ID: 4a9c6e2b0013
Revises: 3b7e1f6a0012
Created: 2026-12-07 00:10:00
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision = "4a9c6e2b0013"
down_revision = "3b7e1f6a0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staff_sign_in_failures",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("client_ip", sa.String(45), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_staff_sign_in_failures_ip_at", "staff_sign_in_failures", ["client_ip", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_staff_sign_in_failures_ip_at", table_name="staff_sign_in_failures")
    op.drop_table("staff_sign_in_failures")
