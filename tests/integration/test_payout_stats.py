"""Payout figures for the back office over accounts' HTTP API: payouts sent to the bank, paid and
failed in a period, each counted by when it took that step; for operators only."""

from __future__ import annotations

import datetime as dt

import pytest

from services.accounts.adapters.orm import Payout
from shared.auth.scopes import Role, staff_scopes
from shared.banking import make_rib
from shared.db import utcnow
from shared.errors import PROBLEM_CONTENT_TYPE
from shared.ids import new_id

pytestmark = pytest.mark.integration

STATS = "/v1/payout-stats"


@pytest.fixture
def client(accounts_app):
    return accounts_app.test_client()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def add_payout(accounts_app, *, status: str, amount: int, **times) -> None:
    created = min(times.values(), default=utcnow())
    with accounts_app.extensions["hirfa"].uow_factory() as uow:
        uow.session.add(
            Payout(
                id=new_id("po"),
                artisan_id="art_payout_stats",
                amount=amount,
                currency="MAD",
                status=status,
                bank_account_id="ba_1",
                rib=make_rib("145", "780", "0000001234567890"),
                holder_name="Fatima Zahra",
                bank_code="145",
                partner_bank="banque_populaire",
                source_bank_code="145",
                source="api",
                requested_by="art_payout_stats",
                created_at=created,
                updated_at=created,
                **times,
            )
        )
        uow.commit()


def test_payouts_sent_paid_and_failed_in_a_period(client, accounts_app, issue_token):
    now = utcnow()
    today = now - dt.timedelta(hours=2)
    last_week = now - dt.timedelta(days=8)
    # Sent and paid today; sent today and failed today; sent last week, paid today; all last week.
    add_payout(accounts_app, status="paid", amount=10_000, submitted_at=today, paid_at=today)
    add_payout(accounts_app, status="failed", amount=5_000, submitted_at=today, failed_at=today)
    add_payout(accounts_app, status="paid", amount=7_000, submitted_at=last_week, paid_at=today)
    add_payout(accounts_app, status="paid", amount=90_000, submitted_at=last_week, paid_at=last_week)
    add_payout(accounts_app, status="pending", amount=3_000)  # not sent yet

    operator = bearer(issue_token(Role.STAFF, client_id="stf_salma", scopes=staff_scopes([Role.OPERATOR])))
    since = (now - dt.timedelta(days=1)).isoformat()
    response = client.get(STATS, headers=operator, query_string={"since": since})
    assert response.status_code == 200, response.get_data(as_text=True)
    stats = response.get_json()
    assert stats["object"] == "payout_stats"
    assert stats["sent"] == {"count": 2, "amount": [{"amount": 15_000, "currency": "MAD"}]}
    assert stats["paid"] == {"count": 2, "amount": [{"amount": 17_000, "currency": "MAD"}]}
    assert stats["failed"] == {"count": 1, "amount": [{"amount": 5_000, "currency": "MAD"}]}

    # Not all time: a period with nothing in it counts nothing.
    quiet = client.get(
        STATS,
        headers=operator,
        query_string={
            "since": (now - dt.timedelta(days=5)).isoformat(),
            "until": (now - dt.timedelta(days=4)).isoformat(),
        },
    ).get_json()
    assert (quiet["sent"], quiet["paid"], quiet["failed"]) == ({"count": 0, "amount": []},) * 3


def test_only_operators_see_payout_figures(client, issue_token):
    since = {"since": (utcnow() - dt.timedelta(days=1)).isoformat()}
    marketplace = bearer(issue_token(Role.MARKETPLACE))
    artisan = bearer(issue_token(Role.ARTISAN, client_id="art_1"))
    bank = bearer(issue_token(Role.BANK_PARTNER, client_id="cli_bank"))
    compliance = bearer(
        issue_token(Role.STAFF, client_id="stf_amina", scopes=staff_scopes([Role.COMPLIANCE]))
    )
    for refused, code in (
        (marketplace, "insufficient_scope"),
        (artisan, "insufficient_scope"),
        (compliance, "insufficient_scope"),
        # A bank partner reads its own bank's ledger, not every payee's payouts.
        (bank, "role_not_allowed"),
    ):
        response = client.get(STATS, headers=refused, query_string=since)
        assert response.status_code == 403 and response.get_json()["code"] == code
    operator_client = bearer(issue_token(Role.OPERATOR, client_id="cli_ops"))
    assert client.get(STATS, headers=operator_client, query_string=since).status_code == 200


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({}, "since"),
        ({"since": "today"}, "since"),
        ({"since": "2026-12-01T00:00:00"}, "since"),
        ({"since": "2026-12-02T00:00:00+01:00", "until": "2026-12-01T00:00:00+01:00"}, "until"),
        ({"since": "2026-01-01T00:00:00+01:00", "until": "2026-12-01T00:00:00+01:00"}, "since"),
    ],
)
def test_the_period_is_validated_with_stable_codes(client, issue_token, query, param):
    operator = bearer(issue_token(Role.OPERATOR, client_id="cli_ops"))
    response = client.get(STATS, headers={**operator, "Accept-Language": "fr"}, query_string=query)
    assert response.status_code == 422 and response.mimetype == PROBLEM_CONTENT_TYPE
    problem = response.get_json()
    assert problem["code"] == "validation_error"
    assert param in [problem.get("param"), *(error["param"] for error in problem.get("errors", []))]
    if param == "until":
        assert problem["detail"] == "until doit être postérieur à since."
