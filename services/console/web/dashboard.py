"""The dashboard: the day's and week's payments, the KYC funnel, payouts, open cases by age.

Counts come from the services' list endpoints (paged to a limit): there is no statistics API yet,
so a count past the limit is shown as "at least".
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from flask import Blueprint, render_template
from flask_babel import gettext as _

from services.console.adapters.hirfa_api import ApiError, ServiceApi
from services.console.web.charts import bar_chart, by_age
from services.console.web.formatting import Section, age_days, apis, attempt
from services.console.web.security import has_role, staff_token

blp = Blueprint("dashboard", __name__)

PAGE = 100
MAX_PAGES = 10


def list_all(api: ServiceApi, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list endpoint, up to MAX_PAGES pages."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _page in range(MAX_PAGES):
        page = api.get(staff_token(), path, limit=PAGE, starting_after=cursor, **params)
        items.extend(page["data"])
        if not page.get("has_more"):
            break
        cursor = page.get("next_cursor")
    return items


def _payments_summary(since: dt.datetime) -> dict[str, Any]:
    payments = list_all(apis().payments, "/v1/payments", created_gte=since.isoformat())
    by_method: dict[str, Counter[str]] = defaultdict(Counter)
    volume = 0
    for payment in payments:
        method = str(payment.get("payment_method_type") or "?")
        by_method[method]["total"] += 1
        if payment.get("status") == "succeeded":
            by_method[method]["succeeded"] += 1
            volume += int(payment["amount"]["amount"])
    return {
        "count": len(payments),
        "volume": {"amount": volume, "currency": "MAD"},
        "success": {
            method: round(100 * counts["succeeded"] / counts["total"]) for method, counts in by_method.items()
        },
    }


@blp.get("/")
def home() -> Any:
    now = dt.datetime.now(dt.UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    week = today - dt.timedelta(days=today.weekday())
    onboarding, accounts = apis().onboarding, apis().accounts

    def count(call: Callable[[], list[Any]]) -> Section:
        return attempt(lambda: len(call()))

    funnel = [
        (
            _("Tier %(tier)s", tier=tier),
            count(lambda tier=tier: list_all(onboarding, "/v1/artisans", tier=tier)),
        )
        for tier in range(4)
    ]
    payouts = [
        (_("Paid"), count(lambda: list_all(accounts, "/v1/payouts", status="paid"))),
        (_("Failed"), count(lambda: list_all(accounts, "/v1/payouts", status="failed"))),
    ]
    open_ages: list[int] = []
    cases_error: ApiError | None = None
    if has_role("compliance"):
        reviews = attempt(lambda: list_all(onboarding, "/v1/kyc-reviews", status="open"))
        open_ages += [age_days(r["created_at"], now) for r in reviews.data or []]
        cases_error = reviews.error
    if has_role("operator"):
        cases = attempt(lambda: list_all(accounts, "/v1/ledger/cases", status="open"))
        open_ages += [age_days(c["created_at"], now) for c in cases.data or []]
        cases_error = cases_error or cases.error
    return render_template(
        "dashboard.html",
        today=attempt(lambda: _payments_summary(today)),
        week=attempt(lambda: _payments_summary(week)),
        funnel=_chart(_("KYC funnel (artisans per tier)"), funnel),
        payouts=_chart(_("Payouts"), payouts),
        cases=bar_chart(_("Open cases by age"), by_age(open_ages)),
        cases_error=cases_error,
        limit=PAGE * MAX_PAGES,
    )


def _chart(title: str, counted: list[tuple[str, Section]]) -> Section:
    errors = [section.error for _, section in counted if section.error]
    if errors:
        return Section(error=errors[0])
    return Section(data=bar_chart(title, [(label, section.data) for label, section in counted]))
