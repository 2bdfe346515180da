"""Payments needing attention: reversals needing review (failed refunds), stuck payments, open disputes, failed
webhook deliveries. Each list is what the payments API offers a staff token; where it offers none
(its reads are scoped to one marketplace today), the page says so instead of guessing."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, render_template

from services.console.web.formatting import apis, attempt
from services.console.web.security import requires_role, staff_token

blp = Blueprint("payments", __name__, url_prefix="/payments")

# A payment still processing after this long has outstayed payments' own recovery.
STUCK_AFTER = dt.timedelta(minutes=30)


@blp.get("")
@requires_role("operator")
def attention() -> Any:
    payments = apis().payments
    token = staff_token()
    stuck_before = (dt.datetime.now(dt.UTC) - STUCK_AFTER).isoformat()
    return render_template(
        "payments/attention.html",
        reversals=attempt(lambda: payments.get(token, "/v1/refunds", status="failed", limit=50)),
        stuck=attempt(
            lambda: payments.get(
                token, "/v1/payments", status="processing", created_lte=stuck_before, limit=50
            )
        ),
        disputes=attempt(lambda: payments.get(token, "/v1/disputes", status="open", limit=50)),
        webhooks=attempt(lambda: payments.get(token, "/v1/webhook-deliveries", status="failed", limit=50)),
    )
