"""The KYC audit log is append-only: the database itself refuses UPDATE and DELETE, so no code path
(or hurried operator) can rewrite who decided what; a correction is a new entry.

Used by the migration that installs the triggers (and by tests that must empty a SQLite database).
"""

from __future__ import annotations

from shared.append_only import AppendOnlyTables

AUDIT_LOG = AppendOnlyTables(
    tables=("kyc_audit_log",),
    message="the KYC audit log is append-only: record a new entry instead",
    function="hirfa_refuse_audit_change",
)
create_statements = AUDIT_LOG.create_statements
drop_statements = AUDIT_LOG.drop_statements
