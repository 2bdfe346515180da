"""Template helpers: amounts, dates, ages, people's names, and the console's handle on its context."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from babel.numbers import format_currency
from flask import Flask, current_app, g, redirect, render_template, session, url_for
from flask_babel import format_datetime, get_locale

from services.console.adapters.hirfa_api import ApiError, HirfaApis
from services.console.adapters.staff_directory import STAFF_ID_PREFIX
from services.console.context import ConsoleContext
from services.console.web.labels import label
from services.console.web.security import sign_out_person
from shared.money import CURRENCIES, DEFAULT_CURRENCY

T = TypeVar("T")


def context() -> ConsoleContext:
    return current_app.extensions["console"]  # type: ignore[no-any-return]


def apis() -> HirfaApis:
    return context().apis


@dataclasses.dataclass
class Section:
    """One part of a page: its data, or why the service did not give it (shown in place)."""

    data: Any = None
    error: ApiError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def attempt(call: Callable[[], T]) -> Section:
    """Run one API call for a part of a page; a refusal becomes a message in that part, not a
    broken page. An expired token still ends the session (``ApiError`` 401 is re-raised)."""
    try:
        return Section(data=call())
    except ApiError as error:
        if error.status == 401:
            raise
        return Section(error=error)


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def money(value: Any) -> str:
    if not isinstance(value, dict) or "amount" not in value:
        return "—"
    currency = value.get("currency", DEFAULT_CURRENCY)
    # Exact: minor units scaled by the currency's exponent, never a float.
    exponent = CURRENCIES[currency][1] if currency in CURRENCIES else 2
    amount = Decimal(int(value["amount"])).scaleb(-exponent)
    return str(format_currency(amount, currency, locale=str(get_locale())))


def when(value: str | None) -> str:
    parsed = parse_time(value)
    return format_datetime(parsed, "short") if parsed else "—"


def age_days(value: str | None, now: dt.datetime | None = None) -> int:
    parsed = parse_time(value)
    if parsed is None:
        return 0
    return max(0, ((now or dt.datetime.now(dt.UTC)) - parsed).days)


def person(value: Any) -> str:
    """Who an audit trail names: a staff id (``stf_…``) as "Name (stf_…)", so people read names and
    the id stays there to search; anything else (``system``, an API client) as it is."""
    text = "" if value is None else str(value)
    if not text.startswith(STAFF_ID_PREFIX) or "token" not in session:
        return text
    me = g.get("staff") or {}
    if me.get("id") == text:
        name: str | None = me.get("name")
    else:
        name = context().staff_directory.name_of(str(session["token"]), text)
    return f"{name} ({text})" if name else text


def register(app: Flask) -> None:
    app.jinja_env.filters["money"] = money
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["age_days"] = age_days
    app.jinja_env.filters["label"] = label
    app.jinja_env.filters["person"] = person

    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Any:
        if error.status == 401:
            # The staff token expired or was revoked: sign in again.
            sign_out_person("token_expired")
            return redirect(url_for("auth.sign_in"))
        return (
            render_template("error.html", status=error.page_status, reason=error.code, detail=error.detail),
            error.page_status,
        )
