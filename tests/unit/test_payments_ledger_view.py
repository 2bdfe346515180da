"""Accounts' reader of payments' unposted payments: its token, its pages, its failures."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
import requests

from services.accounts.adapters.payments_api import HttpPaymentsLedgerView, PaymentsUnavailable

BEFORE = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


@dataclasses.dataclass
class Answer:
    status_code: int
    body: object = None

    def json(self):
        if self.body is None:
            raise ValueError("not JSON")
        return self.body


def item(payment_id: str) -> dict:
    return {
        "object": "unposted_payment",
        "payment_id": payment_id,
        "artisan_id": "art_1",
        "marketplace_id": "cli_m",
        "amount": {"amount": 1000, "currency": "MAD"},
        "succeeded_at": "2026-12-01T11:00:00+00:00",
    }


class FakeSession:
    """Answers the token endpoint and payments in turn from ``pages`` (an Answer or an exception)."""

    def __init__(self, pages: list, token_lifetime: int = 900) -> None:
        self.pages = list(pages)
        self.token_lifetime = token_lifetime
        self.tokens_issued = 0
        self.requests: list[dict] = []

    def request(self, method, url, *, headers, timeout, **kwargs):
        self.requests.append({"method": method, "url": url, "headers": headers, "timeout": timeout, **kwargs})
        if url.endswith("/v1/oauth/token"):
            self.tokens_issued += 1
            return Answer(
                200, {"access_token": f"token-{self.tokens_issued}", "expires_in": self.token_lifetime}
            )
        page = self.pages.pop(0)
        if isinstance(page, Exception):
            raise page
        return page


def view(session: FakeSession, clock=lambda: 0.0) -> HttpPaymentsLedgerView:
    return HttpPaymentsLedgerView(
        payments_url="https://payments.test/",
        token_url="https://onboarding.test/v1/oauth/token",
        client_id="cli_accounts",
        client_secret="s3cret-value",
        timeout=4,
        session=session,
        clock=clock,
    )


def test_every_page_is_read_with_one_token_asked_for_the_audit_scope_only():
    session = FakeSession(
        [
            Answer(200, {"data": [item("pay_1"), item("pay_2")], "has_more": True, "next_cursor": "pay_2"}),
            Answer(200, {"data": [item("pay_3")], "has_more": False, "next_cursor": None}),
        ]
    )
    found = list(view(session).unposted_payments(BEFORE))

    assert [p.payment_id for p in found] == ["pay_1", "pay_2", "pay_3"]
    assert found[0].succeeded_at == dt.datetime(2026, 12, 1, 11, 0, tzinfo=dt.UTC)
    token_request, first, second = session.requests
    assert token_request["data"] == {
        "grant_type": "client_credentials",
        "scope": "payments:audit",
        "audience": "hirfa-payments",
    }
    assert token_request["auth"] == ("cli_accounts", "s3cret-value")
    assert first["url"] == "https://payments.test/v1/unposted-payments"
    assert first["params"]["succeeded_before"] == BEFORE.isoformat()
    assert "starting_after" not in first["params"] and second["params"]["starting_after"] == "pay_2"
    assert first["headers"] == {"Authorization": "Bearer token-1"}
    assert all(r["timeout"] == 4 for r in session.requests)


def test_the_token_is_kept_until_shortly_before_it_expires():
    now = [0.0]
    session = FakeSession([Answer(200, {"data": [], "has_more": False, "next_cursor": None})] * 3)
    reader = view(session, clock=lambda: now[0])
    list(reader.unposted_payments(BEFORE))
    now[0] = 800.0
    list(reader.unposted_payments(BEFORE))
    assert session.tokens_issued == 1
    now[0] = 850.0  # within a minute of its end
    list(reader.unposted_payments(BEFORE))
    assert session.tokens_issued == 2


def test_a_refused_token_is_renewed_once():
    session = FakeSession(
        [
            Answer(401, {"code": "invalid_token"}),
            Answer(200, {"data": [], "has_more": False, "next_cursor": None}),
        ]
    )
    assert list(view(session).unposted_payments(BEFORE)) == []
    assert session.tokens_issued == 2


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (requests.ConnectTimeout(), "unreachable: ConnectTimeout"),
        (Answer(503, {"code": "database_unavailable"}), "payments answered 503 database_unavailable"),
        (Answer(403, ["not", "a", "problem"]), "payments answered 403"),
        (Answer(200, None), "invalid JSON"),
    ],
)
def test_a_failure_says_what_failed_and_never_the_secret(answer, message):
    with pytest.raises(PaymentsUnavailable, match=message) as failed:
        list(view(FakeSession([answer])).unposted_payments(BEFORE))
    assert "s3cret-value" not in str(failed.value)
    assert "s3cret-value" not in repr(view(FakeSession([])))
