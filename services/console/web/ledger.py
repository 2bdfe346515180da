"""The ledger, for operators: cases with their parked events, and the integrity check.

Acting on a case (an adjustment or a reversal, with four-eyes) needs accounts'
``POST /v1/ledger/adjustments`` (branch ``cycle``); until it is on main the case page says so.
Platform account balances have no API yet either.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request

from services.console.web.formatting import apis, attempt
from services.console.web.security import requires_role, staff_token

blp = Blueprint("ledger", __name__, url_prefix="/ledger")

CASE_STATUSES = ("open", "waiting", "resolved")


@blp.get("")
@requires_role("operator")
def overview() -> Any:
    status = request.args.get("status") if request.args.get("status") in CASE_STATUSES else "open"
    accounts = apis().accounts
    token = staff_token()
    return render_template(
        "ledger/overview.html",
        status=status,
        statuses=CASE_STATUSES,
        cases=attempt(
            lambda: accounts.get(
                token, "/v1/ledger/cases", status=status, limit=50, starting_after=request.args.get("after")
            )
        ),
        integrity=attempt(lambda: accounts.get(token, "/v1/ledger/integrity")),
    )
