"""ledger_cases: one open payment_not_in_ledger case per payment

Revision ID: e2c9a4b70016
Revises: 7a4c2e9b0015
Created: 2026-12-07 09:00:00

Two workers running the completeness check at the same moment could each open a case for the same
missing payment. A partial unique index on the open ones now lets only one in (the check's insert
skips the other). Duplicates opened before it are resolved first, each naming the case it repeats
(the oldest, which stays open).
"""

import datetime as dt
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision = "e2c9a4b70016"
down_revision = "7a4c2e9b0015"
branch_labels = None
depends_on = None

INDEX = "uq_ledger_cases_open_payment_gap"
OPEN_PAYMENT_GAPS = "kind = 'payment_not_in_ledger' AND status = 'open'"

cases = sa.table(
    "ledger_cases",
    sa.column("id", sa.String),
    sa.column("kind", sa.String),
    sa.column("status", sa.String),
    sa.column("cause_id", sa.String),
    sa.column("details", sa.JSON),
    sa.column("created_at", sa.DateTime),
)


def upgrade() -> None:
    bind = op.get_bind()
    open_gaps = bind.execute(
        sa.select(cases.c.id, cases.c.cause_id, cases.c.details)
        .where(cases.c.kind == "payment_not_in_ledger", cases.c.status == "open")
        .order_by(cases.c.cause_id, cases.c.created_at, cases.c.id)
    ).all()
    by_payment = defaultdict(list)
    for case in open_gaps:
        by_payment[case.cause_id].append(case)
    now = dt.datetime.now(dt.UTC).isoformat()
    for kept, *repeats in by_payment.values():
        for case in repeats:
            details = {
                **(case.details or {}),
                "resolved_at": now,
                "resolution": "duplicate",
                "resolved_by": "system",
                "duplicate_of": kept.id,
            }
            bind.execute(
                sa.update(cases).where(cases.c.id == case.id).values(status="resolved", details=details)
            )
    op.create_index(
        INDEX,
        "ledger_cases",
        ["cause_id"],
        unique=True,
        postgresql_where=sa.text(OPEN_PAYMENT_GAPS),
        sqlite_where=sa.text(OPEN_PAYMENT_GAPS),
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="ledger_cases")
