"""The dashboard: today's and this week's payments (count, volume, success rate by method), the
KYC funnel (tier 0 → 3), payouts sent, paid and failed today and this week, and the open cases by
age (KYC reviews, ledger cases, reconciliation cases). Drawn on the server as SVG bars.

Figures come from the services' own counts (payments' and accounts' figures of a period,
onboarding's funnel), not from lists paged here. Days and weeks are Moroccan ones (Africa/Casablanca):
the day starts at local midnight, the week on Monday. Open cases are counted from their lists, up to
``MAX_PAGES`` pages each.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from flask import Blueprint, render_template
from flask_babel import gettext as _

from services.console.adapters.hirfa_api import ServiceApi
from services.console.web.charts import bar_chart, by_age
from services.console.web.formatting import Section, age_days, apis, attempt
from services.console.web.labels import label
from services.console.web.security import has_role, staff_token
from shared.i18n import LOCAL_TIMEZONE

blp = Blueprint("dashboard", __name__)

PAGE = 100
MAX_PAGES = 10
# Payment methods as payments names them, in the order the cards show them.
PAYMENT_METHODS = ("card", "mobile_wallet")


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


def periods(now: dt.datetime) -> dict[str, dt.datetime]:
    """Where today and this week start, in Moroccan time (the week on Monday)."""
    local = now.astimezone(LOCAL_TIMEZONE)
    today = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return {"today": today, "week": today - dt.timedelta(days=today.weekday())}


def payment_card(stats: dict[str, Any], period: str) -> dict[str, Any]:
    """What one payments card shows: the count, the volume, and a bar per method for its success rate."""
    methods = {row["payment_method_type"]: row for row in stats["by_method"]}
    ordered = [methods[m] for m in PAYMENT_METHODS if m in methods] + [
        row for name, row in methods.items() if name not in PAYMENT_METHODS
    ]
    rates = [
        (
            label(row["payment_method_type"]),
            None if row["success_rate"] is None else round(100 * row["success_rate"]),
        )
        for row in ordered
    ]
    return {
        "count": stats["count"],
        "volume": stats["volume"],
        "methods": ordered,
        "chart": bar_chart(_("Success rate by method"), rates, top=100, unit=" %"),
        "id": f"{period}-success",
    }


def payouts_chart(stats: dict[str, Any], title: str) -> Any:
    return bar_chart(
        title,
        [
            (_("Sent"), stats["sent"]["count"]),
            (_("Paid"), stats["paid"]["count"]),
            (_("Failed"), stats["failed"]["count"]),
        ],
    )


def current_time() -> dt.datetime:
    """Now, in UTC: what "today" and "this week" start from (a test sets it)."""
    return dt.datetime.now(dt.UTC)


@blp.get("/")
def home() -> Any:
    now = current_time()
    starts = periods(now)
    onboarding, payments, accounts = apis().onboarding, apis().payments, apis().accounts
    token = staff_token()
    operator = has_role("operator")

    def payment_stats(period: str) -> Section:
        return attempt(
            lambda: payment_card(
                payments.get(token, "/v1/back-office/payment-stats", created_gte=starts[period].isoformat()),
                period,
            )
        )

    def payout_stats(period: str, title: str) -> Section:
        return attempt(
            lambda: payouts_chart(
                accounts.get(token, "/v1/payout-stats", since=starts[period].isoformat()), title
            )
        )

    funnel = attempt(lambda: onboarding.get(token, "/v1/artisans/kyc-funnel"))
    return render_template(
        "dashboard.html",
        operator=operator,
        payments={"today": payment_stats("today"), "week": payment_stats("week")} if operator else {},
        payouts=[payout_stats("today", _("Today")), payout_stats("week", _("This week"))] if operator else [],
        funnel=funnel,
        funnel_chart=bar_chart(
            _("KYC funnel (artisans per tier)"),
            [(_("Tier %(tier)s", tier=row["tier"]), row["count"]) for row in funnel.data["tiers"]],
        )
        if funnel.ok
        else None,
        cases=_open_cases(now),
        limit=PAGE * MAX_PAGES,
    )


def _open_cases(now: dt.datetime) -> dict[str, Any]:
    """The open cases the person's roles let them see, by source, and all of them by age."""
    onboarding, accounts = apis().onboarding, apis().accounts
    sources: list[tuple[str, Callable[[], list[dict[str, Any]]]]] = []
    if has_role("compliance"):
        sources.append((_("KYC reviews"), lambda: list_all(onboarding, "/v1/kyc-reviews", status="open")))
    if has_role("operator"):
        sources += [
            (
                _("Ledger cases"),
                lambda: [
                    *list_all(accounts, "/v1/ledger/cases", status="open"),
                    *list_all(accounts, "/v1/ledger/cases", status="waiting"),
                ],
            ),
            (
                _("Reconciliation cases"),
                lambda: [
                    *list_all(accounts, "/v1/reconciliation/cases", state="open"),
                    *list_all(accounts, "/v1/reconciliation/cases", state="investigating"),
                ],
            ),
        ]
    counted = [(name, attempt(fetch)) for name, fetch in sources]
    ages = [age_days(case.get("created_at"), now) for _, section in counted for case in section.data or []]
    return {
        "chart": bar_chart(_("Open cases by age"), [(_(bucket), count) for bucket, count in by_age(ages)]),
        "sources": [(name, section) for name, section in counted],
    }
