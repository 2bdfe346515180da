"""Journal entries and lines are immutable: the database itself refuses UPDATE and DELETE, so no
code path (or hurried operator) can rewrite history; a correction is a new reversing entry.

Used by the migration that installs the triggers (and by tests that must empty a SQLite database,
where even a table-wide DELETE fires row triggers).
"""

from __future__ import annotations

from shared.append_only import AppendOnlyTables

LEDGER = AppendOnlyTables(
    tables=("journal_entries", "journal_lines"),
    message="ledger rows are immutable: post a reversing entry instead",
    function="hirfa_refuse_ledger_change",
)
IMMUTABLE_TABLES = LEDGER.tables
create_statements = LEDGER.create_statements
drop_statements = LEDGER.drop_statements
