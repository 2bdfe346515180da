"""Tables the database itself keeps append-only: triggers refuse every UPDATE and DELETE, so no
code path (or hurried operator) can rewrite what happened. A service lists its tables in an
``AppendOnlyTables`` and installs the triggers from a migration.

On PostgreSQL, ``TRUNCATE`` empties a table without firing row triggers, so a statement trigger
refuses it too. ``create_statements`` and ``drop_statements`` include it (a migration that lifts
the guards for a moment puts all of them back); ``truncate_guard_statements`` alone installed it
on databases whose row triggers came first (it replaces one already there). SQLite has no
``TRUNCATE``.

Tests that must empty a SQLite database lift the triggers for that moment (even a table-wide
DELETE fires SQLite's row triggers); on PostgreSQL they switch triggers off for the transaction.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class AppendOnlyTables:
    tables: tuple[str, ...]
    message: str  # what a refused change says, e.g. "post a reversing entry instead"
    function: str  # PostgreSQL: the trigger function's name, one per database

    def create_statements(self, dialect: str) -> list[str]:
        if dialect == "postgresql":
            return [
                f"CREATE OR REPLACE FUNCTION {self.function}() RETURNS trigger AS $$ "
                f"BEGIN RAISE EXCEPTION '{self.message}'; END; $$ LANGUAGE plpgsql",
                *(
                    f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
                    f"FOR EACH ROW EXECUTE FUNCTION {self.function}()"
                    for table in self.tables
                ),
                *self.truncate_guard_statements(dialect),
            ]
        if dialect == "sqlite":
            return [
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{self.message}'); END"
                for table in self.tables
                for action in ("UPDATE", "DELETE")
            ]
        return []

    def truncate_guard_statements(self, dialect: str) -> list[str]:
        if dialect != "postgresql":
            return []
        return [
            f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {self.function}()"
            for table in self.tables
        ]

    def drop_truncate_guard_statements(self, dialect: str) -> list[str]:
        if dialect != "postgresql":
            return []
        return [f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}" for table in self.tables]

    def drop_statements(self, dialect: str) -> list[str]:
        if dialect == "postgresql":
            return [
                *(f"DROP TRIGGER IF EXISTS {table}_immutable ON {table}" for table in self.tables),
                *self.drop_truncate_guard_statements(dialect),
                f"DROP FUNCTION IF EXISTS {self.function}()",
            ]
        if dialect == "sqlite":
            return [
                f"DROP TRIGGER IF EXISTS {table}_no_{action}"
                for table in self.tables
                for action in ("update", "delete")
            ]
        return []
