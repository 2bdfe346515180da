"""Gateway attempts are append-only: each call to a gateway and each callback is a row the database
refuses to change or delete, so a payment's story with the gateway can always be told as it happened."""

from __future__ import annotations

from shared.append_only import AppendOnlyTables

ATTEMPTS = AppendOnlyTables(
    tables=("gateway_attempts",),
    message="gateway attempts are append-only: record a new attempt instead",
    function="hirfa_refuse_attempt_change",
)
create_statements = ATTEMPTS.create_statements
drop_statements = ATTEMPTS.drop_statements
