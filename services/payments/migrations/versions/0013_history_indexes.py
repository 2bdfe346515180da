"""indexes that keep an artisan's payments cheap to reach however long their history

Revision ID: 6d2f8b1e0010
Revises: 8e2d4b6a1c57
Created: 2026-12-06 17:00:00

- ``ix_payments_artisan_on_the_way``: the artisan's payments still on their way to the ledger (in
  flight, or succeeded and not posted yet), a partial index: the tier cap's check sums these and
  never reads the artisan's settled history. Its condition is spelled as
  ``orm.ON_THE_WAY_TO_THE_LEDGER`` spells it, which the query repeats word for word.
- ``ix_payments_marketplace_artisan`` (marketplace_id, artisan_id, id): a page of
  ``GET /v1/payments?artisan_id=`` is a range of it. It replaces ``ix_payments_artisan_id``.
"""

import sqlalchemy as sa
from alembic import op

revision = "6d2f8b1e0010"
down_revision = "8e2d4b6a1c57"
branch_labels = None
depends_on = None

ON_THE_WAY_TO_THE_LEDGER = (
    "status IN ('processing', 'requires_action', 'requires_capture') "
    "OR (status = 'succeeded' AND NOT ledger_posted)"
)


def upgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_payments_marketplace_artisan", ["marketplace_id", "artisan_id", "id"], unique=False
        )
        batch_op.create_index(
            "ix_payments_artisan_on_the_way",
            ["artisan_id"],
            unique=False,
            postgresql_where=sa.text(ON_THE_WAY_TO_THE_LEDGER),
            sqlite_where=sa.text(ON_THE_WAY_TO_THE_LEDGER),
        )
        batch_op.drop_index("ix_payments_artisan_id")


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index("ix_payments_artisan_id", ["artisan_id"], unique=False)
        batch_op.drop_index("ix_payments_artisan_on_the_way")
        batch_op.drop_index("ix_payments_marketplace_artisan")
