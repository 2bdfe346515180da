"""Journal entries and lines are immutable: the database itself refuses UPDATE and DELETE, so no
code path (or hurried operator) can rewrite history; a correction is a new reversing entry.

Used by the migration that installs the triggers (and by tests that must empty a SQLite database,
where even a table-wide DELETE fires row triggers).
"""

from __future__ import annotations

IMMUTABLE_TABLES = ("journal_entries", "journal_lines")
_MESSAGE = "ledger rows are immutable: post a reversing entry instead"


def create_statements(dialect: str) -> list[str]:
    if dialect == "postgresql":
        return [
            "CREATE OR REPLACE FUNCTION hirfa_refuse_ledger_change() RETURNS trigger AS $$ "
            f"BEGIN RAISE EXCEPTION '{_MESSAGE}'; END; $$ LANGUAGE plpgsql",
            *(
                f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION hirfa_refuse_ledger_change()"
                for table in IMMUTABLE_TABLES
            ),
        ]
    if dialect == "sqlite":
        return [
            f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END"
            for table in IMMUTABLE_TABLES
            for action in ("UPDATE", "DELETE")
        ]
    return []


def drop_statements(dialect: str) -> list[str]:
    if dialect == "postgresql":
        return [
            *(f"DROP TRIGGER IF EXISTS {table}_immutable ON {table}" for table in IMMUTABLE_TABLES),
            "DROP FUNCTION IF EXISTS hirfa_refuse_ledger_change()",
        ]
    if dialect == "sqlite":
        return [
            f"DROP TRIGGER IF EXISTS {table}_no_{action}" for table in IMMUTABLE_TABLES for action in ("update", "delete")
        ]
    return []
