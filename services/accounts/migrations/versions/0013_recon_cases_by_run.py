"""a reconciliation run's cases: an index on (run_id, id)

Revision ID: c5f2a8d10013
Revises: b7e5c1d20010
Created: 2026-12-10 10:00:00

``GET /v1/reconciliation/cases?run_id=`` pages through one run's cases from the cursor: with the
index each page is a range scan, however many cases other runs opened.
"""

from alembic import op

revision = "c5f2a8d10013"
down_revision = "b7e5c1d20010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_recon_cases_run_id_id", "recon_cases", ["run_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_recon_cases_run_id_id", table_name="recon_cases")
