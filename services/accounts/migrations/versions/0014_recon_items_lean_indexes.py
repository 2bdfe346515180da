"""recon_items: the indexes a settlement line does not need, partial

Revision ID: b4f8c1d20013
Revises: c5f2a8d10013
Created: 2026-12-06 17:00:00

A settlement run writes one ``recon_items`` row per line of the file (a million for a large
acquirer's day), so every index on the table is a million more entries to write. Three of them are
only ever searched for other rows, and now index only those:

- ``dedup_key``: statement lines are deduplicated by it; a settlement line is deduplicated through
  its object (``ix_recon_items_object_id``), whose key its dedup key is made of;
- ``ledger_entry_id``: searched for the ledger's own items (``missing_at_gateway``); a settlement
  line's ledger entry is found through its object too;
- ``case_id``: searched for the items of a case; most items have none.
"""

import sqlalchemy as sa
from alembic import op

revision = "b4f8c1d20013"
down_revision = "c5f2a8d10013"
branch_labels = None
depends_on = None

PARTIAL = {
    "ix_recon_items_dedup_key": ("dedup_key", "source = 'statement'"),
    "ix_recon_items_ledger_entry_id": ("ledger_entry_id", "source = 'ledger'"),
    "ix_recon_items_case_id": ("case_id", "case_id IS NOT NULL"),
}


def upgrade() -> None:
    with op.batch_alter_table("recon_items", schema=None) as batch_op:
        for name, (column, where) in PARTIAL.items():
            batch_op.drop_index(name)
            batch_op.create_index(
                name, [column], unique=False, postgresql_where=sa.text(where), sqlite_where=sa.text(where)
            )


def downgrade() -> None:
    with op.batch_alter_table("recon_items", schema=None) as batch_op:
        for name, (column, _where) in PARTIAL.items():
            batch_op.drop_index(name)
            batch_op.create_index(name, [column], unique=False)
