"""journal_entries: only reversals are in the index of the entry they reverse

Revision ID: d3a7e5b10018
Revises: c6f1a9d30017
Created: 2026-12-07 02:40:00

``ix_journal_entries_reverses_entry_id`` is unique, so an entry is reversed at most once, and it is
how a reversal's entry is looked up. Every other entry (each payment of a consumer batch) has no
entry it reverses, yet a unique index on a nullable column still holds an entry for each of those
rows. Partial, it holds the reversals only: the same uniqueness (nulls never conflicted) and the
same lookups (``reverses_entry_id = …`` implies it is not null), one index entry fewer for every
other entry written.
"""

from shared.db import rebuild_index

revision = "d3a7e5b10018"
down_revision = "c6f1a9d30017"
branch_labels = None
depends_on = None

NAME = "ix_journal_entries_reverses_entry_id"
REVERSALS = "reverses_entry_id IS NOT NULL"


def upgrade() -> None:
    rebuild_index(NAME, "journal_entries", ["reverses_entry_id"], unique=True, where=REVERSALS)


def downgrade() -> None:
    rebuild_index(NAME, "journal_entries", ["reverses_entry_id"], unique=True)
