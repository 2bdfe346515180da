"""Payments needing attention, for operators, from payments' back-office API (``payments:oversee``):
reversals needing review, payments stuck past payments' own recovery time, open disputes, and the
webhook deliveries failing per marketplace. Each list pages on its own cursor (``<list>_after``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request

from services.console.web.formatting import apis, attempt
from services.console.web.security import requires_role, staff_token

blp = Blueprint("payments", __name__, url_prefix="/payments")

PAGE_SIZE = 50
# Each part of the page, and the back-office list it shows.
LISTS = {
    "reversals": "/v1/back-office/reversals-to-review",
    "stuck": "/v1/back-office/stuck-payments",
    "disputes": "/v1/back-office/disputes",
    "webhooks": "/v1/back-office/webhook-failures",
}


@blp.get("")
@requires_role("operator")
def attention() -> Any:
    payments = apis().payments
    token = staff_token()

    def part(key: str) -> Any:
        return attempt(
            lambda: payments.get(
                token, LISTS[key], limit=PAGE_SIZE, starting_after=request.args.get(f"{key}_after")
            )
        )

    return render_template("payments/attention.html", **{key: part(key) for key in LISTS})
