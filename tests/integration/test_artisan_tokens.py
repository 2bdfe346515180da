"""What an artisan's token reaches in accounts and payments, and the offline-tolerant retry contract:
an artisan device's Idempotency-Key is scoped to the artisan and the device, and honoured 7 days.

Tokens are issued by the test issuer exactly as sign-in issues them (role artisan, ``device_id``
claim); the sign-in itself is tested in test_artisan_sessions.py and, end to end, in
tests/e2e/test_artisan_sign_in.py.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import sqlalchemy as sa

from services.accounts.adapters.orm import IdempotencyKey, Payout
from shared.auth.scopes import ROLE_SCOPES, Role
from shared.auth.tokens import TokenIssuer
from shared.config import SANDBOX_BANK_CALLBACK_SECRET
from shared.partner_ports import PartnerRegistry
from tests.conftest import ISSUER
from tests.fakes import FakeTransferBank
from tests.integration.test_payouts import available, fund, ready_artisan, request_payout
from tests.ledger_support import LedgerDriver

PARTNER_BANK = "banque_populaire"
PHONE = "3f0c9a7e-5b1d-4e2a-9c61-0d2b7e8f4a10"
OTHER_PHONE = "android-7d1e0b2c9a44"
AUDIENCES = ["hirfa-onboarding", "hirfa-payments", "hirfa-accounts"]


@pytest.fixture
def accounts_bank_partners() -> PartnerRegistry:
    return PartnerRegistry({PARTNER_BANK: FakeTransferBank(SANDBOX_BANK_CALLBACK_SECRET)})


@pytest.fixture
def client(accounts_app):
    return accounts_app.test_client()


@pytest.fixture
def ledger(accounts_app) -> LedgerDriver:
    return LedgerDriver(accounts_app)


@pytest.fixture
def artisan_headers(signing_keys):
    """artisan_headers(artisan_id, device_id, key) -> headers with an artisan token, as sign-in issues it."""
    issuer = TokenIssuer(signing_keys, ISSUER, ttl_seconds=900)

    def headers(artisan_id: str, device_id: str | None = PHONE, idempotency_key: str | None = None) -> dict:
        token, _ = issuer.issue(
            client_id=artisan_id,
            role=Role.ARTISAN,
            scopes=ROLE_SCOPES[Role.ARTISAN],
            audiences=AUDIENCES,
            device_id=device_id,
        )
        h = {"Authorization": f"Bearer {token}"}
        if idempotency_key:
            h["Idempotency-Key"] = idempotency_key
        return h

    return headers


def age(accounts_app, days: float) -> None:
    """Move every stored Idempotency-Key and payout ``days`` into the past ("sent days later")."""
    with accounts_app.extensions["hirfa"].session_factory() as session:
        for model in (IdempotencyKey, Payout):
            for row in session.scalars(sa.select(model)):
                row.created_at -= dt.timedelta(days=days)
        session.commit()


def payouts_of(accounts_app, artisan_id: str) -> list[Payout]:
    with accounts_app.extensions["hirfa"].session_factory() as session:
        return list(session.scalars(sa.select(Payout).where(Payout.artisan_id == artisan_id)))


# --- accounts: own money only --------------------------------------------------------------------------


def test_an_artisan_token_reads_its_own_money_and_nobody_elses(client, ledger, artisan_headers, issue_token):
    mine, theirs = ready_artisan(ledger, 10_000), ready_artisan(ledger, 5_000)
    headers = artisan_headers(mine)
    operator = {
        "Authorization": "Bearer " + issue_token(Role.OPERATOR, client_id="cli_ops"),
        "Idempotency-Key": uuid.uuid4().hex,
    }
    their_payout = request_payout(client, operator, theirs, 1_000)
    assert their_payout.status_code == 201

    balance = client.get(f"/v1/artisans/{mine}/balance", headers=headers)
    assert balance.status_code == 200 and balance.json["available"]["amount"] == 10_000
    assert client.get(f"/v1/artisans/{mine}/transactions", headers=headers).status_code == 200
    own = request_payout(client, {**headers, "Idempotency-Key": "own-1"}, mine, 2_000)
    assert own.status_code == 201, own.json
    assert client.get(f"/v1/payouts/{own.json['id']}", headers=headers).status_code == 200
    listed = client.get("/v1/payouts", headers=headers)
    assert [p["id"] for p in listed.json["data"]] == [own.json["id"]]
    schedule = client.get(f"/v1/artisans/{mine}/payout-schedule", headers=headers)
    assert schedule.status_code == 200
    changed = client.put(f"/v1/artisans/{mine}/payout-schedule", json={"interval": "weekly"}, headers=headers)
    assert changed.status_code == 200, changed.json

    for path in (
        f"/v1/artisans/{theirs}/balance",
        f"/v1/artisans/{theirs}/transactions",
        f"/v1/artisans/{theirs}/payout-schedule",
        f"/v1/payouts/{their_payout.json['id']}",
        f"/v1/payouts?artisan_id={theirs}",
    ):
        response = client.get(path, headers=headers)
        assert response.status_code == 404, (path, response.json)
    taking = request_payout(client, {**headers, "Idempotency-Key": "theirs-1"}, theirs, 1_000)
    assert taking.status_code == 404
    moving = client.put(f"/v1/artisans/{theirs}/payout-schedule", json={"interval": "daily"}, headers=headers)
    assert moving.status_code == 404
    # The ledger's back office is not for artisans.
    for path in ("/v1/journal-entries", "/v1/ledger/integrity", "/v1/ledger/cases"):
        assert client.get(path, headers=headers).status_code == 403


def test_payments_and_webhooks_refuse_artisan_tokens(payments_app, artisan_headers):
    client = payments_app.test_client()
    artisan_id = "art_01JD8Z6W5Q0T2C7S9K3M4N5P6R"
    headers = artisan_headers(artisan_id, idempotency_key="pay-1")
    body = {"artisan_id": artisan_id, "amount": 10_000, "currency": "MAD"}
    calls = [
        ("POST", "/v1/payments", body),
        ("GET", "/v1/payments", None),
        ("GET", "/v1/payments/pay_01JD8Z6W5Q0T2C7S9K3M4N5P6R", None),
        ("POST", "/v1/refunds", {"payment_id": "pay_01JD8Z6W5Q0T2C7S9K3M4N5P6R"}),
        ("GET", "/v1/disputes", None),
        ("GET", f"/v1/payees/{artisan_id}", None),
        ("POST", "/v1/webhook-endpoints", {"url": "https://example.com/hook"}),
        ("GET", "/v1/webhook-endpoints", None),
        ("GET", "/v1/webhook-deliveries", None),
    ]
    for method, path, json_body in calls:
        response = client.open(path, method=method, json=json_body, headers=headers)
        assert response.status_code == 403, (method, path, response.json)
        assert response.json["code"] == "insufficient_scope"


# --- offline-tolerant clients: device keys -------------------------------------------------------------


def test_a_payout_queued_offline_and_retried_three_days_later_is_applied_once(
    accounts_app, client, ledger, artisan_headers
):
    artisan_id = ready_artisan(ledger, 10_000)
    headers = artisan_headers(artisan_id, PHONE, idempotency_key="queued-on-the-phone-1")
    first = request_payout(client, headers, artisan_id, 4_000)
    assert first.status_code == 201, first.json

    age(accounts_app, days=3)  # the phone lost the answer and was offline for three days
    retried = request_payout(client, headers, artisan_id, 4_000)
    assert retried.status_code == 201 and retried.headers["Idempotent-Replayed"] == "true"
    assert retried.json["id"] == first.json["id"]
    assert [p.id for p in payouts_of(accounts_app, artisan_id)] == [first.json["id"]]
    assert available(ledger, artisan_id) == 6_000

    # Still honoured at six days; the same key for another amount is refused, not applied.
    age(accounts_app, days=3)
    assert request_payout(client, headers, artisan_id, 4_000).json["id"] == first.json["id"]
    reused = request_payout(client, headers, artisan_id, 5_000)
    assert reused.status_code == 409 and reused.json["code"] == "idempotency_key_reuse"
    assert available(ledger, artisan_id) == 6_000


def test_device_keys_are_scoped_to_the_artisan_and_the_device(accounts_app, client, ledger, artisan_headers):
    artisan_id = ready_artisan(ledger, 10_000)
    key = "same-uuid-on-two-phones"
    on_one = request_payout(client, artisan_headers(artisan_id, PHONE, key), artisan_id, 1_000)
    on_other = request_payout(client, artisan_headers(artisan_id, OTHER_PHONE, key), artisan_id, 1_000)
    assert on_one.status_code == on_other.status_code == 201
    assert on_one.json["id"] != on_other.json["id"]
    assert "Idempotent-Replayed" not in on_other.headers
    assert available(ledger, artisan_id) == 8_000


def test_other_clients_keys_still_last_a_day(accounts_app, client, ledger, issue_token):
    artisan_id = ready_artisan(ledger, 10_000)
    operator = {
        "Authorization": "Bearer " + issue_token(Role.OPERATOR, client_id="cli_ops"),
        "Idempotency-Key": "operator-key",
    }
    first = request_payout(client, operator, artisan_id, 1_000)
    age(accounts_app, days=3)
    later = request_payout(client, operator, artisan_id, 1_000)
    assert later.status_code == 201 and later.json["id"] != first.json["id"]  # a new payout


def test_an_artisan_may_fund_a_payout_only_from_their_own_balance(client, ledger, artisan_headers):
    artisan_id = ready_artisan(ledger, 1_000)
    fund(ledger, artisan_id, 500)
    too_much = request_payout(client, artisan_headers(artisan_id, idempotency_key="k"), artisan_id, 2_000)
    assert too_much.status_code == 409 and too_much.json["code"] == "insufficient_funds"
